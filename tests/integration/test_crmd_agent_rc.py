"""An OCF return code's recovery meaning, carried out by the real ha-crmd (as Pacemaker reads it:
OCF_ERR_CONFIGURED (6) is a fatal error: the resource may run nowhere until a cleanup, where an
ordinary failure (1) of a start only sends it to another node). The agent's start answers what a file
named after its node (uname -n: each node has its own UTS namespace) says, so it fails on one node only."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.cibs import cib

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]

# ocf:hatest:RcTest: start exits with the code in $OCF_RESKEY_dir/start-rc.NODE when that file exists.
AGENT = r"""#!/bin/sh
state=/run/rctest.state
rcfile="$OCF_RESKEY_dir/start-rc.$(uname -n)"
case "$1" in
  start) if [ -e "$rcfile" ]; then
             echo "ocf-exit-reason:told to fail with $(cat "$rcfile")" >&2
             exit "$(cat "$rcfile")"
         fi
         touch $state; exit 0 ;;
  stop) rm -f $state; exit 0 ;;
  monitor) [ -e $state ] && exit 0; exit 7 ;;
  meta-data) echo '<resource-agent name="RcTest"><actions><action name="start"/></actions></resource-agent>'
             exit 0 ;;
esac
exit 3
"""

RESOURCE = ('<primitive id="r" class="ocf" provider="hatest" type="RcTest">'
            '<instance_attributes id="r-a"><nvpair id="r-dir" name="dir" value="DIR"/></instance_attributes>'
            '<operations><op id="r-mon" name="monitor" interval="2s" timeout="10s"/></operations></primitive>')
PREFER_N1 = '<rsc_location id="r-pref" rsc="r" node="n1" score="100"/>'


def _running(crm):
    return lambda view: (view.rundir / "rctest.state").exists()


def _boot(c, tmp_path):
    agent = tmp_path / "RcTest"
    agent.write_text(AGENT)
    return CrmCluster(c, cib(RESOURCE.replace("DIR", str(tmp_path)), PREFER_N1), keepalive="200ms", deadtime="3",
                      fencing=False,
                      ocf={"hatest": {"RcTest": str(agent)}})


@pytest.mark.parametrize("rc,goes_to", [(1, ["n2"]), (6, [])])
def test_a_failed_start_recovers_by_its_return_code(tmp_path, rc, goes_to):
    with Cluster(NODES) as c:
        with _boot(c, tmp_path) as crm:
            rcfile = tmp_path / "start-rc.n1"
            rcfile.write_text(str(rc))
            with crm.observer({"r": _running(crm)}) as obs:
                crm.start_all()
                dc = crm.wait_dc()

                def failed_on_n1():
                    res = next(x for x in crm.status(crm.dc("n1"))["resources"] if x["id"] == "r")
                    return res["failcounts"].get("n1")
                wait_until(failed_on_n1, 90, message="the start on n1 failed and was recorded")
                if goes_to:
                    obs.wait("r", goes_to, 60)
                crm.wait_idle(crm.dc("n1"))
                time.sleep(4)                      # two monitor intervals: nothing else happens
                assert obs.where("r") == goes_to, (obs.where("r"), crm.logs(tail=4000))
                if not goes_to:                    # fatal: never tried on n2 either
                    assert all(nodes == () for _, r, nodes in obs.changes if r == "r"), obs.changes
                    assert not (crm.rundir("n2") / "rctest.state").exists()
                # the cause removed and the failure cleaned up: back to the preferred node
                rcfile.unlink()
                cp = crm.hactl(dc, "resource", "cleanup", "r")
                assert cp.returncode == 0, cp.stdout + cp.stderr
                obs.wait("r", ["n1"], 60)
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
