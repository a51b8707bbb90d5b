"""Issue 10's "no false deaths", shortened: 3 nodes at the failover timings (keepalive 50ms, deadtime 200ms)
with a CPU hog in every node's namespace and messages sent around the ring through Heartbeat1.Send for
30 s: no membership change, no node dead, and the messages arrive in order. The daemons run with ha.cf's
default `realtime on` (SCHED_RR). The 10-minute version with figures: `bench/heartbeat.py --load`."""
import asyncio
import time

import pytest

from hadaemon.testing.heartbeat import BusClient, HeartbeatCluster
from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["node1", "node2", "node3"]
SECONDS = 30
RATE = 1000 / len(NODES)   # messages a second sent by each node: 1,000 in all
INFLIGHT = 16


async def _load(hb, seconds):
    clients, received = {}, {n: [] for n in NODES}
    for n in NODES:
        cl = await BusClient(hb.c.dbus(n)).connect()
        cl.on_signal(lambda member, args, n=n: received[n].append(int(bytes(args[2]).split(b" ")[0]))
                     if member == "MessageReceived" else None)
        clients[n] = cl
    sent = {n: 0 for n in NODES}
    refused = []

    async def one(n, dst, k):
        try:
            await clients[n].send(dst, "load", b"%d " % k + b"x" * 200)
            sent[n] += 1
        except RuntimeError as exc:   # Busy is back-pressure, anything else a failure
            refused.append(str(exc))

    async def sender(i, n):
        """Calls issued in order on one connection (so sent in order), at most INFLIGHT unanswered."""
        dst = NODES[(i + 1) % len(NODES)]
        t0 = time.monotonic()
        k = 0
        pending = set()
        while time.monotonic() - t0 < seconds:
            delay = t0 + k / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= INFLIGHT:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(asyncio.ensure_future(one(n, dst, k)))
            await asyncio.sleep(0)   # the call goes out before the next one is made
            k += 1
        if pending:
            await asyncio.wait(pending)
    await asyncio.gather(*(sender(i, n) for i, n in enumerate(NODES)))
    await asyncio.sleep(2)
    for cl in clients.values():
        cl.close()
    return sent, received, refused


def test_no_membership_change_under_cpu_hogs_and_messages_at_fast_timings():
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="50ms", deadtime="200ms", initdead="2")
        hb.start_all()
        for n in NODES:
            hb.wait_states(n, {m: "up" for m in NODES}, timeout=30)
        for n in NODES:
            assert "scheduling: SCHED_RR priority 1" in hb.procs[n].output(), hb.procs[n].output()[-2000:]
        epochs = {n: hb.props(n)["Epoch"] for n in NODES}
        marks = {n: len(hb.procs[n].output()) for n in NODES}
        hogs = [c.spawn(n, ["sh", "-c", "while :; do :; done"], name="hog") for n in NODES]
        try:
            sent, received, refused = asyncio.run(_load(hb, SECONDS))
        finally:
            for h in hogs:
                h.terminate()
        print(f"sent {sum(sent.values())} messages in {SECONDS} s ({sum(sent.values()) / SECONDS:.0f}/s), "
              f"{len(refused)} refused")
        logs = {n: hb.procs[n].output()[marks[n]:] for n in NODES}
        for n in NODES:
            assert " is dead " not in logs[n] and "membership epoch" not in logs[n], logs[n][-3000:]
            assert hb.props(n)["Epoch"] == epochs[n]
        assert not [r for r in refused if "Busy" not in r], refused[:5]
        for i, n in enumerate(NODES):
            got = received[NODES[(i + 1) % len(NODES)]]
            assert sent[n] > 0 and got == sorted(got) and len(got) == len(set(got)) == sent[n], \
                (n, sent[n], len(got))
