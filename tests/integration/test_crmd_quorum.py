"""no-quorum-policy on the real daemons: a 3-node namespace cluster loses 2 nodes (their links cut), the
survivor is a one-node partition without quorum (1 of 3) and does what the policy says: stop stops its
resources, freeze keeps them and starts nothing, ignore recovers the lost nodes' resources too."""
import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIB = """<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o-stonith" name="stonith-enabled" value="false"/>
<nvpair id="o-nqp" name="no-quorum-policy" value="POLICY"/>
</cluster_property_set></crm_config>
<nodes/>
<resources>
<primitive id="d1" class="ocf" provider="heartbeat" type="Dummy">
<operations><op id="d1-mon" name="monitor" interval="2s" timeout="10s"/></operations>
</primitive>
<primitive id="d2" class="ocf" provider="heartbeat" type="Dummy">
<operations><op id="d2-mon" name="monitor" interval="2s" timeout="10s"/></operations>
</primitive>
</resources>
<constraints><rsc_location id="d1-node1" rsc="d1" node="node1" score="100"/>
<rsc_location id="d2-node2" rsc="d2" node="node2" score="100"/></constraints>
</configuration><status/></cib>"""


def _on(crm, node, rsc):
    return (crm.rundir(node) / "resource-agents" / f"Dummy-{rsc}.state").exists()


@pytest.mark.parametrize("policy", ["stop", "freeze", "ignore"])
def test_a_three_node_cluster_losing_two_nodes_follows_no_quorum_policy(policy):
    with Cluster(["node1", "node2", "node3"]) as c:
        crm = CrmCluster(c, CIB.replace("POLICY", policy), fencing=False)
        crm.start_all()
        crm.wait_dc()
        try:
            wait_until(lambda: _on(crm, "node1", "d1") and _on(crm, "node2", "d2"), 90, interval=0.2,
                       message="d1 on node1, d2 on node2")
            crm.wait_idle(crm.wait_dc())
            crm.cut("node2")
            crm.cut("node3")

            def alone_without_quorum():
                st = crm.status("node1")
                online = sorted(n for n, v in (st.get("nodes") or {}).items() if v.get("state") == "online")
                return st.get("dc") == "node1" and st.get("quorum") is False and online == ["node1"]
            wait_until(alone_without_quorum, 90, interval=0.3, message="node1 alone, DC, without quorum")
            # the DC has recomputed after the loss and has nothing more to do
            crm.wait_idle("node1")
            if policy == "stop":
                wait_until(lambda: not _on(crm, "node1", "d1"), 60, interval=0.2, message="d1 stopped on node1")
                assert not _on(crm, "node1", "d2")
            elif policy == "freeze":
                assert _on(crm, "node1", "d1") and not _on(crm, "node1", "d2")
            else:
                wait_until(lambda: _on(crm, "node1", "d2"), 60, interval=0.2, message="d2 recovered on node1")
                assert _on(crm, "node1", "d1")
            crm.wait_idle("node1")
            st = crm.status("node1")
            assert st["quorum"] is False
            after = (_on(crm, "node1", "d1"), _on(crm, "node1", "d2"))
            assert after == {"stop": (False, False), "freeze": (True, False), "ignore": (True, True)}[policy]
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{crm.logs()}") from None
        finally:
            crm.close()
