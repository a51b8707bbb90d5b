"""The README demo: a 3-node ha-heartbeat cluster in network namespaces; a node is cut off and comes back."""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from hadaemon.testing.heartbeat import BusClient, HeartbeatCluster
from hadaemon.testing.netns import Cluster

NODES = ["node1", "node2", "node3"]
KEEPALIVE, WARNTIME, DEADTIME = "200ms", "600ms", "1"


class Show:
    """Timestamped lines relative to the demo's start."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, text: str = "", indent: bool = False) -> None:
        if indent:
            for line in text.splitlines():
                print(f"{'':12}{line}")
        else:
            print(f"[{time.monotonic() - self.t0:7.2f}s] {text}")
        sys.stdout.flush()


def table(hb: HeartbeatCluster, observer: str) -> str:
    p = hb.props(observer)
    rows = [("NODE", "STATE", "LINK eth0")]
    for name, (state, links) in sorted(p["Nodes"].items()):
        rows.append((name, state, links.get("eth0", "-")))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"as seen by {observer}: epoch {p['Epoch']}, members {' '.join(p['Members'])}"]
    lines += ["  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


async def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def run_demo(show: Show) -> int:
    show(f"creating 3 network namespaces ({', '.join(NODES)}) joined by a bridge")
    with Cluster(NODES) as c:
        show("addresses: " + ", ".join(f"{n} {c.addr(n)}" for n in NODES) + f" ({c.subnet()})")
        hb = HeartbeatCluster(c, keepalive=KEEPALIVE, warntime=WARNTIME, deadtime=DEADTIME, initdead="2")
        show(f"ha.cf: keepalive {KEEPALIVE}, warntime {WARNTIME}, deadtime {DEADTIME}s, bcast eth0, "
             f"authkeys sha256; each node has its own D-Bus")
        show("starting ha-heartbeat on every node")
        hb.start_all()
        events = []  # (time, observer, member, args)
        clients = []
        for o in NODES:
            cl = await BusClient(c.dbus(o)).connect()
            cl.on_signal(lambda member, args, o=o: events.append((time.monotonic(), o, member, args)))
            clients.append(cl)
        try:
            if not await wait_for(lambda: all(hb.props(o)["Members"] == NODES for o in NODES), 20):
                show("membership did not form within 20 s; daemon logs:")
                for n in NODES:
                    show(hb.procs[n].output()[-1500:], indent=True)
                return 1
            show("membership formed on every node")
            show(table(hb, "node1"), indent=True)
            await asyncio.sleep(1.5)

            show("cutting node3 off: ip link set eth0 down inside node3")
            mark = len(events)
            t_cut = time.monotonic()
            c.cut("node3")
            seen = set()
            since = ["the cut"]

            def report():
                for t, o, member, args in events[mark:]:
                    key = (o, member, tuple(map(str, args)))
                    if key in seen or o == "node3":
                        continue
                    seen.add(key)
                    if member == "NodeStateChanged" and args[0] == "node3":
                        show(f"{o}: node3 is {args[1]} ({(t - t_cut) * 1000:.0f} ms after {since[0]})")
                    elif member == "MembershipChanged":
                        show(f"{o}: membership epoch {args[0]}: {' '.join(args[1])}")
            ok = await wait_for(lambda: (report(), sum(1 for _, o, m, a in events[mark:]
                                                      if m == "NodeStateChanged" and a == ["node3", "dead"]
                                                      and o != "node3") >= 2)[1], 10)
            await asyncio.sleep(0.1)
            report()
            if not ok:
                show("node3 was not declared dead within 10 s")
                return 1
            show(table(hb, "node1"), indent=True)
            show(table(hb, "node3"), indent=True)
            await asyncio.sleep(1.5)

            show("bringing node3 back: ip link set eth0 up")
            mark = len(events)
            since[0] = "the link came back"
            t_cut = time.monotonic()
            c.restore("node3")
            ok = await wait_for(lambda: (report(), all(hb.props(o)["Members"] == NODES for o in NODES))[1], 10)
            await asyncio.sleep(0.2)
            report()
            if not ok:
                show("node3 did not rejoin within 10 s")
                return 1
            show(f"node3 rejoined ({(time.monotonic() - t_cut) * 1000:.0f} ms after the link came back)")
            show(table(hb, "node1"), indent=True)
            show("hactl status on node1:")
            env = dict(os.environ, **c.dbus_env("node1"))
            cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "status"], capture_output=True,
                                text=True, env=env, timeout=30)
            show(cp.stdout or cp.stderr, indent=True)
        finally:
            for cl in clients:
                cl.close()
            show("cleaning up: stopping daemons, deleting namespaces")
    show("done")
    return 0


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="python -m hadaemon.demo", description=__doc__).parse_args(argv)
    if os.geteuid() != 0:
        print("hadaemon demo: needs root (it creates network namespaces); run: sudo ./scripts/demo",
              file=sys.stderr)
        return 2
    show = Show()
    print("hadaemon demo: heartbeat membership in a 3-node cluster of network namespaces")
    try:
        return asyncio.run(asyncio.wait_for(run_demo(show), 60))
    except asyncio.TimeoutError:
        print("hadaemon demo: did not finish within 60 s", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
