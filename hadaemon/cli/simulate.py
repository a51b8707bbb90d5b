"""hactl simulate: run the policy engine on a CIB file and print what it would do (like crm_simulate)."""
from __future__ import annotations

import sys
import time

from hadaemon.core.errors import ConfigError


# The options, declared once: add_arguments() gives them to argparse, parse_fast() reads the common command
# lines without it. (short, long, kind, metavar, help, group); kind: "flag" (store_true), "value", "int"
# (type=int) or "append" (action="append", default []).
WHAT_IF = "what-if injections (as crm_simulate)"
OPTIONS = (
    (None, "--scores", "flag", None, "print allocation scores", None),
    (None, "--save-graph", "value", "FILE", "write the transition graph XML to FILE", None),
    (None, "--show-actions", "flag", None, "print only the executed actions, one per line", None),
    (None, "--now", "int", "EPOCH", "the current time in seconds since the epoch (default: the clock)", None),
    ("-t", "--set-datetime", "value", "DATETIME", "the current time as an ISO 8601 date, e.g. '2026-12-05 01:30:00Z'",
     None),
    ("-u", "--node-up", "append", "NODE", "bring a node online", WHAT_IF),
    ("-d", "--node-down", "append", "NODE", "take a node offline cleanly", WHAT_IF),
    ("-f", "--node-fail", "append", "NODE", "fail a node (it leaves the membership unexpectedly)", WHAT_IF),
    ("-i", "--op-inject", "append", "SPEC", "add an operation result to the history: RSC_TASK_INTERVAL@NODE=RC",
     WHAT_IF),
    ("-F", "--op-fail", "append", "SPEC", "fail this action when the transition runs: RSC_TASK_INTERVAL@NODE=RC",
     WHAT_IF),
    ("-g", "--ticket-grant", "append", "TICKET", "grant a ticket", WHAT_IF),
    ("-r", "--ticket-revoke", "append", "TICKET", "revoke a ticket", WHAT_IF),
    ("-b", "--ticket-standby", "append", "TICKET", "put a ticket in standby", WHAT_IF),
    ("-e", "--ticket-activate", "append", "TICKET", "take a ticket out of standby", WHAT_IF),
    ("-q", "--quorum", "value", "BOOL", "set have-quorum (true/false)", WHAT_IF),
    ("-w", "--watchdog", "value", "BOOL", "set have-watchdog (true/false)", WHAT_IF),
    ("-I", "--save-input", "value", "FILE", "write the CIB after the injections to FILE", WHAT_IF),
    ("-O", "--save-output", "value", "FILE", "write the CIB after the simulated transition to FILE", WHAT_IF),
    ("-S", "--simulate", "flag", None, "run the transition and show the resulting status (the default output does)",
     WHAT_IF),
)
FILE_HELP = "CIB XML (cibadmin --query output or a scheduler test input); - reads standard input"


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE.xml", help=FILE_HELP)
    groups = {None: parser}
    for short, name, kind, metavar, text, group in OPTIONS:
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        flags = (short, name) if short else (name,)
        if kind == "flag":
            groups[group].add_argument(*flags, action="store_true", help=text)
        elif kind == "append":
            groups[group].add_argument(*flags, action="append", default=[], metavar=metavar, help=text)
        else:
            groups[group].add_argument(*flags, type=int if kind == "int" else None, metavar=metavar, help=text)


class Args:
    """The parsed options, as argparse's Namespace names them (dest = the long option without --)."""

    def __init__(self, **values):
        self.__dict__.update(values)


def parse_fast(argv):
    """The options of a plain command line (`FILE` and the options above, each spelled out in full, with its
    value attached or as the next word) without loading argparse, which with its regular expressions and
    translations costs more start-up time than scheduling a small CIB; None for anything else (help, a
    misspelt or abbreviated option, a missing or odd value, grouped short flags...): argparse then parses
    it, and reports the error."""
    values = {"command": "simulate", "file": None}
    by_flag = {}
    for short, name, kind, _metavar, _text, _group in OPTIONS:
        dest = name[2:].replace("-", "_")
        values[dest] = [] if kind == "append" else False if kind == "flag" else None
        by_flag[name] = by_flag[short] = (dest, kind)
    files = []
    words = iter(argv)
    for word in words:
        if word == "--":
            if files:  # argparse refuses `FILE --scores --` (the file read, what follows `--` is extra)
                return None
            files.extend(words)
            break
        if not word.startswith("-") or word == "-":
            files.append(word)
            continue
        if word.startswith("--"):
            flag, eq, value = word.partition("=")
            attached = value if eq else None
        else:
            flag, attached = word[:2], (word[2:] or None)
            if attached is not None and attached.startswith("="):
                return None
        if flag not in by_flag:
            return None
        dest, kind = by_flag[flag]
        if kind == "flag":
            if attached is not None:
                return None
            values[dest] = True
            continue
        value = attached if attached is not None else next(words, None)
        if value is None or (value.startswith("-") and value != "-"):
            return None
        if kind == "int":
            try:
                value = int(value)  # as argparse's type=int
            except ValueError:
                return None
        if kind == "append":
            values[dest].append(value)
        else:
            values[dest] = value
    if len(files) != 1:
        return None
    values["file"] = files[0]
    return Args(**values)


def _bool_option(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on", "y"):
        return "true"
    if v in ("false", "no", "0", "off", "n"):
        return "false"
    raise ValueError(f"{name} takes a boolean, not '{value}'")


def _write(path: str, data: str) -> None:
    from hadaemon.io.files import write_atomic
    write_atomic(path, data.encode(), 0o644)


def _execution_date(data: bytes) -> int | None:
    """The <cib execution-date="EPOCH"> a saved scheduler input carries: without --now or -t, the time
    the scheduler ran at (as crm_simulate's set_effective_date); None when absent or not a number."""
    if b"execution-date" not in data:
        return None
    import re  # here: re costs start-up time
    head = re.search(rb"<cib\b[^>]*>", data)
    m = re.search(rb"""\sexecution-date\s*=\s*["']\s*(\d+)\s*["']""", head.group(0)) if head else None
    return int(m.group(1)) if m else None


def run(args) -> int:
    # imports only what this run needs: a plain simulation (no injection, no saved CIB) never loads
    # ElementTree or the injection code (start-up time is most of a small CIB's run)
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    name = "<stdin>" if args.file == "-" else args.file
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as err:
        print(f"{name}:0: cannot read: {err.strerror}", file=sys.stderr)
        return 2
    from hadaemon.cli.oldcib import old_cib_refusal
    refusal = old_cib_refusal(data, name)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    now = args.now if args.now is not None else _execution_date(data)
    if now is None:
        now = int(time.time())
    if args.set_datetime:
        from hadaemon.core.cib.dates import parse_datetime
        when = parse_datetime(args.set_datetime)
        if when is None:
            print(f"hactl simulate: --set-datetime '{args.set_datetime}' is not an ISO 8601 date", file=sys.stderr)
            return 2
        now = when
    what_if = bool(args.node_up or args.node_down or args.node_fail or args.op_inject or args.op_fail
                   or args.ticket_grant or args.ticket_revoke or args.ticket_standby or args.ticket_activate
                   or args.quorum is not None or args.watchdog is not None or args.save_input
                   or args.save_output)
    if what_if:
        import xml.etree.ElementTree as ET

        from hadaemon.core.policy import inject as I
    try:
        inj = None
        if what_if:
            inj = I.Injections(args.node_up, args.node_down, args.node_fail, args.op_inject, args.ticket_grant,
                               args.ticket_revoke, args.ticket_standby, args.ticket_activate,
                               _bool_option("--quorum", args.quorum), _bool_option("--watchdog", args.watchdog))
            for spec in args.op_fail:
                I.parse_op_spec(spec)
    except ValueError as err:
        print(f"hactl simulate: {err}", file=sys.stderr)
        return 2
    try:
        original = parse_cib(data, name)
        cib, modified, mods = original, None, []
        if what_if:
            try:
                root = ET.fromstring(data)
                mods = I.apply_injections(root, inj, now)
            except ValueError as err:
                print(f"hactl simulate: {err}", file=sys.stderr)
                return 2
            except ET.ParseError as err:
                print(f"{name}:{err.position[0]}: {err}", file=sys.stderr)
                return 2
            modified = I.to_text(root)
            cib = parse_cib(modified, name) if inj.any() else original
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        return 2
    t = schedule(cib, now)
    before = schedule(original, now) if cib is not original and not args.show_actions else t
    revised_text = None
    failed_lines = []
    if modified is not None and (args.op_fail or args.save_output):
        try:
            from hadaemon.core.policy.digests import action_digest
            failed_lines = I.apply_transition(
                root, t._order, args.op_fail, now,
                lambda a: action_digest(t._ws, a.rsc, a.node, a.task, a.interval_ms))
        except ValueError as err:
            print(f"hactl simulate: {err}", file=sys.stderr)
            return 2
        after = I.to_text(root)
        if args.op_fail:
            revised_text = schedule(parse_cib(after, name), now).status_text(revised=False)
    out = []
    if args.show_actions:
        out.extend(line.strip()[2:] for line in t.executed_lines())
    else:
        counts = before.counts_line()
        if counts:
            out.extend([counts, ""])
        out.append("Current cluster status:")
        out.append(before.status_text(revised=False))
        out.append("")
        if mods:
            out.append("Performing Requested Modifications:")
            out.extend(mods)
            out.append("")
        if args.scores:
            out.append("Assignment Scores:")
            out.extend(t.score_lines())
            out.append("")
        out.append("Transition Summary:")
        out.extend(t.summary)
        out.append("")
        out.append("Executing Cluster Transition:")
        out.extend(t.executed_lines())
        out.extend(failed_lines)
        out.append("")
        out.append("Revised Cluster Status:")
        out.append(revised_text if revised_text is not None else t.status_text(revised=True))
    rc = 0
    try:
        sys.stdout.write("\n".join(out) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): the files asked for are still written
        pass
    except OSError as err:  # e.g. a full disk: said, not a traceback; the files asked for are still written
        print(f"hactl simulate: cannot write the output: {err.strerror}", file=sys.stderr)
        rc = 1
    for path, text in ((args.save_input, modified), (args.save_output, after if args.save_output else None)):
        if path and text is not None:
            try:
                _write(path, text)
            except OSError as err:
                print(f"{path}: cannot write: {err.strerror}", file=sys.stderr)
                return 1
    if args.save_graph:
        try:
            _write(args.save_graph, t.graph_xml())
        except OSError as err:
            print(f"{args.save_graph}: cannot write: {err.strerror}", file=sys.stderr)
            return 1
    return rc
