"""Startup fencing (startup-fencing=true, the default, with stonith-enabled): a DC that starts
without ever having seen a configured node waits ha.cf's initdead for it, then fences it (here with
fence_hadaemon and the harness's power switch) before it starts any resource, as Pacemaker fences
unseen nodes. With startup-fencing=false the same node is taken as cleanly down."""
import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib, dummy_primitive, fence_device

pytestmark = [pytest.mark.root, pytest.mark.slow]

def _cib(socket: str, startup_fencing: str = "") -> str:
    options = {"stonith-enabled": "true"}
    if startup_fencing:
        options["startup-fencing"] = startup_fencing
    return cib(fence_device(socket, "node1 node2 node3") + "\n" + dummy_primitive("d1"),
               '<rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/>', options)


def _d1_on(crm, node):
    return (crm.rundir(node) / "resource-agents" / "Dummy-d1.state").exists()


def _start_two(crm):
    for n in ("node1", "node2"):
        crm.start_anchor(n)
        crm.hb.start(n)
    for n in ("node1", "node2"):
        crm.hb.wait_started(n)
    for n in ("node1", "node2"):
        crm.start_crmd(n)
    for n in ("node1", "node2"):
        crm.wait_crm_name(n)
    return crm.wait_dc(["node1", "node2"])


def test_a_node_never_seen_is_fenced_before_resources_start():
    with Cluster(["node1", "node2", "node3"]) as c:
        doc = _cib(str(c.workdir / "power.sock"))
        crm = CrmCluster(c, doc, fencing=True, initdead="10")
        crm._auto_start_on_power = False          # node3 stays off
        dc = _start_two(crm)
        try:
            wait_until(lambda: crm.switch.offs("node3") >= 1 and _d1_on(crm, "node1"), 90, interval=0.2,
                       message="node3 fenced and d1 started on node1")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{crm.logs()}") from None
        dc = crm.wait_dc(["node1", "node2"])
        log = crm.crmd[dc].output()
        assert "waiting for nodes not seen yet" in log, log
        fenced = log.index("fencing node3 (reboot) with fence on")
        assert log.index("start d1", fenced) > fenced, log
        assert "start d1" not in log[:fenced], log
        st = crm.wait_idle(dc)
        assert st["nodes"]["node3"]["state"] == "offline", st["nodes"]
        assert crm.switch.offs("node1") == 0 and crm.switch.offs("node2") == 0


def test_without_startup_fencing_an_unseen_node_is_taken_as_down():
    with Cluster(["node1", "node2", "node3"]) as c:
        doc = _cib(str(c.workdir / "power.sock"), startup_fencing="false")
        crm = CrmCluster(c, doc, fencing=True, initdead="10")
        crm._auto_start_on_power = False
        dc = _start_two(crm)
        try:
            wait_until(lambda: _d1_on(crm, "node1"), 90, interval=0.2, message="d1 started on node1")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{crm.logs()}") from None
        crm.wait_idle(crm.wait_dc())
        assert crm.switch.offs("node3") == 0
        assert "waiting for nodes not seen yet" not in crm.crmd[dc].output()


def test_a_crmd_restart_alone_does_not_fence_a_node_seen_before():
    """ha-crmd restarted on both survivors (ha-heartbeat keeps running) still knows node3 was seen
    (STATE_DIR/nodes-seen, bound to ha-heartbeat's generation): node3, stopped cleanly, is not fenced."""
    with Cluster(["node1", "node2", "node3"]) as c:
        doc = _cib(str(c.workdir / "power.sock"))
        crm = CrmCluster(c, doc, fencing=True, initdead="10")
        crm._auto_start_on_power = False
        crm.start_all()
        try:
            wait_until(lambda: _d1_on(crm, "node1"), 90, interval=0.2, message="d1 started on node1")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{crm.logs()}") from None
        crm.wait_idle(crm.wait_dc())
        crm.stop_node("node3")                     # node3 stops cleanly (crmd, heartbeat)
        crm.wait_dc(["node1", "node2"])
        for n in ("node1", "node2"):
            crm.kill_crmd(n)
        for n in ("node1", "node2"):
            crm.restart_crmd(n)
        for n in ("node1", "node2"):
            crm.wait_crm_name(n)
        dc = crm.wait_dc(["node1", "node2"])
        crm.wait_idle(dc)
        assert crm.switch.offs("node3") == 0, crm.logs()
        assert "waiting for nodes not seen yet" not in crm.crmd[dc].output()
        assert _d1_on(crm, "node1")
