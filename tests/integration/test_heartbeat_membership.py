"""ha-heartbeat in network namespaces: membership forms, cut nodes die, links, keys, restarts, loss."""
import asyncio
import time

import pytest

from hadaemon.testing.heartbeat import BusClient, HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root]

NODES = ["node1", "node2", "node3"]
ALL_UP = {n: "up" for n in NODES}


async def _watch_dead(hb, observers, victim, timeout):
    """Connect to each observer's bus; return {observer: monotonic time its NodeStateChanged(victim, dead)}."""
    seen = {}
    clients = [await BusClient(hb.c.dbus(o)).connect() for o in observers]
    done = asyncio.Event()
    for o, cl in zip(observers, clients):
        def handler(member, args, o=o):
            if member == "NodeStateChanged" and args == [victim, "dead"] and o not in seen:
                seen[o] = time.monotonic()
                if len(seen) == len(observers):
                    done.set()
        cl.on_signal(handler)
    return clients, seen, done


@pytest.mark.slow
@pytest.mark.parametrize("keepalive, deadtime", [(0.1, 0.5), (0.2, 1.0)])
def test_three_nodes_form_membership_and_a_cut_node_is_dead_within_deadtime_plus_two_keepalives(keepalive,
                                                                                                  deadtime):
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive=f"{keepalive * 1000:g}ms", deadtime=f"{deadtime * 1000:g}ms",
                              initdead="2")
        hb.start_all()
        for n in NODES:
            hb.wait_states(n, ALL_UP)
        props = hb.props("node1")
        assert props["Members"] == NODES
        assert props["LocalNode"] == "node1"
        assert props["Nodes"]["node2"] == ["up", {"eth0": "up"}]
        epoch_before = props["Epoch"]

        async def cut_and_watch():
            clients, seen, done = await _watch_dead(hb, ["node1", "node2"], "node3", 10)
            t_cut = time.monotonic()
            c.cut("node3")
            try:
                await asyncio.wait_for(done.wait(), 10)
            finally:
                for cl in clients:
                    cl.close()
            return {o: t - t_cut for o, t in seen.items()}

        latency = asyncio.run(cut_and_watch())
        print(f"dead seen on D-Bus after {latency} s (bound {deadtime + 2 * keepalive:g} s)")
        for observer, seconds in latency.items():
            assert seconds <= deadtime + 2 * keepalive, (observer, seconds)
        for o in ("node1", "node2"):
            p = hb.props(o)
            assert p["Members"] == ["node1", "node2"]
            assert p["Nodes"]["node3"] == ["dead", {"eth0": "dead"}]
            assert p["Epoch"] > epoch_before
            # silent for warntime (deadtime / 2): logged as a warning before the death
            lines = hb.procs[o].output().splitlines()
            warn = [i for i, ln in enumerate(lines) if "node node3: no heartbeat for" in ln
                    and "[NODE=node3 EVENT=warn]" in ln]
            dead = [i for i, ln in enumerate(lines) if "node node3 is dead" in ln and "EVENT=dead" in ln]
            assert warn and dead and warn[-1] < dead[-1], "\n".join(lines[-20:])
        # the cut node sees its own link down and the others dead
        hb.wait_states("node3", {"node1": "dead", "node2": "dead"})
        c.restore("node3")
        for n in NODES:
            hb.wait_states(n, ALL_UP)
        assert hb.props("node1")["Epoch"] >= epoch_before + 2


@pytest.mark.slow
def test_two_links_cutting_one_keeps_node_up_and_marks_that_link_dead():
    with Cluster(NODES, links=2) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        hb.start_all()
        hb.wait_states("node1", ALL_UP)
        wait_until(lambda: hb.links_of("node1", "node3") == {"eth0": "up", "eth1": "up"}, 10)
        epoch = hb.props("node1")["Epoch"]
        c.cut("node3", link=1)
        wait_until(lambda: hb.links_of("node1", "node3") == {"eth0": "up", "eth1": "dead"}, 10,
                   message="node3's eth1 dead as seen by node1")
        time.sleep(1.0)  # twice deadtime: still up, link still dead, no membership change
        p = hb.props("node1")
        assert p["Nodes"]["node3"] == ["up", {"eth0": "up", "eth1": "dead"}]
        assert p["Nodes"]["node2"] == ["up", {"eth0": "up", "eth1": "up"}]
        assert p["Epoch"] == epoch
        # node3 itself: its eth1 is down, so every peer's eth1 is dead, the peers stay up over eth0
        p3 = hb.props("node3")
        assert p3["Nodes"]["node1"] == ["up", {"eth0": "up", "eth1": "dead"}]
        assert p3["Nodes"]["node3"][1] == {"eth0": "up", "eth1": "dead"}
        c.restore("node3", link=1)
        wait_until(lambda: hb.links_of("node1", "node3") == {"eth0": "up", "eth1": "up"}, 10)
        # now cut the other link too: dead
        c.cut("node3")
        hb.wait_states("node1", {"node3": "dead"}, timeout=10)
        assert hb.links_of("node1", "node3") == {"eth0": "dead", "eth1": "dead"}


@pytest.mark.slow
def test_node_with_wrong_key_is_never_admitted_and_its_packets_are_counted_as_auth_drops():
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        hb.write_config("node3", key="1 sha256 not-the-cluster-key-at-all")
        hb.start_all()
        hb.wait_states("node1", {"node2": "up"})
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            for o in ("node1", "node2"):
                assert hb.states(o)["node3"] in ("init", "dead")
            time.sleep(0.2)
        for o in ("node1", "node2"):
            p = hb.props(o)
            assert p["Nodes"]["node3"][0] == "dead"
            assert "node3" not in p["Members"]
            assert p["DropCounters"]["auth"] >= 10  # ~25 heartbeats in 2.5 s
        assert hb.props("node3")["Members"] == ["node3"]
        assert "[NODE=node3 EVENT=up]" not in hb.procs["node1"].output()


@pytest.mark.slow
def test_restarted_node_shows_a_new_generation():
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        hb.start_all()
        hb.wait_states("node1", ALL_UP)
        gen = hb.props("node3")["Generation"]
        epoch = hb.props("node1")["Epoch"]

        async def restart_and_watch():
            cl = await BusClient(hb.c.dbus("node1")).connect()
            events = []
            cl.on_signal(lambda member, args: events.append((member, args)))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, hb.restart, "node3")
            await loop.run_in_executor(None, hb.wait_started, "node3")
            for _ in range(100):
                if ("NodeRestarted", ["node3", gen + 1]) in events:
                    break
                await asyncio.sleep(0.05)
            cl.close()
            return events

        events = asyncio.run(restart_and_watch())
        assert ("NodeRestarted", ["node3", gen + 1]) in events
        assert hb.props("node3")["Generation"] == gen + 1
        wait_until(lambda: "restarted (generation" in hb.procs["node1"].output(), 10,
                   message="node1 to log node3's restart")
        out = hb.procs["node1"].output()
        assert f"node node3 restarted (generation {gen} -> {gen + 1})" in out
        hb.wait_states("node1", ALL_UP)
        assert hb.props("node1")["Epoch"] > epoch
        # the generation survives in the state dir: kill -9 and start again
        hb.restart("node3", kill9=True)
        hb.wait_started("node3")
        assert hb.props("node3")["Generation"] == gen + 2


@pytest.mark.slow
def test_twenty_percent_loss_causes_no_false_death_with_deadtime_ten_keepalives():
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="1", warntime="500ms", initdead="2")
        hb.start_all()
        for n in NODES:
            hb.wait_states(n, ALL_UP)
        epochs = {n: hb.props(n)["Epoch"] for n in NODES}
        marks = {n: len(hb.procs[n].output()) for n in NODES}
        c.loss(20)
        time.sleep(20)
        c.clear_loss()
        for n in NODES:
            p = hb.props(n)
            assert p["Members"] == NODES, (n, p)
            assert p["Epoch"] == epochs[n], (n, p["Epoch"], epochs[n])
            new_log = hb.procs[n].output()[marks[n]:]
            assert "EVENT=dead" not in new_log, new_log[-2000:]


@pytest.mark.parametrize("media", ["mcast", "ucast"])
def test_mcast_and_ucast_media_form_membership_and_detect_death(media):
    with Cluster(NODES) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1", media=media)
        hb.start_all()
        for n in NODES:
            hb.wait_states(n, ALL_UP)
        assert ("mcast eth0 239.0.0.1 694 1 0" if media == "mcast" else f"ucast eth0 {c.addr('node2')}") in \
            (hb.dir("node1") / "ha.cf").read_text()
        c.cut("node2")
        hb.wait_states("node1", {"node2": "dead", "node3": "up"}, timeout=10)
        c.restore("node2")
        hb.wait_states("node1", ALL_UP, timeout=10)
