"""hactl status: the cluster like crm_mon (nodes, DC, quorum, resources, fail-counts) from Crm1, and
membership and links from Heartbeat1; says which daemon is missing and shows what the other one knows."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Dict, List

from hadaemon.cli.crmcall import paint, table, use_colour

HB_INTERFACE = "org.hadaemon.Heartbeat1"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print {'crm': Crm1 status, 'heartbeat': Heartbeat1 properties, 'errors': [...]}")
    parser.add_argument("--watch", action="store_true",
                        help="keep showing the status, redrawn on every change (Ctrl-C ends)")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="with --watch: redraw at least this often (default 5)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each daemon (default 5)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour: on a terminal (auto, the default), always or never")


# --- fetching ---------------------------------------------------------------------------------------
async def fetch_heartbeat(timeout: float) -> dict:
    """Heartbeat1's properties (through the typed client) under their D-Bus names (raises RuntimeError)."""
    from hadaemon.bus.heartbeat_client import HeartbeatError, snapshot

    try:
        snap = await snapshot(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or None, timeout)
    except HeartbeatError as exc:
        raise RuntimeError(exc.message) from None
    return {"LocalNode": snap.local_node, "Generation": snap.generation, "Epoch": snap.epoch,
            "Members": list(snap.members), "Nodes": {n: [st, dict(lk)] for n, (st, lk) in snap.nodes.items()},
            "DropCounters": dict(snap.drop_counters)}


async def fetch_all(crm, timeout: float) -> dict:
    """{'crm': status or None, 'heartbeat': props or None, 'errors': [text]} from one bus connection."""
    from hadaemon.bus.crm_client import CrmError

    out = {"crm": None, "heartbeat": None, "errors": []}
    try:
        out["crm"] = await crm.status(timeout)
    except CrmError as exc:
        out["errors"].append(exc.message)
    try:
        out["heartbeat"] = await fetch_heartbeat(timeout)
    except RuntimeError as exc:
        out["errors"].append(str(exc))
    return out


# --- rendering ----------------------------------------------------------------------------------------
def _agent(r: dict) -> str:
    if r.get("provider"):
        return f"{r['class']}:{r['provider']}:{r['type']}"
    return f"{r['class']}:{r['type']}" if r.get("class") else ""


def _where(r: dict, colour: bool) -> str:
    role = r.get("role", "")
    nodes = " ".join(r.get("nodes", []))
    flags = []
    if not r.get("managed", True):
        flags.append("unmanaged")
    if r.get("target_role", "").lower() == "stopped":
        flags.append("disabled")
    text = f"{role} {nodes}".strip()
    hue = {"Started": "green", "Failed": "red", "Orphan": "yellow", "Partial": "yellow"}.get(role, "")
    if role == "Stopped":
        hue = "dim" if "disabled" in flags else "yellow"
    out = paint(text, hue, colour)
    if flags:
        out += f" ({', '.join(flags)})"
    return out


def render_crm(status: dict, colour: bool) -> List[str]:
    nodes: Dict[str, dict] = status.get("nodes", {})
    resources = status.get("resources", [])
    dc = status.get("dc") or ""
    quorum = status.get("quorum")
    lines = ["Cluster Summary:"]
    if dc:
        q = "partition with quorum" if quorum else paint("partition WITHOUT quorum", "red", colour)
        lines.append(f"  * Current DC: {dc} - {q}")
    else:
        lines.append("  * Current DC: " + paint("NONE", "red", colour))
    lines.append(f"  * CIB version: {status.get('cib_epoch', '')}")
    t = status.get("transition") or {}
    if t:
        lines.append(f"  * Last transition: {t.get('id', 0)} ({t.get('state', '')})")
    prims = sum(1 for r in resources if r.get("kind") == "primitive" and r.get("role") != "Orphan")
    lines.append(f"  * {len(nodes)} node{'s' if len(nodes) != 1 else ''} configured")
    lines.append(f"  * {prims} resource instance{'s' if prims != 1 else ''} configured")
    lines += ["", "Node List:"]
    groups: Dict[str, List[str]] = {}
    for name in sorted(nodes):
        n = nodes[name]
        state = n.get("state", "offline")
        label = {"online": "Online", "standby": "Standby", "offline": "OFFLINE", "unclean": "UNCLEAN",
                 "pending": "Pending"}.get(state, state)
        if n.get("maintenance") and state in ("online", "standby"):
            label = "Maintenance"
        groups.setdefault(label, []).append(name + (" (local)" if name == status.get("local_node") else ""))
    hue = {"Online": "green", "Standby": "yellow", "OFFLINE": "red", "UNCLEAN": "red", "Pending": "yellow",
           "Maintenance": "yellow"}
    for label in ("Online", "Standby", "Maintenance", "Pending", "OFFLINE", "UNCLEAN"):
        if label in groups:
            lines.append(f"  * {paint(label, hue[label], colour)}: [ {' '.join(groups[label])} ]")
    lines += ["", "Full List of Resources:"]
    if not resources:
        lines.append("  * No resources")
    for r in resources:
        if r.get("parent"):
            continue
        if r["kind"] == "group":
            extra = " (disabled)" if r.get("target_role", "").lower() == "stopped" else ""
            extra += " (unmanaged)" if not r.get("managed", True) else ""
            lines.append(f"  * Resource Group: {r['id']}{extra}:")
            for m in resources:
                if m.get("parent") == r["id"]:
                    lines.append(f"    * {m['id']}\t({_agent(m)}):\t {_where(m, colour)}")
        elif r["kind"] == "clone":
            promotable = "promoted" in r
            lines.append(f"  * Clone Set: {r['id']} [{r['members'][0] if r.get('members') else ''}]"
                         + (" (promotable)" if promotable else "") + ":")
            if promotable and r["nodes"]:
                others = [n for n in r["nodes"] if n not in r["promoted"]]
                if r["promoted"]:
                    lines.append(f"    * {paint('Promoted', 'green', colour)}: [ {' '.join(r['promoted'])} ]")
                if others:
                    lines.append(f"    * {paint('Unpromoted', 'green', colour)}: [ {' '.join(others)} ]")
            elif r["nodes"]:
                lines.append(f"    * {paint('Started', 'green', colour)}: [ {' '.join(r['nodes'])} ]")
            else:
                lines.append(f"    * {_where(r, colour)}")
        else:
            lines.append(f"  * {r['id']}\t({_agent(r)}):\t {_where(r, colour)}")
    fails: Dict[str, List[str]] = {}
    for r in resources:
        if r["kind"] != "primitive":
            continue
        for node, count in sorted(r.get("failcounts", {}).items()):
            fails.setdefault(node, []).append(f"    * {r['id']}: fail-count={count}")
    if fails:
        lines += ["", "Failure counts:"]
        for node in sorted(fails):
            lines.append(f"  * Node {node}:")
            lines.extend(paint(x, "red", colour) for x in fails[node])
    return lines


def render_heartbeat(props: dict, colour: bool) -> List[str]:
    nodes = props.get("Nodes", {})
    links = sorted({ln for _, (_, lk) in nodes.items() for ln in lk})
    local = props.get("LocalNode", "")
    lines = ["Membership:",
             f"  * Local node: {local} (generation {props.get('Generation', 0)}), membership epoch "
             f"{props.get('Epoch', 0)}: {' '.join(props.get('Members', []))}", ""]
    rows = [["NODE", "STATE"] + [f"LINK {ln}" for ln in links]]
    hues = [[]]
    good = {"up": "green", "init": "yellow", "warn": "yellow", "dead": "red"}
    for name in sorted(nodes):
        state, lk = nodes[name]
        rows.append([name + (" (local)" if name == local else ""), state] + [lk.get(ln, "-") for ln in links])
        hues.append([""] + [good.get(state, "")] + [good.get(lk.get(ln, ""), "") for ln in links])
    lines += table(rows, "  ", hues, colour)
    drops = props.get("DropCounters", {})
    total = sum(drops.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(drops.items()) if v) or "none"
    lines += ["", f"Dropped packets: {total} ({detail})"]
    return lines


def render(data: dict, colour: bool = False) -> str:
    lines: List[str] = []
    if data.get("crm") is not None:
        lines += render_crm(data["crm"], colour)
    if data.get("heartbeat") is not None:
        if lines:
            lines.append("")
        lines += render_heartbeat(data["heartbeat"], colour)
    if data.get("errors"):
        if lines:
            lines.append("")
        lines += [paint(f"Not available: {e}", "red", colour) for e in data["errors"]]
    return "\n".join(lines)


# --- the command ----------------------------------------------------------------------------------------
async def _connect(timeout: float):
    from hadaemon.bus.crm_client import CrmClient

    return await CrmClient.connect(timeout=timeout, call_timeout=timeout)


async def _once(args) -> dict:
    crm = await _connect(args.timeout)
    try:
        return await fetch_all(crm, args.timeout)
    finally:
        crm.close()


async def _watch(args, colour: bool) -> int:
    from hadaemon.bus.crm_client import INTERFACE

    crm = await _connect(args.timeout)
    changed = asyncio.Event()
    try:
        await crm.subscribe(lambda member, body: changed.set(),
                            interfaces=(INTERFACE, HB_INTERFACE, "org.freedesktop.DBus.Properties"))
        while True:
            data = await fetch_all(crm, args.timeout)
            text = render(data, colour)
            if sys.stdout.isatty():
                sys.stdout.write("\033[H\033[2J")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            sys.stdout.write(f"hactl status --watch  {stamp}\n\n{text}\n")
            if not sys.stdout.isatty():
                sys.stdout.write("\n")
            sys.stdout.flush()
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), args.interval)
                await asyncio.sleep(0.2)  # one redraw for a burst of signals
            except asyncio.TimeoutError:
                pass
    finally:
        crm.close()


def run(args) -> int:
    from hadaemon.bus.crm_client import CrmUnavailable

    colour = {"always": True, "never": False}.get(args.color, use_colour())
    try:
        if args.watch:
            return asyncio.run(_watch(args, colour))
        data = asyncio.run(_once(args))
    except CrmUnavailable as exc:  # no bus at all
        print(f"hactl status: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=list))
    else:
        text = render(data, colour)
        if text and (data["crm"] is not None or data["heartbeat"] is not None):
            print(text)
        for e in data["errors"]:
            print(f"hactl status: {e}", file=sys.stderr)
    return 0 if (data["crm"] is not None or data["heartbeat"] is not None) else 1
