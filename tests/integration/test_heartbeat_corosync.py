"""ha-heartbeat's `stack corosync`: a Corosync 3 cluster in namespaces (one mount namespace per node for
/etc/corosync, /var/lib/corosync, /run/corosync), membership and messages through org.hadaemon.Heartbeat1
exactly as on the native stack: members and node states, Send / Broadcast / MessageReceived, the errors,
NodeRestarted on a new CPG member, a node whose corosync is cut declared dead with its knet link, and a
32-node cluster for membership."""
import asyncio
import time

import pytest

from hadaemon.testing.corosync import CorosyncCluster, corosync_missing
from hadaemon.testing.heartbeat import BusClient, HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(corosync_missing() is not None, reason=str(corosync_missing()))]

NODES = ["node1", "node2", "node3"]


def _start(c, nodes, token=1000, initdead="30"):
    cs = CorosyncCluster(c, nodes=nodes, token=token)
    cs.start_all()
    cs.wait_ring(timeout=90)
    hb = HeartbeatCluster(c, nodes=nodes, initdead=initdead, extra=["stack corosync"])
    hb.start_all()
    return cs, hb


def test_membership_messages_errors_and_restarts_on_corosync():
    with Cluster(NODES) as c:
        cs, hb = _start(c, NODES)
        for n in NODES:
            hb.wait_states(n, {x: "up" for x in NODES}, timeout=30)
        p = hb.props("node1")
        assert p["Members"] == NODES and p["LocalNode"] == "node1" and p["Generation"] == 1
        assert p["Nodes"]["node2"] == ["up", {"link0": "up"}]
        assert "stack corosync" in hb.procs["node1"].output()

        async def messaging():
            clients = {n: await BusClient(c.dbus(n)).connect() for n in NODES}
            got = {n: [] for n in NODES}
            signals = {n: [] for n in NODES}
            for n, cl in clients.items():
                def on(member, args, n=n):
                    signals[n].append((member, args))
                    if member == "MessageReceived":
                        got[n].append((args[0], args[1], bytes(args[2])))
                cl.on_signal(on)
            try:
                ids = [await clients["node1"].send("node2", "crm", b"m%d" % i) for i in range(200)]
                assert ids == sorted(ids) and len(set(ids)) == 200
                await clients["node3"].broadcast("crm", b"to everyone")
                big = bytes(range(256)) * 4096    # 1 MiB: the bus's limit, one CPG message
                await clients["node2"].send("node3", "big", big)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (len(got["node2"]) < 201 or len(got["node3"]) < 2):
                    await asyncio.sleep(0.1)
                assert got["node2"][:200] == [("node1", "crm", b"m%d" % i) for i in range(200)]   # in order, once
                assert ("node3", "crm", b"to everyone") in got["node2"] and len(got["node2"]) == 201
                assert ("node3", "crm", b"to everyone") in got["node1"]
                assert ("node2", "big", big) in got["node3"]
                assert not any(src == "node3" for src, _, _ in got["node3"])   # no copy to the sender
                for bad, kind in ((("nobody", "crm", b"x"), "UnknownNode"), (("node1", "crm", b"x"), "InvalidArgument"),
                                  (("node2", "with space", b"x"), "InvalidArgument"),
                                  (("node2", "crm", b"x" * ((1 << 20) + 1)), "InvalidArgument")):
                    with pytest.raises(RuntimeError, match=kind):
                        await clients["node1"].send(*bad)
                # node2's ha-heartbeat stops: dead for the others (its corosync still runs), Send refused
                hb.procs["node2"].terminate()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and ("NodeStateChanged", ["node2", "dead"]) not in signals["node1"]:
                    await asyncio.sleep(0.1)
                assert ("NodeStateChanged", ["node2", "dead"]) in signals["node1"]
                with pytest.raises(RuntimeError, match="NodeDown"):
                    await clients["node1"].send("node2", "crm", b"x")
                # started again: a new CPG member id with generation 2 -> NodeRestarted, up again
                hb.start("node2")
                hb.wait_started("node2")
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and ("NodeRestarted", ["node2", 2]) not in signals["node1"]:
                    await asyncio.sleep(0.1)
                assert ("NodeRestarted", ["node2", 2]) in signals["node1"]
                assert ("NodeStateChanged", ["node2", "up"]) in signals["node1"]
                assert any(m == "MembershipChanged" for m, _ in signals["node3"])
            finally:
                for cl in clients.values():
                    cl.close()
        asyncio.run(asyncio.wait_for(messaging(), 120))
        hb.wait_states("node1", {x: "up" for x in NODES}, timeout=20)

        # node3 cut off the network: corosync drops it from the ring (token 1 s), knet's link is down
        t0 = time.monotonic()
        c.cut("node3")
        hb.wait_states("node1", {"node3": "dead"}, timeout=30)
        took = time.monotonic() - t0
        wait_until(lambda: hb.links_of("node1", "node3") == {"link0": "dead"}, 15, interval=0.2,
                   message="node3's knet link dead at node1")
        assert hb.props("node1")["Members"] == ["node1", "node2"]
        assert hb.props("node3")["Members"] == ["node3"]
        c.restore("node3")
        for n in NODES:
            hb.wait_states(n, {x: "up" for x in NODES}, timeout=60)
        assert took < 20, took   # token 1 s + consensus 1.2 s, generous for a loaded machine
        for n in NODES:
            assert hb.procs[n].alive(), hb.procs[n].output()[-2000:]


def test_check_config_and_no_corosync(tmp_path):
    """--check-config accepts `stack corosync` without node or media lines; without a corosync the daemon
    exits 1 with a message naming corosync (no traceback)."""
    import subprocess
    import sys

    cf = tmp_path / "ha.cf"
    cf.write_text("stack corosync\n")
    cp = subprocess.run([sys.executable, "-m", "hadaemon.daemons.heartbeat", "--config", str(cf), "--check-config"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and "stack corosync" in cp.stdout, cp.stderr
    with Cluster(["node1"]) as c:      # a fresh network namespace: no corosync listens there
        cp = c.run("node1", [sys.executable, "-m", "hadaemon.daemons.heartbeat", "--config", str(cf), "--node",
                             "node1", "--no-dbus", "--state-dir", str(tmp_path)], timeout=60)
        assert cp.returncode == 1, cp.stdout + cp.stderr
        assert "stack corosync: cannot use the local corosync" in cp.stderr and "Traceback" not in cp.stderr


def test_thirty_two_nodes_membership_on_corosync():
    nodes = [f"n{i + 1}" for i in range(32)]
    with Cluster(nodes) as c:
        cs, hb = _start(c, nodes, token=3000, initdead="300")   # init, not dead, while the 32 daemons start
        for o in (nodes[0], nodes[15], nodes[-1]):
            hb.wait_states(o, {x: "up" for x in nodes}, timeout=120)
        wait_until(lambda: all(hb.props(o)["Members"] == sorted(nodes) for o in nodes), 120, interval=0.5,
                   message="32 members everywhere")
        for n in nodes:
            assert "is dead" not in hb.procs[n].output(), n
        assert hb.props("n7")["Nodes"]["n30"][0] == "up"


CIB = """<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o-stonith" name="stonith-enabled" value="false"/>
</cluster_property_set></crm_config>
<nodes/>
<resources>
<primitive id="d1" class="ocf" provider="heartbeat" type="Dummy">
<operations><op id="d1-mon" name="monitor" interval="2s" timeout="10s"/></operations>
</primitive>
</resources>
<constraints><rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/></constraints>
</configuration><status/></cib>"""


def test_crmd_runs_unchanged_on_the_corosync_stack():
    """ha-crmd over Heartbeat1 on corosync: one DC, d1 on its preferred node, moved when that node is cut
    off (corosync drops it from the ring), back when it returns."""
    from hadaemon.testing.crm import CrmCluster

    def where(crm):
        return [n for n in crm.nodes if (crm.rundir(n) / "resource-agents" / "Dummy-d1.state").exists()]

    def wait_where(crm, check, what, timeout=90):
        try:
            wait_until(lambda: check(where(crm)), timeout, interval=0.2, message=f"d1 {what}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; active on {where(crm)}\n{crm.logs()}") from None

    with Cluster(NODES) as c:
        cs = CorosyncCluster(c)
        cs.start_all()
        cs.wait_ring(timeout=90)
        crm = CrmCluster(c, CIB, fencing=False, initdead="10", extra=["stack corosync"])
        crm.start_all()
        assert crm.wait_dc() in NODES
        wait_where(crm, lambda w: w == ["node1"], "on node1")
        c.cut("node1")
        wait_where(crm, lambda w: len([n for n in w if n != "node1"]) == 1, "started on node2 or node3")
        c.restore("node1")
        wait_where(crm, lambda w: w == ["node1"], "back on node1 alone", timeout=120)
        assert "stack corosync" in crm.hb.procs["node2"].output()
