"""Promotable cloned groups (a group as the clone's child, each instance a group whose members are
promoted and demoted together) and the cancelling of a monitor for the role an instance leaves, on
small hand-written CIBs.

Every expected summary and executed-action list is what crm_simulate 2.1.5 printed for the same CIB
(the crm_simulate-marked tests run it again when it is installed).
"""
from __future__ import annotations

import subprocess

import pytest

from hadaemon.core.cib import parse_cib
from hadaemon.core.cib.history import digest
from hadaemon.core.policy import schedule
from tests.unit.crmsim import crm_simulate_summary, needs_crm_simulate
from tests.unit.test_policy_clones import promotable, stateful
from tests.unit.test_policy_scheduler import cib, lrm, node_state, op, summary

STATEFUL = ("ocf", "pacemaker", "Stateful")
MONITOR_DIGEST = digest({"CRM_meta_timeout": "20000"})  # a monitor without parameters, default timeout


def group(gid: str, *members: str) -> str:
    return f'<group id="{gid}">' + "".join(stateful(m) for m in members) + "</group>"


def unpromoted_with_monitor(rsc: str) -> str:
    """Started in the unpromoted role, its 11 s (role Slave) monitor running."""
    return lrm(rsc, op(rsc, "start", call=1), op(rsc, "monitor", call=2, interval=11000, digest=MONITOR_DIGEST),
               agent=STATEFUL)


def promoted_with_monitor(rsc: str) -> str:
    return lrm(rsc, op(rsc, "start", call=1), op(rsc, "promote", call=2),
               op(rsc, "monitor", rc=8, call=3, interval=10000, target=8, digest=MONITOR_DIGEST), agent=STATEFUL)


def scores(**values: int):
    return {f"master-{k}": str(v) for k, v in values.items()}


S = {}
# nothing ran yet: both instances start, the one with the higher summed promotion score is promoted
# (the members' scores add up: node2 has 5 + 5 against node1's 8 + 0)
S["group_fresh"] = lambda: cib(
    resources=[promotable("ms", group("g", "a", "b"))],
    status=[node_state("node1", attrs=scores(a=8, b=0)), node_state("node2", attrs=scores(a=5, b=5))])
# both instances run unpromoted: the node2 one is promoted, each member after the one before it,
# the role's monitors swapped (the 11 s one cancelled before the promote)
S["group_promote_running"] = lambda: cib(
    resources=[promotable("ms", group("g", "a", "b"))],
    status=[node_state("node1", unpromoted_with_monitor("a"), unpromoted_with_monitor("b"), attrs=scores(a=1, b=1)),
            node_state("node2", unpromoted_with_monitor("a"), unpromoted_with_monitor("b"), attrs=scores(a=5, b=5))])
# the promoted instance's node goes standby: it is demoted and stopped, the other one promoted
S["group_promoted_node_standby"] = lambda: cib(
    resources=[promotable("ms", group("g", "a", "b"))], node_attrs={"node1": {"standby": "on"}},
    status=[node_state("node1", promoted_with_monitor("a"), promoted_with_monitor("b"), attrs=scores(a=5, b=5)),
            node_state("node2", unpromoted_with_monitor("a"), unpromoted_with_monitor("b"), attrs=scores(a=1, b=1))])
# member b cannot run (target-role Stopped): a group instance is promoted only if each of its members
# can be, so none is promoted, and b stops everywhere
S["group_member_cannot_run"] = lambda: cib(
    resources=[promotable("ms", group("g", "a", "b").replace(
        '<primitive id="b" class="ocf" provider="pacemaker" type="Stateful">',
        '<primitive id="b" class="ocf" provider="pacemaker" type="Stateful"><meta_attributes id="b-meta">'
        '<nvpair id="b-m-tr" name="target-role" value="Stopped"/></meta_attributes>'))],
    status=[node_state("node1", unpromoted_with_monitor("a"), unpromoted_with_monitor("b"), attrs=scores(a=1, b=1)),
            node_state("node2", unpromoted_with_monitor("a"), unpromoted_with_monitor("b"), attrs=scores(a=5, b=5))])
# a demote that failed: the instance is taken as unpromoted (staying promoted would loop), so it is
# recovered where it is (its promotion score is still the highest)
S["failed_demote"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    status=[node_state("node1", lrm("st", op("st", "start", call=1), op("st", "promote", call=2),
                                    op("st", "demote", rc=1, call=3), agent=STATEFUL), attrs=scores(st=10)),
            node_state("node2", unpromoted_with_monitor("st"), attrs=scores(st=5))])
# the promoted instance's monitor failed, then it was demoted: a demote clears the failure only with
# on-fail=demote, so it is recovered, and the instance on node2 is the one promoted (failed ones sort last)
S["failure_then_demote"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    status=[node_state("node1", lrm("st", op("st", "start", call=1), op("st", "promote", call=2),
                                    op("st", "monitor", rc=1, call=3, interval=10000, target=8,
                                       digest=MONITOR_DIGEST),
                                    op("st", "demote", call=4), agent=STATEFUL), attrs=scores(st=5)),
            node_state("node2", unpromoted_with_monitor("st"), attrs=scores(st=5))])
# node2's history comes first; on node1 a probe of st:0 is listed before the promoted st:1 and both map
# to the same instance: its promotion score is looked up under the id of the latest entry (st:1), so
# it stays promoted (with the probe's name it would have none and node2's instance would take over)
S["history_name_of_latest_entry"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    status=[node_state("node2", lrm("st:0", op("st:0", "start", call=1), agent=STATEFUL), attrs={"master-st:0": "10"}),
            node_state("node1", lrm("st:0", op("st:0", "monitor", rc=7, call=1), agent=STATEFUL),
                       lrm("st:1", op("st:1", "start", call=2), op("st:1", "promote", call=3), agent=STATEFUL),
                       attrs={"master-st:1": "10"})])
# "promoted a not with promoted b": the only node left for a's second instance has b promoted; the ban
# is for the promoted role only, so the scores are reverted and the instance starts there unpromoted
# (apply_this_with keeps a copy of the scores for colocations of the promoted role)
S["promoted_anti_colocation_leaves_room"] = lambda: cib(
    resources=[promotable("ms-a", stateful("a")), promotable("ms-b", stateful("b"))],
    constraints=['<rsc_colocation id="c" rsc="ms-a" rsc-role="Master" with-rsc="ms-b" with-rsc-role="Master" '
                 'score="-INFINITY"/>'],
    status=[node_state("node1", lrm("b", op("b", "start", call=1), op("b", "promote", call=2), agent=STATEFUL),
                       attrs={"master-b": "10"}),
            node_state("node2", lrm("a", op("a", "start", call=1), op("a", "promote", call=2), agent=STATEFUL),
                       lrm("b", op("b", "start", call=3), agent=STATEFUL), attrs={"master-a": "10"})])

EXPECTED = {
    "group_fresh": ["Promote a:1 (Stopped -> Promoted node2)", "Promote b:1 (Stopped -> Promoted node2)",
                    "Start a:0 (node1)", "Start b:0 (node1)"],
    "history_name_of_latest_entry": [],
    "promoted_anti_colocation_leaves_room": ["Start a:1 (node1)"],
    "failure_then_demote": ["Promote st:1 (Unpromoted -> Promoted node2)", "Recover st:0 (Unpromoted node1)"],
    "failed_demote": ["Recover st:0 (Unpromoted -> Promoted node1)"],
    "group_member_cannot_run": ["Stop b:0 (Unpromoted node1) due to node availability",
                                "Stop b:1 (Unpromoted node2) due to node availability"],
    "group_promote_running": ["Promote a:1 (Unpromoted -> Promoted node2)",
                              "Promote b:1 (Unpromoted -> Promoted node2)"],
    "group_promoted_node_standby": ["Promote a:1 (Unpromoted -> Promoted node2)",
                                    "Promote b:1 (Unpromoted -> Promoted node2)",
                                    "Stop a:0 (Promoted node1) due to node availability",
                                    "Stop b:0 (Promoted node1) due to node availability"],
}


@pytest.mark.parametrize("name", sorted(S))
def test_case_summary(name):
    assert summary(S[name]()) == sorted(EXPECTED[name])


def test_every_case_has_an_expectation():
    assert set(S) == set(EXPECTED)


@needs_crm_simulate
@pytest.mark.parametrize("name", sorted(S))
def test_against_crm_simulate(name, tmp_path):
    assert summary(S[name]()) == crm_simulate_summary(S[name](), str(tmp_path))


def executed(xml: str):
    t = schedule(parse_cib(xml, "test.xml"), 0)
    return [" ".join(line.split()).lstrip("* ") for line in t.executed_lines()]


def test_promote_cancels_the_unpromoted_monitor_first():
    """Each member's role Slave monitor is cancelled before its promote; its role Master monitor starts
    after it; the members are promoted in order (a before b), inside the group's and the clone's
    promote/promoted pseudo-actions."""
    lines = executed(S["group_promote_running"]())
    for m in ("a", "b"):
        cancel = lines.index(f"Resource action: {m} cancel=11000 on node2")
        promote = lines.index(f"Resource action: {m} promote on node2")
        monitor = lines.index(f"Resource action: {m} monitor=10000 on node2")
        assert cancel < promote < monitor
    assert lines.index("Resource action: a promote on node2") < lines.index("Resource action: b promote on node2")
    assert lines.index("Pseudo action: ms_promote_0") < lines.index("Pseudo action: g:1_promote_0") \
        < lines.index("Resource action: a promote on node2")
    assert lines.index("Resource action: b promote on node2") < lines.index("Pseudo action: g:1_promoted_0") \
        < lines.index("Pseudo action: ms_promoted_0")


@needs_crm_simulate
def test_promote_actions_against_crm_simulate(tmp_path):
    """The same actions as crm_simulate executes (the order of independent ones may differ)."""
    path = tmp_path / "cib.xml"
    path.write_text(S["group_promote_running"]())
    out = subprocess.run(["crm_simulate", "-x", str(path), "-S"], capture_output=True, text=True,
                         timeout=120).stdout
    theirs = out.split("Executing Cluster Transition:")[1].split("Revised Cluster Status:")[0]
    theirs = sorted(" ".join(line.split()).lstrip("* ") for line in theirs.splitlines() if line.strip())
    assert sorted(executed(S["group_promote_running"]())) == theirs
