"""on-fail of a failing monitor on the real ha-crmd (the scheduler's reading of it is tested against
crm_simulate in tests/unit/test_policy_onfail.py; here the daemon records the failure and carries the
consequence out): `stop` leaves the resource stopped everywhere until a cleanup, `standby` moves every
resource off the node where the failure happened."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.crm import CrmCluster, dummy
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]


def _primitive(rsc: str, on_fail: str = "") -> str:
    attr = f' on-fail="{on_fail}"' if on_fail else ""
    return (f'<primitive id="{rsc}" class="ocf" provider="heartbeat" type="Dummy">'
            f'<operations><op id="{rsc}-mon" name="monitor" interval="1s" timeout="10s"{attr}/></operations>'
            "</primitive>\n")


def _prefer_n1(*rscs: str) -> str:
    return "".join(f'<rsc_location id="{r}-pref" rsc="{r}" node="n1" score="100"/>' for r in rscs)


def _resource(crm, rsc: str) -> dict:
    return next(r for r in crm.status(crm.dc("n1"))["resources"] if r["id"] == rsc)


def test_on_fail_stop_keeps_the_resource_stopped_until_cleanup():
    with Cluster(NODES) as c:
        with CrmCluster(c, cib(_primitive("a", "stop"), _prefer_n1("a")), keepalive="200ms", deadtime="3",
                        fencing=False) as crm:
            with crm.observer({"a": dummy("a")}) as obs:
                crm.start_all()
                obs.wait("a", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                (crm.rundir("n1") / "resource-agents" / "Dummy-a.state").unlink()
                wait_until(lambda: _resource(crm, "a")["failcounts"].get("n1") == 1, 60, message="failure recorded")
                crm.wait_idle(crm.dc("n1"))
                time.sleep(4)                       # several monitor intervals: no restart, no move
                assert obs.where("a") == []
                st = _resource(crm, "a")
                assert st["role"] == "Stopped" and st["nodes"] == [], st
                assert all("n2" not in nodes for _, r, nodes in obs.changes if r == "a"), obs.changes
                cp = crm.hactl("n2", "resource", "cleanup", "a")
                assert cp.returncode == 0, cp.stdout + cp.stderr
                obs.wait("a", ["n1"], 60)           # the failure forgotten: started again where it prefers
            assert not obs.dual_active(raw=True), obs.describe(raw=True)


def test_on_fail_standby_moves_every_resource_off_the_node():
    with Cluster(NODES) as c:
        with CrmCluster(c, cib(_primitive("a", "standby") + _primitive("b"), _prefer_n1("a", "b")),
                        keepalive="200ms", deadtime="3", fencing=False) as crm:
            with crm.observer({"a": dummy("a"), "b": dummy("b")}) as obs:
                crm.start_all()
                obs.wait("a", ["n1"], 60)
                obs.wait("b", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                (crm.rundir("n1") / "resource-agents" / "Dummy-a.state").unlink()
                obs.wait("a", ["n2"], 60)
                obs.wait("b", ["n2"], 60)           # b never failed: it leaves with the node's standby
                crm.wait_idle(crm.dc("n1"))
                time.sleep(3)
                assert obs.where("a") == ["n2"] and obs.where("b") == ["n2"]
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
