"""A parameter change of a running resource on the real ha-crmd (Crm1 UpdateResource through `hactl
resource update`): the agent is given the new value (the unmodified ocf:pacemaker:Dummy dumps its
environment at every call into `envfile`), its recurring monitor runs with the new parameters from
then on, and the resource stays where it is. `fake` is reloadable="1" in Dummy's meta-data (OCF 1.1,
reload-agent): as with Pacemaker, the change is a reload-agent, not a stop and a start (ha-crmd records
op-force-restart / op-restart-digest from the agent's meta-data, as the controller does). ocf:heartbeat:Dummy
(OCF 1.0, a "reload" action, `fake` not unique) is reloaded with its own "reload": no stop, no start."""
from __future__ import annotations

import re

import pytest

from hadaemon.testing.crm import CrmCluster, runfile
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]
RESOURCE = ('<primitive id="d1" class="ocf" provider="pacemaker" type="Dummy">'
            '<instance_attributes id="d1-a"><nvpair id="d1-env" name="envfile" value="/run/d1.env"/>'
            '<nvpair id="d1-fake" name="fake" value="1"/></instance_attributes>'
            '<operations><op id="d1-mon" name="monitor" interval="1s" timeout="10s"/></operations></primitive>')
# ocf:heartbeat:Dummy is older than OCF 1.1: its non-unique `fake` is reloaded with its "reload" action
LEGACY = ('<primitive id="d2" class="ocf" provider="heartbeat" type="Dummy">'
          '<instance_attributes id="d2-a"><nvpair id="d2-fake" name="fake" value="1"/></instance_attributes>'
          '<operations><op id="d2-mon" name="monitor" interval="1s" timeout="10s"/></operations></primitive>')


def _calls(text: str):
    """[(action, OCF_RESKEY_fake)] for each call ocf:pacemaker:Dummy logged in its envfile."""
    out = []
    for block in text.split("### ")[1:]:
        action = block.split(" @ ", 1)[0].strip()
        m = re.search(r"^OCF_RESKEY_fake=(.*)$", block, re.M)
        out.append((action, m.group(1) if m else None))
    return out


def test_a_parameter_change_reaches_the_agent_and_its_monitor():
    with Cluster(NODES) as c:
        with CrmCluster(c, cib(RESOURCE + LEGACY, '<rsc_location id="d1-pref" rsc="d1" node="n1" score="100"/>'
                               '<rsc_location id="d2-pref" rsc="d2" node="n1" score="100"/>'),
                        keepalive="200ms", deadtime="3", fencing=False) as crm:
            envfile = crm.rundir("n1") / "d1.env"
            with crm.observer({"d1": runfile("Dummy-d1.state"),      # ocf:pacemaker:Dummy's state
                               "d2": runfile("resource-agents/Dummy-d2.state")}) as obs:
                crm.start_all()
                obs.wait("d1", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                assert ("start", "1") in _calls(envfile.read_text())
                cp = crm.hactl("n2", "resource", "update", "d1", "fake=2")
                assert cp.returncode == 0, cp.stdout + cp.stderr

                def monitored_with_new_value():
                    calls = _calls(envfile.read_text())
                    applied = [i for i, (a, v) in enumerate(calls) if a in ("reload-agent", "reload", "start")
                               and v == "2"]
                    return applied and any(a == "monitor" and v == "2" for a, v in calls[applied[0] + 1:])
                wait_until(monitored_with_new_value, 60, message="the new value applied and monitored")
                crm.wait_idle(crm.dc("n1"))
                calls = _calls(envfile.read_text())
                first_new = next(i for i, (a, v) in enumerate(calls) if v == "2")
                # reloaded, not restarted; the rescheduled monitor waits for the reload (the scheduler
                # orders it after reload-agent, as Pacemaker's recurring_op_for_active)
                assert calls[first_new][0] == "reload-agent", calls
                assert not [a for a, v in calls[first_new:] if a in ("stop", "start")], calls
                # once the new value is in, no call runs with the old one (the old monitor is gone)
                assert all(v == "2" for a, v in calls[first_new:] if a != "meta-data"), calls[first_new:]
                assert obs.where("d1") == ["n1"]
                # the older agent: reload-agent runs its "reload", the state file stays (no stop / start)
                obs.wait("d2", ["n1"], 60)
                state = crm.rundir("n1") / "resource-agents" / "Dummy-d2.state"
                before = state.stat().st_ino
                offset = len(crm.crmd["n1"].output())
                cp = crm.hactl("n2", "resource", "update", "d2", "fake=2")
                assert cp.returncode == 0, cp.stdout + cp.stderr
                wait_until(lambda: "reload d2: rc=0" in crm.crmd["n1"].output()[offset:], 60,
                           message="d2 reloaded")
                crm.wait_idle(crm.dc("n1"))
                log = crm.crmd["n1"].output()[offset:]
                assert "stop d2" not in log and "start d2" not in log, log
                assert state.stat().st_ino == before and obs.where("d2") == ["n1"]
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
