"""ha.cf's auto_failback on the real daemons: `on` -> resource-stickiness 0 (the resource returns to its
preferred node when that node comes back), `off` -> INFINITY (it stays where it is), unless the CIB sets a
stickiness itself (then the CIB's value rules)."""
import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib, dummy_primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIB = cib(dummy_primitive("d1"), '<rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/>', extra="RSC_DEFAULTS")

CIB_STICKY_0 = ('<rsc_defaults><meta_attributes id="rd"><nvpair id="rd-s" name="resource-stickiness" value="0"/>'
                '</meta_attributes></rsc_defaults>')


def _where(crm):
    return [n for n in crm.nodes if (crm.rundir(n) / "resource-agents" / "Dummy-d1.state").exists()]


@pytest.mark.parametrize("auto_failback,cib_defaults,back_on", [
    ("on", "", "node1"), ("off", "", "node2"), ("off", CIB_STICKY_0, "node1")])
def test_auto_failback_is_the_default_stickiness(auto_failback, cib_defaults, back_on):
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB.replace("RSC_DEFAULTS", cib_defaults), fencing=False, auto_failback=auto_failback)
        try:
            crm.start_all()
            wait_until(lambda: _where(crm) == ["node1"], 90, interval=0.2, message="d1 on node1")
            crm.stop_node("node1")                      # clean stop: d1 moves to node2
            wait_until(lambda: _where(crm) == ["node2"], 90, interval=0.2, message="d1 on node2")
            crm.start_node("node1")

            def joined():
                st = crm.status("node2")
                return (st.get("nodes") or {}).get("node1", {}).get("state") == "online"
            wait_until(joined, 90, interval=0.3, message="node1 back online")
            crm.wait_dc()
            wait_until(lambda: _where(crm) == [back_on], 90, interval=0.2, message=f"d1 on {back_on}")
            crm.wait_idle(crm.wait_dc())
            assert _where(crm) == [back_on]
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; d1 on {_where(crm)}\n{crm.logs()}") from None
        finally:
            crm.close()
