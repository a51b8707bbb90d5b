"""failure-timeout in the running daemon: a resource moved away by migration-threshold comes back to its
preferred node once its failure has expired (the DC reschedules itself for the expiry), never before.
The pure expiry computation is tested in tests/unit/test_crm_status.py; here the real ha-crmd acts on it."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.crm import CrmCluster, dummy
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import cib_xml, primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]
FAILURE_TIMEOUT_S = 8


def test_a_failure_expires_after_failure_timeout_and_the_resource_fails_back():
    cib = cib_xml(NODES, primitive("d1", "ocf", "Dummy", "heartbeat", monitor="1s",
                                   meta={"migration-threshold": "1", "failure-timeout": f"{FAILURE_TIMEOUT_S}s"}),
                  '<rsc_location id="d1-pref" rsc="d1" node="n1" score="100"/>')
    with Cluster(NODES) as c:
        # auto_failback on: resource-stickiness 0, so d1 goes back to n1 as soon as n1 is allowed again
        with CrmCluster(c, cib, keepalive="200ms", deadtime="3", fencing=False) as crm:
            with crm.observer({"d1": dummy("d1")}) as obs:
                crm.start_all()
                obs.wait("d1", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                state = crm.rundir("n1") / "resource-agents" / "Dummy-d1.state"
                t_fail = time.monotonic()
                state.unlink()                              # the next monitor fails: threshold 1 -> away
                obs.wait("d1", ["n2"], 60)
                dc = crm.dc("n1")
                st = crm.status(dc)["resources"][0]
                assert st["failcounts"].get("n1") == 1, st
                obs.wait("d1", ["n1"], 120)                 # the failure expired: back to the preferred node
                back = time.monotonic()
                # not before the failure (recorded after t_fail) was FAILURE_TIMEOUT_S old
                assert back - t_fail >= FAILURE_TIMEOUT_S, (back - t_fail, crm.logs(tail=4000))
                wait_until(lambda: not crm.status(crm.dc("n1"))["resources"][0]["failcounts"].get("n1"), 60,
                           message="the expired fail-count is no longer shown")
                time.sleep(3)
                assert obs.where("d1") == ["n1"]
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
