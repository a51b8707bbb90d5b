"""hactl director: the director's table with health (like `ipvsadm -Ln`), drain/restore/weight/reload via D-Bus."""
from __future__ import annotations

import asyncio
import sys
import time

BUS_NAME = "org.hadaemon.Director1"
OBJECT_PATH = "/org/hadaemon/Director1"
INTERFACE = "org.hadaemon.Director1"
_FORWARD = {"gate": "Route", "masq": "Masq", "ipip": "Tunnel"}


TIMEOUT = 5.0


def add_arguments(parser) -> None:
    parser.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS",
                        help="give up when ha-ldirectord does not answer within this time (default 5)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("status", help="virtual services and real servers with weight and health (default)")
    for name, helptext in (("drain", "weight 0: no new connections to a real server"),
                           ("restore", "back to the configured weight")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("virtual", help="virtual service: tcp:ADDRESS:PORT, ADDRESS:PORT, fwm:MARK")
        p.add_argument("real", help="real server: ADDRESS:PORT or ADDRESS")
    p = sub.add_parser("weight", help="set a real server's weight (until restore)")
    p.add_argument("virtual")
    p.add_argument("real")
    p.add_argument("weight", type=int)
    sub.add_parser("reload", help="re-read ldirectord.cf (the running config is kept if the new one is bad)")


def _ago(t: float, now: float) -> str:
    if not t:
        return "never"
    s = max(0, int(now - t))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago"


def format_status(backend: str, config: str, status: str, virtuals, reals, now: float | None = None) -> str:
    """ipvsadm -Ln's layout plus Health and LastCheck columns, from the D-Bus properties."""
    now = time.time() if now is None else now
    lines = [f"Director: {status}", f"Config: {config}", "Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight Health      LastCheck"]
    by_virtual = {}
    for r in reals:
        by_virtual.setdefault(r[0], []).append(r)
    for key, proto, address, port, fwmark, sched, persistent, netmask, checktype, service in virtuals:
        if proto == "fwm":
            head = f"FWM  {fwmark}" + (" IPv6" if key.startswith("fwm6:") else "")
        else:
            where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            head = f"{proto.upper()}  {where}"
        head += f" {sched}"
        if persistent:
            head += f" persistent {persistent}" + (f" mask {netmask}" if netmask else "")
        lines.append(head + f"   [check {checktype}" + (f" {service}" if checktype == "negotiate" else "") + "]")
        for _v, real, method, health, weight, _configured, ok, detail, when, override in by_virtual.get(key, []):
            w = "-" if weight < 0 else str(weight)
            if override:
                w += "*"
            last = "" if health == "fallback" else f"{'ok' if ok else 'FAIL'} {_ago(when, now)}"
            if detail and not ok and health != "fallback":
                last += f" ({detail})"
            lines.append(f"  -> {real:<28} {_FORWARD.get(method, method):<7} {w:<6} {health:<11} {last}".rstrip())
    lines.append("(weight - : not in the table; * : set by an admin)")
    return "\n".join(lines) + "\n"


async def _request(member: str, signature: str, body, timeout: float, interface: str = INTERFACE):
    """One method call to the director, bounded: connecting and the answer each within `timeout`
    (a director that owns its name but does not answer — stopped, hung — is given up on).
    Raises RuntimeError with a one-line reason."""
    from hadaemon.bus.dbusnext import DBusError, Message, MessageType, connect_system_bus

    try:
        bus = await asyncio.wait_for(connect_system_bus(), timeout)
    except (OSError, EOFError, asyncio.TimeoutError, DBusError) as e:
        raise RuntimeError(f"cannot connect to the system bus: {e or 'timed out'}") from None
    try:
        reply = await asyncio.wait_for(bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=interface,
                                                         member=member, signature=signature, body=list(body))),
                                       timeout)
    except asyncio.TimeoutError:
        raise RuntimeError(f"ha-ldirectord did not answer within {timeout:g}s ({BUS_NAME} is on the bus but "
                           "its owner does not respond: stopped or hung?)") from None
    except (OSError, EOFError) as e:
        raise RuntimeError(f"lost the system bus: {e}") from None
    finally:
        bus.disconnect()
    if reply.message_type == MessageType.ERROR:
        if reply.error_name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
            raise RuntimeError(f"ha-ldirectord is not running ({BUS_NAME} is not on the bus)")
        detail = reply.body[0] if reply.body else ""
        raise RuntimeError(f"{reply.error_name}: {detail}")
    return reply.body


async def _call(member: str, signature: str = "", body=(), timeout: float = TIMEOUT):
    return await _request(member, signature, body, timeout)


async def _get_all(timeout: float = TIMEOUT):
    body = await _request("GetAll", "s", [INTERFACE], timeout, "org.freedesktop.DBus.Properties")
    return {k: v.value for k, v in body[0].items()}


def run(args) -> int:
    action = getattr(args, "action", None) or "status"
    t = getattr(args, "timeout", TIMEOUT)
    try:
        if action == "status":
            props = asyncio.run(_get_all(t))
            sys.stdout.write(format_status(props["Backend"], props["ConfigFile"], props["Status"],
                                           props["VirtualServices"], props["RealServers"]))
        elif action == "drain":
            asyncio.run(_call("Drain", "ss", (args.virtual, args.real), t))
        elif action == "restore":
            asyncio.run(_call("Restore", "ss", (args.virtual, args.real), t))
        elif action == "weight":
            if args.weight < 0:
                print("hactl director: weight must be 0..65535", file=sys.stderr)
                return 2
            asyncio.run(_call("SetWeight", "ssu", (args.virtual, args.real, args.weight), t))
        elif action == "reload":
            # a reload may take longer than a query (name lookups are bounded at 10 s): first make
            # sure the director answers at all, within the timeout
            asyncio.run(_request("Ping", "", (), t, "org.freedesktop.DBus.Peer"))
            asyncio.run(_call("Reload", timeout=max(t, 30.0)))
    except RuntimeError as e:
        print(f"hactl director {action}: {e}", file=sys.stderr)
        return 1
    except (OSError, EOFError) as e:
        print(f"hactl director: cannot reach {BUS_NAME} on the system bus: {e}", file=sys.stderr)
        return 1
    return 0
