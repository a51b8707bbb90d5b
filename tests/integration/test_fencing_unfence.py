"""Unfencing (a fence device with meta provides=unfencing): the DC asks each node to be unfenced
('on', run on the target itself) before a resource is probed or started there, records
#node-unfenced, and never powers a node off for it (an 'on' taken for a reboot would fence every
node of the cluster at its first start)."""
import re

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib, dummy_primitive, fence_device

pytestmark = [pytest.mark.root, pytest.mark.slow]

def _cib(socket: str) -> str:
    return cib(fence_device(socket, "node1 node2", meta={"provides": "unfencing"}) + "\n" + dummy_primitive("d1"),
               '<rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/>', {"stonith-enabled": "true"})


def test_unfencing_runs_on_and_powers_nothing_off():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, _cib(str(c.workdir / "power.sock")), fencing=True)
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
