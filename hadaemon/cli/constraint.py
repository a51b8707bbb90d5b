"""hactl constraint: location, colocation, order, delete, list (through org.hadaemon.Crm1)."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

from hadaemon.cli.crmcall import EXIT_OK, add_timeout, call, done


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("location", help="RESOURCE prefers (score > 0) or avoids (score < 0) NODE")
    p.add_argument("resource")
    p.add_argument("node")
    p.add_argument("score", help="an integer, INFINITY or -INFINITY")
    p.add_argument("--id", default="", help="the constraint's id (default: made up)")
    p = sub.add_parser("colocation", help="RESOURCE runs with (score > 0) or apart from (< 0) WITH")
    p.add_argument("resource")
    p.add_argument("with_resource", metavar="WITH")
    p.add_argument("score")
    p.add_argument("--id", default="")
    p = sub.add_parser("order", help="FIRST starts before THEN (and THEN stops before FIRST)")
    p.add_argument("first")
    p.add_argument("then")
    p.add_argument("--kind", default="Mandatory", choices=("Mandatory", "Optional", "Serialize"))
    p.add_argument("--id", default="")
    p = sub.add_parser("delete", help="delete the constraint with this id")
    p.add_argument("id")
    sub.add_parser("list", help="every constraint, one a line")
    for p in sub.choices.values():
        add_timeout(p)


def describe(c: ET.Element) -> str:
    """One line per constraint, in the words hactl's arguments use."""
    cid = c.get("id", "")
    if c.tag == "rsc_location":
        if c.get("node") is not None:
            return f"{cid}: location {c.get('rsc')} {c.get('node')} {c.get('score')}"
        rules = []
        for rule in c.findall("rule"):
            terms = [f"{e.get('attribute')} {e.get('operation')} {e.get('value', '')}".strip()
                     for e in rule.findall("expression")]
            terms += [f"date {d.get('operation')} {d.get('end') or d.get('start') or ''}".strip()
                      for d in rule.findall("date_expression")]
            rules.append(f"{rule.get('score', rule.get('score-attribute', ''))} if "
                         + f" {rule.get('boolean-op', 'and')} ".join(terms))
        return f"{cid}: location {c.get('rsc')} rule {'; '.join(rules)}"
    if c.tag == "rsc_colocation":
        return f"{cid}: colocation {c.get('rsc', c.get('from'))} with {c.get('with-rsc', c.get('to'))} {c.get('score')}"
    if c.tag == "rsc_order":
        kind = c.get("kind") or ("Mandatory" if c.get("score") in (None, "INFINITY") else f"score {c.get('score')}")
        return f"{cid}: order {c.get('first', c.get('to'))} then {c.get('then', c.get('from'))} ({kind})"
    return f"{cid}: {c.tag}"


def run(args) -> int:
    a, t = args.action, getattr(args, "timeout", 60.0)
    if a is None:
        print("hactl constraint: give an action (hactl constraint --help)", file=sys.stderr)
        return 2
    if a == "list":
        rc, body = call("constraint list", "GetCib", timeout=t)
        if rc == EXIT_OK:
            cons = ET.fromstring(body[0]).find("configuration/constraints")
            for c in (cons if cons is not None else []):
                print(describe(c))
        return rc
    if a == "delete":
        rc, body = call("constraint delete", "DeleteConstraint", "s", args.id, timeout=t)
        return done("constraint", f"constraint {args.id} deleted", body) if rc == EXIT_OK else rc
    if a == "location":
        rc, body = call("constraint location", "AddLocation", "ssss", args.id, args.resource, args.node, args.score,
                        timeout=t)
    elif a == "colocation":
        rc, body = call("constraint colocation", "AddColocation", "ssss", args.id, args.resource,
                        args.with_resource, args.score, timeout=t)
    else:
        rc, body = call("constraint order", "AddOrder", "ssss", args.id, args.first, args.then, args.kind, timeout=t)
    if rc != EXIT_OK:
        return rc
    return done("constraint", f"constraint {body[0]} added", body)
