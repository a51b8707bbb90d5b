"""Unfencing (a fence device with meta provides=unfencing): the DC asks each node to be unfenced
('on', run on the target itself) before a resource is probed or started there, records
#node-unfenced, and never powers a node off for it (an 'on' taken for a reboot would fence every
node of the cluster at its first start)."""
import re

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIB = """<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o-stonith" name="stonith-enabled" value="true"/>
</cluster_property_set></crm_config>
<nodes/>
<resources>
<primitive id="fence" class="stonith" type="fence_hadaemon">
<instance_attributes id="fence-a"><nvpair id="fence-ip" name="ipaddr" value="SOCKET"/>
<nvpair id="fence-hosts" name="pcmk_host_list" value="node1 node2"/></instance_attributes>
<meta_attributes id="fence-m"><nvpair id="fence-provides" name="provides" value="unfencing"/></meta_attributes>
</primitive>
<primitive id="d1" class="ocf" provider="heartbeat" type="Dummy">
<operations><op id="d1-mon" name="monitor" interval="2s" timeout="10s"/></operations>
</primitive>
</resources>
<constraints><rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/></constraints>
</configuration><status/></cib>"""


def test_unfencing_runs_on_and_powers_nothing_off():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB.replace("SOCKET", str(c.workdir / "power.sock")), fencing=True)
        crm.start_all()
        try:
            wait_until(lambda: (crm.rundir("node1") / "resource-agents" / "Dummy-d1.state").exists(), 90,
                       interval=0.2, message="d1 started on node1")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{crm.logs()}") from None
        dc = crm.wait_dc()
        crm.wait_idle(dc)
        log = crm.crmd[dc].output()
        for n in ("node1", "node2"):
            assert crm.switch.offs(n) == 0, crm.logs()
            asks = re.findall(rf"fencing {n} \(on\) with fence on (\S+)", log)
            assert asks == [n], (asks, log)           # once, on the node itself
        first_start = log.index("start d1")
        assert log.index("fencing node1 (on)") < first_start, log
        assert "(reboot)" not in log and "(off)" not in log, log
        wait_until(lambda: (crm.state_dir(dc) / "cib.xml").read_text().count('name="#node-unfenced"') == 2, 30,
                   interval=0.2, message="#node-unfenced of both nodes in the DC's saved CIB")
