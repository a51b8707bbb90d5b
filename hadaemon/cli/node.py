"""hactl node: standby, online, maintenance, list (through org.hadaemon.Crm1)."""
from __future__ import annotations

import sys

from hadaemon.cli.crmcall import EXIT_OK, add_timeout, call, done, status


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("standby", help="move every resource off NODE and keep them off").add_argument("node")
    sub.add_parser("online", help="NODE may run resources again").add_argument("node")
    p = sub.add_parser("maintenance", help="leave the resources on NODE (or, with --cluster, everywhere) alone: "
                                           "maintenance NODE|--cluster [on|off]")
    p.add_argument("words", nargs="*", metavar="NODE|on|off")
    p.add_argument("--cluster", action="store_true", help="the whole cluster (maintenance-mode)")
    sub.add_parser("list", help="nodes with their state and attributes")
    for p in sub.choices.values():
        add_timeout(p)


def run(args) -> int:
    a, t = args.action, getattr(args, "timeout", 60.0)
    if a is None:
        print("hactl node: give an action (hactl node --help)", file=sys.stderr)
        return 2
    if a == "list":
        rc, st = status("node list", timeout=min(t, 10))
        if st is None:
            return rc
        for name, n in sorted(st.get("nodes", {}).items()):
            attrs = " ".join(f"{k}={v}" for k, v in sorted(n.get("attributes", {}).items()))
            print(f"{name}: {n.get('state')}" + (f" {attrs}" if attrs else ""))
        return EXIT_OK
    if a == "standby":
        rc, body = call("node standby", "StandbyNode", "s", args.node, timeout=t)
        what = f"{args.node} is in standby"
    elif a == "online":
        rc, body = call("node online", "OnlineNode", "s", args.node, timeout=t)
        what = f"{args.node} is online"
    else:
        words = list(args.words)
        state = words.pop() if words and words[-1] in ("on", "off") else "on"
        if args.cluster == bool(words) or len(words) > 1:
            print("hactl node maintenance: give one NODE or --cluster, then on or off", file=sys.stderr)
            return 2
        node = "" if args.cluster else words[0]
        rc, body = call("node maintenance", "SetMaintenance", "sb", node, state == "on", timeout=t)
        what = f"maintenance {state} for {node or 'the cluster'}"
    return done("node", what, body) if rc == EXIT_OK else rc
