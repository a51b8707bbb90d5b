"""Maintenance on the real ha-crmd (Crm1 SetMaintenance through `hactl node maintenance`): while the cluster
or the node is in maintenance nothing is recovered (a resource that died stays down, nothing restarts or
moves); when maintenance ends the resource is found stopped and started again where it belongs."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.crm import CrmCluster, dummy
from hadaemon.testing.netns import Cluster
from tests.integration.cibs import cib, dummy_primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]


@pytest.mark.parametrize("scope", [["--cluster"], ["n1"]])
def test_nothing_is_recovered_during_maintenance_and_everything_after(scope):
    with Cluster(NODES) as c:
        with CrmCluster(c, cib(dummy_primitive("d1", monitor="1s"),
                               '<rsc_location id="d1-pref" rsc="d1" node="n1" score="100"/>'),
                        keepalive="200ms", deadtime="3", fencing=False) as crm:
            def hactl(*args):
                cp = crm.hactl("n2", *args)
                assert cp.returncode == 0, cp.stdout + cp.stderr
                return cp.stdout

            with crm.observer({"d1": dummy("d1")}) as obs:
                crm.start_all()
                obs.wait("d1", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                hactl("node", "maintenance", *scope, "on")
                crm.wait_idle(crm.dc("n1"))
                (crm.rundir("n1") / "resource-agents" / "Dummy-d1.state").unlink()
                time.sleep(5)                      # five monitor intervals: a managed d1 would be back
                assert obs.where("d1") == [], obs.changes
                hactl("node", "maintenance", *scope, "off")
                obs.wait("d1", ["n1"], 60)         # found stopped and started again on its node
                crm.wait_idle(crm.dc("n1"))
                assert obs.where("d1") == ["n1"]
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
