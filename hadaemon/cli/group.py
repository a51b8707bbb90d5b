"""hactl group: create, add, remove, delete (ungroup) resource groups through org.hadaemon.Crm1."""
from __future__ import annotations

import sys

from hadaemon.cli.crmcall import EXIT_OK, add_timeout, call, done


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("create", help="a group of existing primitives, started in the order given")
    p.add_argument("group")
    p.add_argument("resources", nargs="+")
    p = sub.add_parser("add", help="put a primitive into a group (created when missing)")
    p.add_argument("group")
    p.add_argument("resource")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--before", default="", metavar="MEMBER")
    where.add_argument("--after", default="", metavar="MEMBER")
    p = sub.add_parser("remove", help="take a primitive out of its group (an emptied group is deleted)")
    p.add_argument("group")
    p.add_argument("resource")
    p = sub.add_parser("delete", help="ungroup: the members stay, as ungrouped primitives")
    p.add_argument("group")
    for p in sub.choices.values():
        add_timeout(p)


def run(args) -> int:
    a, t = args.action, getattr(args, "timeout", 60.0)
    if a is None:
        print("hactl group: give an action (hactl group --help)", file=sys.stderr)
        return 2
    if a == "create":
        rc, body = call("group create", "CreateGroup", "sas", args.group, list(args.resources), timeout=t)
        what = f"group {args.group} created: {' '.join(args.resources)}"
    elif a == "add":
        rc, body = call("group add", "AddToGroup", "ssss", args.group, args.resource, args.before, args.after,
                        timeout=t)
        what = f"{args.resource} added to group {args.group}"
    elif a == "remove":
        rc, body = call("group remove", "RemoveFromGroup", "ss", args.group, args.resource, timeout=t)
        what = f"{args.resource} removed from group {args.group}"
    else:
        rc, body = call("group delete", "DeleteGroup", "s", args.group, timeout=t)
        what = f"group {args.group} deleted (its members stay)"
    return done("group", what, body) if rc == EXIT_OK else rc
