"""node-pending-timeout (Pacemaker 2.1.7+, unpack.c pending_too_long): a node that joined the membership
at in_ccm=<epoch> but whose controller never came up (crmd=0) is fenced once the timeout has passed.
crm_simulate 2.1.5 has no such option (and reads in_ccm as a boolean only), so the expected summaries
follow Pacemaker 3.0's code; the cases without a timestamp are checked against crm_simulate too."""
from __future__ import annotations

import re
from typing import List


from hadaemon.core.cib import parse_cib
from hadaemon.core.policy import schedule
from tests.unit.crmsim import crm_simulate_summary, needs_crm_simulate
from tests.unit.test_policy_scheduler import cib, node_state, primitive, running

NOW = 1800000000
JOINED = NOW - 600  # node2 joined the membership ten minutes ago


def summary(xml: str, now: int = NOW) -> List[str]:
    t = schedule(parse_cib(xml, "test.xml"), now)
    return sorted(re.sub(r"\s+", " ", line.strip().lstrip("*").strip()).replace("( ", "(").replace(" )", ")")
                  for line in t.summary)


def world(timeout: str | None, in_ccm: str = str(JOINED), crmd: str = "0", expected: str | None = None,
          fencing: bool = True) -> str:
    options = {"stonith-enabled": "true" if fencing else "false"}
    if timeout is not None:
        options["node-pending-timeout"] = timeout
    fence = '<primitive id="st" class="stonith" type="fence_dummy"/>'
    x = cib(resources=[fence, primitive("rsc1")], options=options,
            status=[node_state("node1", running("rsc1")), node_state("node2")])
    exp = "" if expected is None else f' expected="{expected}"'
    x = x.replace('<node_state id="node2" uname="node2" in_ccm="true" crmd="online" join="member" expected="member">',
                  f'<node_state id="node2" uname="node2" in_ccm="{in_ccm}" crmd="{crmd}" join="pending"{exp}>')
    return x.replace("<cib ", '<cib crm_feature_set="3.19.0" ', 1)


TIMED_OUT = "Fence (reboot) node2 'peer pending timed out on joining the process group'"
START_ST = "Start st (node1)"
WAITING = ["Start st (node1) blocked"]  # node2 pending: st cannot be probed there yet, so it cannot start


def test_pending_longer_than_the_timeout_is_fenced():
    assert summary(world("2m")) == sorted([TIMED_OUT, START_ST])


def test_pending_within_the_timeout_waits():
    assert summary(world("20m")) == WAITING
    assert summary(world("600s"), now=JOINED + 599) == WAITING
    assert summary(world("600s"), now=JOINED + 600) == sorted([TIMED_OUT, START_ST])  # >= as Pacemaker


def test_no_timeout_configured_or_zero_waits():
    assert summary(world(None)) == WAITING
    assert summary(world("0")) == WAITING


def test_controller_up_or_expected_member_is_not_a_pending_timeout():
    assert summary(world("2m", crmd=str(JOINED + 5))) == WAITING  # pending join, controller up: waits
    assert TIMED_OUT not in summary(world("2m", expected="member"))


def test_boolean_membership_never_times_out():
    assert summary(world("2m", in_ccm="true", crmd="offline")) == WAITING


def test_without_fencing_nothing_is_fenced():
    assert summary(world("2m", fencing=False)) == [START_ST]  # node2 is simply not online


@needs_crm_simulate
def test_boolean_pending_node_against_crm_simulate(tmp_path):
    """Without a timestamp both agree: the pending node waits, nothing is fenced."""
    xml = world("2m", in_ccm="true", crmd="offline")
    assert summary(xml) == crm_simulate_summary(xml, str(tmp_path))
