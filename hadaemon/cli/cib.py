"""hactl cib: show, export, import (through org.hadaemon.Crm1) and upgrade (a Heartbeat 2.x CIB file,
locally, like cibadmin --upgrade)."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

from hadaemon.cli.crmcall import EXIT_OK, EXIT_REFUSED, add_timeout, call, done

EXIT_BAD_FILE = 2


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("show", help="print the CIB (configuration and status)")
    p.add_argument("--configuration", action="store_true", help="only the configuration section")
    p = sub.add_parser("export", help="write the CIB to FILE (atomically), e.g. for hactl simulate")
    p.add_argument("file")
    p = sub.add_parser("import", help="replace the cluster's configuration with the one in FILE")
    p.add_argument("file")
    p = sub.add_parser("upgrade", help="convert a Heartbeat 2.x CIB file to the current schema (cibadmin --upgrade)")
    p.add_argument("file")
    p.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT (default: standard output)")
    for p in sub.choices.values():
        if p.prog.split()[-1] != "upgrade":
            add_timeout(p)


def _read(path: str):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return None


def _write(path: str, text: str) -> bool:
    from hadaemon.io.files import write_atomic

    try:
        write_atomic(path, text.encode(), 0o640)
    except OSError as exc:
        print(f"{path}: cannot write: {exc.strerror}", file=sys.stderr)
        return False
    return True


def _upgrade(args) -> int:
    from hadaemon.core.cib.upgrade import upgrade_text
    from hadaemon.core.errors import ConfigError

    data = _read(args.file)
    if data is None:
        return EXIT_BAD_FILE
    try:
        text = upgrade_text(data, args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_FILE
    if args.output:
        if not _write(args.output, text):
            return EXIT_REFUSED
        print(f"{args.file}: upgraded to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _import(args) -> int:
    from hadaemon.core.cib.loader import parse_cib
    from hadaemon.core.cib.upgrade import heartbeat2_reason
    from hadaemon.core.cib.xmltree import parse_xml
    from hadaemon.core.errors import ConfigError

    data = _read(args.file)
    if data is None:
        return EXIT_BAD_FILE
    try:
        reason = heartbeat2_reason(parse_xml(data, args.file))
        if reason:
            print(f"{args.file}: this is a Heartbeat 2.x CIB ({reason}); convert it first with "
                  f"`hactl cib upgrade {args.file} -o NEW.xml`, then import NEW.xml", file=sys.stderr)
            return EXIT_BAD_FILE
        parse_cib(data, args.file)  # refuse locally with file:line before asking the cluster
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_FILE
    rc, body = call("cib import", "ReplaceCib", "s", data.decode("utf-8", "replace"), timeout=args.timeout)
    return done("cib", f"configuration replaced from {args.file}", body) if rc == EXIT_OK else rc


def run(args) -> int:
    a = args.action
    if a is None:
        print("hactl cib: give an action (hactl cib --help)", file=sys.stderr)
        return 2
    if a == "upgrade":
        return _upgrade(args)
    if a == "import":
        return _import(args)
    rc, body = call(f"cib {a}", "GetCib", timeout=args.timeout)
    if rc != EXIT_OK:
        return rc
    root = ET.fromstring(body[0])
    if a == "show" and args.configuration:
        root = root.find("configuration")
        if root is None:
            print("hactl cib show: the CIB has no configuration section", file=sys.stderr)
            return EXIT_REFUSED
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode") + "\n"
    if a == "show":
        sys.stdout.write(text)
        return EXIT_OK
    if not _write(args.file, text):
        return EXIT_REFUSED
    print(f"CIB {root.get('admin_epoch', '0')}:{root.get('epoch', '0')}:{root.get('num_updates', '0')} "
          f"written to {args.file}")
    return EXIT_OK
