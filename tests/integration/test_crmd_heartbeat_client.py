"""The typed Heartbeat1 client (hadaemon.bus.heartbeat_client) against real ha-heartbeat daemons on
namespace nodes with private buses: properties, Send and MessageReceived, membership callbacks, refused
calls as HeartbeatError, and following a restart of ha-heartbeat."""
import asyncio

import pytest

from hadaemon.bus.heartbeat_client import HeartbeatClient, HeartbeatError, HeartbeatUnavailable, snapshot
from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow]


async def _until(pred, timeout=20.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def test_client_properties_messages_membership_errors_and_reconnect():
    with Cluster(["node1", "node2"]) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="1", initdead="2")
        hb.start_all()
        hb.wait_members(["node1", "node2"], ["node1", "node2"])

        async def scenario():
            got, members, reconnects = [], [], []
            a = HeartbeatClient(c.dbus("node1"), on_membership=lambda e, m: members.append(m),
                                on_reconnect=lambda: reconnects.append(1))
            b = HeartbeatClient(c.dbus("node2"), on_message=lambda s, ch, body: got.append((s, ch, body)))
            await a.connect()
            await b.connect()
            assert a.local_node == "node1" and a.members == ("node1", "node2") and a.generation >= 1
            assert a.nodes["node2"][0] == "up"
            await a.send("node2", "crmd", b"hello")
            await _until(lambda: got)
            assert got == [("node1", "crmd", b"hello")]
            with pytest.raises(HeartbeatError) as err:
                await a.send("nobody", "crmd", b"x")
            assert err.value.kind == "UnknownNode"
            snap = await snapshot(c.dbus("node2"))
            assert snap.local_node == "node2" and snap.members == ("node1", "node2")
            stop = asyncio.Event()
            runner = asyncio.ensure_future(a.run(stop))   # already connected: no on_reconnect yet
            gen = a.generation
            await asyncio.get_running_loop().run_in_executor(None, hb.restart, "node1")
            await _until(lambda: len(reconnects) >= 1 and a.generation > gen, 30)
            await _until(lambda: a.members == ("node1", "node2"), 30)
            c.cut("node2")
            await _until(lambda: members and members[-1] == ("node1",), 30)
            stop.set()
            await runner
            a.close()
            b.close()
            with pytest.raises(HeartbeatUnavailable):
                await a.send("node2", "crmd", b"x")

        asyncio.run(asyncio.wait_for(scenario(), 120))
