"""hactl resource: move, clear, ban, cleanup, enable, disable, manage, unmanage, create, update, delete,
show (through org.hadaemon.Crm1, like crm_resource)."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

from hadaemon.cli.crmcall import EXIT_OK, EXIT_REFUSED, add_timeout, call, done, pairs, status, usage_error


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("move", help="move a resource or group to NODE (cli-prefer constraint, until clear); "
                                    "without NODE: away from where it runs (a ban there)")
    p.add_argument("resource")
    p.add_argument("node", nargs="?", default="")
    p.add_argument("--lifetime", default="", metavar="DURATION",
                   help="ISO 8601 duration (PT30M, PT2H, P1D): the preference ends by itself")
    p = sub.add_parser("ban", help="keep a resource off NODE (cli-ban constraint, until clear)")
    p.add_argument("resource")
    p.add_argument("node")
    p.add_argument("--lifetime", default="", metavar="DURATION", help="ISO 8601 duration")
    p = sub.add_parser("clear", help="remove the move and ban constraints of a resource (on NODE)")
    p.add_argument("resource")
    p.add_argument("node", nargs="?", default="")
    p = sub.add_parser("cleanup", help="forget a resource's failures and history (on NODE) and re-probe it")
    p.add_argument("resource")
    p.add_argument("node", nargs="?", default="")
    for name, helptext in (("enable", "target-role Started"), ("disable", "target-role Stopped: stop it"),
                           ("manage", "is-managed true"),
                           ("unmanage", "is-managed false: the cluster leaves it alone"),
                           ("delete", "delete a resource (a group with its members) and its constraints")):
        sub.add_parser(name, help=helptext).add_argument("resource")
    p = sub.add_parser("create", help="create a primitive: RESOURCE CLASS:[PROVIDER:]TYPE [NAME=VALUE ...]")
    p.add_argument("resource")
    p.add_argument("agent", help="e.g. ocf:heartbeat:IPaddr2, lsb:apache2, systemd:nginx")
    p.add_argument("params", nargs="*", metavar="NAME=VALUE", help="instance attributes")
    p.add_argument("--meta", action="append", default=[], metavar="NAME=VALUE", help="a meta attribute")
    p.add_argument("--op", action="append", default=[], metavar="'NAME [KEY=VALUE ...]'",
                   help="an operation, e.g. --op 'monitor interval=10s timeout=20s'")
    p.add_argument("--group", default="", help="append it to this group (created when missing)")
    p = sub.add_parser("update", help="set instance (NAME=VALUE) and meta attributes; NAME= deletes one")
    p.add_argument("resource")
    p.add_argument("params", nargs="*", metavar="NAME=VALUE")
    p.add_argument("--meta", action="append", default=[], metavar="NAME=VALUE")
    p = sub.add_parser("show", help="resources and where they run, or one resource's definition")
    p.add_argument("resource", nargs="?", default="")
    for p in sub.choices.values():
        add_timeout(p)


def parse_agent(text: str):
    """'ocf:heartbeat:IPaddr2' -> (ocf, heartbeat, IPaddr2); 'lsb:apache2' -> (lsb, '', apache2)."""
    parts = text.split(":")
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], "", parts[1]
    usage_error(f"hactl resource create: agent {text!r} is not CLASS:PROVIDER:TYPE or CLASS:TYPE")


def parse_op(text: str) -> dict:
    words = text.split()
    if not words or "=" in words[0]:
        usage_error(f"hactl resource create: operation {text!r} does not start with its name (e.g. monitor)")
    op = {"name": words[0]}
    op.update(pairs(words[1:], "operation attribute"))
    return op


def _show(args) -> int:
    rc, st = status("resource show", timeout=min(args.timeout, 10))
    if st is None:
        return rc
    resources = st.get("resources", [])
    if not args.resource:
        for r in resources:
            indent = "  " if r.get("parent") else ""
            agent = ":".join(x for x in (r.get("class"), r.get("provider"), r.get("type")) if x)
            where = " ".join(r.get("nodes", [])) or "-"
            print(f"{indent}{r['id']} ({r['kind']}{', ' + agent if agent else ''}): {r['role']} {where}".rstrip())
        return EXIT_OK
    r = next((x for x in resources if x["id"] == args.resource), None)
    if r is None:
        print(f"hactl resource show: no resource '{args.resource}' "
              f"(resources: {', '.join(x['id'] for x in resources) or 'none'})", file=sys.stderr)
        return EXIT_REFUSED
    print(f"{r['id']}: {r['kind']}, {r['role']} on {' '.join(r['nodes']) or 'no node'}, "
          f"managed {'yes' if r['managed'] else 'no'}, target-role {r['target_role'] or '-'}")
    if r.get("failcounts"):
        print("fail-counts: " + ", ".join(f"{n} {c}" for n, c in sorted(r["failcounts"].items())))
    rc, body = call("resource show", "GetCib", timeout=args.timeout)
    if rc == EXIT_OK:
        el = next((e for e in ET.fromstring(body[0]).iter() if e.get("id") == args.resource
                   and e.tag in ("primitive", "group", "clone")), None)
        if el is not None:
            ET.indent(el)
            print(ET.tostring(el, encoding="unicode").rstrip())
    return rc


def run(args) -> int:
    a, t = args.action, getattr(args, "timeout", 60.0)
    if a is None:
        print("hactl resource: give an action (hactl resource --help)", file=sys.stderr)
        return 2
    if a == "show":
        return _show(args)
    if a == "move":
        if args.lifetime:
            rc, body = call("resource move", "MigrateResourceFor", "sss", args.resource, args.node, args.lifetime,
                            timeout=t)
        else:
            rc, body = call("resource move", "MigrateResource", "ss", args.resource, args.node, timeout=t)
        where = f"moves to {args.node}" if args.node else "moves away from where it ran"
        what = f"{args.resource} {where}" + (f" for {args.lifetime}" if args.lifetime else
                                             f" (until 'hactl resource clear {args.resource}')")
    elif a == "ban":
        rc, body = call("resource ban", "BanResource", "sss", args.resource, args.node, args.lifetime, timeout=t)
        what = f"{args.resource} is banned from {args.node}"
    elif a == "clear":
        rc, body = call("resource clear", "ClearResource", "ss", args.resource, args.node, timeout=t)
        what = f"move/ban constraints of {args.resource} cleared" + (f" on {args.node}" if args.node else "")
    elif a == "cleanup":
        rc, body = call("resource cleanup", "CleanupResource", "ss", args.resource, args.node, timeout=t)
        what = f"{args.resource} cleaned up" + (f" on {args.node}" if args.node else " on every node")
    elif a in ("enable", "disable"):
        rc, body = call(f"resource {a}", "EnableResource" if a == "enable" else "DisableResource", "s",
                        args.resource, timeout=t)
        what = f"{args.resource} {a}d"
    elif a in ("manage", "unmanage"):
        rc, body = call(f"resource {a}", "SetResourceManaged", "sb", args.resource, a == "manage", timeout=t)
        what = f"{args.resource} {a}d"
    elif a == "delete":
        rc, body = call("resource delete", "DeleteResource", "s", args.resource, timeout=t)
        what = f"{args.resource} deleted"
    elif a == "create":
        cls, provider, agent_type = parse_agent(args.agent)
        rc, body = call("resource create", "CreatePrimitive", "ssssa{ss}a{ss}aa{ss}s", args.resource, cls, provider,
                        agent_type, pairs(args.params, "parameter"), pairs(args.meta, "meta attribute"),
                        [parse_op(o) for o in args.op], args.group, timeout=t)
        what = f"{args.resource} ({args.agent}) created" + (f" in group {args.group}" if args.group else "")
    elif a == "update":
        rc, body = call("resource update", "UpdateResource", "sa{ss}a{ss}", args.resource,
                        pairs(args.params, "parameter"), pairs(args.meta, "meta attribute"), timeout=t)
        what = f"{args.resource} updated"
    else:  # pragma: no cover - argparse limits the choices
        return 2
    if rc != EXIT_OK:
        return rc
    return done("resource", what, body if body else [])
