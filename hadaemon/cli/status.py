"""hactl status: nodes, their states and per-link status, epoch and drop counters from ha-heartbeat."""
from __future__ import annotations

import asyncio
import json
import sys

from hadaemon.bus.dbusnext import DBusError, Message, MessageType, connect_system_bus

BUS_NAME = "org.hadaemon.Heartbeat1"
OBJECT_PATH = "/org/hadaemon/Heartbeat1"
INTERFACE = "org.hadaemon.Heartbeat1"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the raw properties as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for ha-heartbeat (default 5)")


async def fetch(timeout: float = 5.0) -> dict:
    """GetAll of org.hadaemon.Heartbeat1 as plain Python values (raises RuntimeError with a reason)."""
    try:
        bus = await asyncio.wait_for(connect_system_bus(), timeout)
    except (OSError, asyncio.TimeoutError, DBusError) as exc:
        raise RuntimeError(f"cannot connect to the system bus: {exc}") from None
    try:
        reply = await asyncio.wait_for(bus.call(Message(
            destination=BUS_NAME, path=OBJECT_PATH, interface="org.freedesktop.DBus.Properties",
            member="GetAll", signature="s", body=[INTERFACE])), timeout)
    except asyncio.TimeoutError:
        raise RuntimeError(f"{BUS_NAME} did not answer within {timeout:g}s") from None
    finally:
        bus.disconnect()
    if reply.message_type == MessageType.ERROR:
        detail = reply.body[0] if reply.body else ""
        if reply.error_name == "org.freedesktop.DBus.Error.ServiceUnknown":
            raise RuntimeError(f"ha-heartbeat is not running ({BUS_NAME} is not on the bus)")
        raise RuntimeError(f"{reply.error_name}: {detail}")
    return {k: v.value for k, v in reply.body[0].items()}


def render(props: dict) -> str:
    """The human view: header, one row per node with its state and each link's status, drop counters."""
    nodes = props.get("Nodes", {})
    links = sorted({ln for _, (_, lk) in nodes.items() for ln in lk})
    local = props.get("LocalNode", "")
    lines = [f"local node {local} (generation {props.get('Generation', 0)}), membership epoch "
             f"{props.get('Epoch', 0)}: {' '.join(props.get('Members', []))}", ""]
    header = ["NODE", "STATE"] + [f"LINK {ln}" for ln in links]
    rows = [header]
    for name in sorted(nodes):
        state, lk = nodes[name]
        rows.append([name + (" (local)" if name == local else ""), state] + [lk.get(ln, "-") for ln in links])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    drops = props.get("DropCounters", {})
    total = sum(drops.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(drops.items()) if v) or "none"
    lines += ["", f"dropped packets: {total} ({detail})"]
    return "\n".join(lines)


def run(args) -> int:
    try:
        props = asyncio.run(fetch(args.timeout))
    except RuntimeError as exc:
        print(f"hactl status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(props, indent=2, sort_keys=True, default=list))
    else:
        print(render(props))
    return 0
