"""Messaging through ha-heartbeat's D-Bus API: 10,000 messages under 20% loss arrive in order, once;
large messages are fragmented; a message to a node that dies is reported undeliverable."""
import asyncio
import time

import pytest

from hadaemon.testing.heartbeat import BusClient, HeartbeatCluster
from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["node1", "node2", "node3"]
TOTAL = 10_000
INFLIGHT = 64  # outstanding D-Bus Send calls per sender connection


async def _connect(hb):
    clients = {}
    received = {n: [] for n in NODES}
    for n in NODES:
        cl = await BusClient(hb.c.dbus(n)).connect()

        def on(member, args, n=n):
            if member == "MessageReceived":
                received[n].append((args[0], args[1], bytes(args[2])))
        cl.on_signal(on)
        clients[n] = cl
    return clients, received


async def _send_stream(client, dst, channel, bodies):
    """Send bodies in order with at most INFLIGHT calls outstanding; returns the message ids."""
    ids = []
    sem = asyncio.Semaphore(INFLIGHT)
    tasks = []

    async def one(body):
        async with sem:
            for _ in range(200):
                try:
                    return await client.send(dst, channel, body)
                except RuntimeError as exc:  # Busy: back-pressure, retry shortly
                    if "Busy" not in str(exc):
                        raise
                    await asyncio.sleep(0.05)
            raise RuntimeError("still busy after 10 s")
    for b in bodies:
        tasks.append(asyncio.ensure_future(one(b)))
        await asyncio.sleep(0)  # start each call in order so they reach the bus in order
    ids = await asyncio.gather(*tasks)
    return ids


def test_ten_thousand_messages_under_twenty_percent_loss_arrive_in_order_exactly_once():
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="1", warntime="500ms", initdead="2")
        hb.start_all()
        for n in NODES:
            hb.wait_states(n, {m: "up" for m in NODES})
        pairs = [(s, d) for s in NODES for d in NODES if s != d]
        per_pair = -(-TOTAL // len(pairs))
        plan = {(s, d): [f"{s}>{d}:{i}".encode() for i in range(per_pair)] for s, d in pairs}
        epochs = {n: hb.props(n)["Epoch"] for n in NODES}
        c.loss(20)

        async def run():
            clients, received = await _connect(hb)
            t0 = time.monotonic()
            results = await asyncio.gather(*(_send_stream(clients[s], d, "bulk", plan[(s, d)]) for s, d in pairs))
            ids = dict(zip(pairs, results))
            want = {n: sum(per_pair for s, d in pairs if d == n) for n in NODES}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and any(len(received[n]) < want[n] for n in NODES):
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # anything arriving late would be a duplicate
            elapsed = time.monotonic() - t0
            for cl in clients.values():
                cl.close()
            return ids, received, elapsed

        ids, received, elapsed = asyncio.run(run())
        c.clear_loss()
        total = sum(len(v) for v in received.values())
        print(f"{total} messages delivered in {elapsed:.1f}s under 20% loss")
        for s, d in pairs:
            sent_ids = ids[(s, d)]
            assert sent_ids == sorted(sent_ids)  # the calls reached the daemon in order
            got = [body for src, ch, body in received[d] if src == s]
            assert len(got) == per_pair, (s, d, len(got))
            assert got == plan[(s, d)], (s, d, "order/duplicates")
            assert all(ch == "bulk" for src, ch, _ in received[d] if src == s)
        assert total == per_pair * len(pairs) >= TOTAL
        for n in NODES:  # no false death under loss
            assert hb.props(n)["Epoch"] == epochs[n]


def test_large_messages_are_fragmented_compressed_and_reassembled():
    with Cluster(NODES[:2]) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="1", initdead="2", nodes=NODES[:2])
        hb.start_all()
        hb.wait_states("node1", {"node2": "up"})
        import random
        rnd = random.Random(5)
        incompressible = rnd.randbytes(200_000)
        compressible = b"CIB " * 100_000

        async def run():
            tx = await BusClient(hb.c.dbus("node1")).connect()
            rx = await BusClient(hb.c.dbus("node2")).connect()
            got = []
            rx.on_signal(lambda m, a: got.append(bytes(a[2])) if m == "MessageReceived" else None)
            await tx.send("node2", "big", incompressible)
            await tx.broadcast("big", compressible)
            for _ in range(200):
                if len(got) >= 2:
                    break
                await asyncio.sleep(0.05)
            tx.close()
            rx.close()
            return got

        c.loss(10)
        got = asyncio.run(run())
        assert got == [incompressible, compressible]


def test_message_to_a_node_that_dies_is_reported_undeliverable():
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        hb.start_all()
        hb.wait_states("node1", {m: "up" for m in NODES})

        async def run():
            tx = await BusClient(hb.c.dbus("node1")).connect()
            events = []
            tx.on_signal(lambda m, a: events.append((m, a)))
            c.partition("node3")  # carrier stays up: node3 just stops hearing and being heard
            msg_id = await tx.send("node3", "orders", b"start webserver")
            for _ in range(100):
                if any(m == "MessageUndeliverable" for m, _ in events):
                    break
                await asyncio.sleep(0.05)
            tx.close()
            return msg_id, events

        msg_id, events = asyncio.run(run())
        assert ("MessageUndeliverable", ["node3", "orders", msg_id]) in events
        assert ("NodeStateChanged", ["node3", "dead"]) in events
        assert "undeliverable (peer dead)" in hb.procs["node1"].output()
        # sending to a dead node is refused with a reason
        cp = hb.busctl("node1", "call", "org.hadaemon.Heartbeat1", "/org/hadaemon/Heartbeat1",
                       "org.hadaemon.Heartbeat1", "Send", "ssay", "node3", "orders", "1", "1", check=False)
        assert cp.returncode != 0 and "node3" in cp.stderr and "dead" in cp.stderr
