"""hactl simulate's what-if options (crm_simulate's injections): node up/down/fail, injected and failed
operations, tickets, quorum, --set-datetime, --save-input/--save-output and the CIB on standard input.

The expected summaries are what crm_simulate 2.1.5 printed with the same options (the
crm_simulate-marked test runs it again when it is installed).
"""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from hadaemon.cli.hactl import main
from hadaemon.core.cib import load_cib
from tests.unit.crmsim import needs_crm_simulate, summary_of
from tests.unit.test_policy_clones import S as CLONE_CASES
from tests.unit.test_policy_scheduler import cib, node_state, primitive, running, stopped

BASE = cib(nodes=("node1", "node2", "node3"), resources=[primitive("rsc1"), primitive("rsc2")],
           status=[node_state("node1", running("rsc1"), stopped("rsc2")),
                   node_state("node2", stopped("rsc1"), running("rsc2")),
                   node_state("node3", stopped("rsc1"), stopped("rsc2"))])
FRESH = cib(nodes=("node1",), resources=[primitive("rsc1")])
# fencing enabled but no fence device: node2 (lost, running rsc2) can be fenced only through the watchdog
UNFENCEABLE = cib(resources=[primitive("rsc1"), primitive("rsc2")], options={"stonith-enabled": "true"},
                  status=[node_state("node1", running("rsc1"), stopped("rsc2")),
                          node_state("node2", stopped("rsc1"), running("rsc2"), online=False)])
TICKETED = cib(resources=[primitive("rsc1")], constraints=['<rsc_ticket id="t" rsc="rsc1" ticket="tA"/>'])

CASES = {
    "node_down": (BASE, ["--node-down", "node1"], ["Move rsc2 (node2 -> node3)", "Start rsc1 (node2)"]),
    "node_fail": (BASE, ["--node-fail", "node2"], ["Start rsc2 (node3)"]),
    "node_up_new_state": (cib(resources=[primitive("rsc1")], status=[node_state("node1")]),
                          ["--node-up", "node2"], ["Start rsc1 (node1)"]),
    "op_inject_found_active": (BASE, ["--op-inject", "rsc1_monitor_0@node2=0"],
                               ["Restart rsc1 (node1) due to resource definition change"]),
    "op_inject_start_failed": (BASE, ["--op-inject", "rsc1_start_0@node1=1"], ["Recover rsc1 (node1)"]),
    "ticket_grant": (TICKETED, ["--ticket-grant", "tA"], ["Start rsc1 (node1)"]),
    "ticket_revoke": (TICKETED, ["--ticket-revoke", "tA"], []),
    # have-watchdog=true counts as a fence device (unpack_config: pe_flag_have_stonith_resource)
    "watchdog_fences": (UNFENCEABLE, ["--watchdog", "true"],
                        ["Fence (reboot) node2 'peer is no longer part of the cluster'", "Move rsc2 (node2 -> node1)"]),
    "no_watchdog_no_fencing": (UNFENCEABLE, ["--watchdog", "false"], []),
    "promoted_node_fail": (CLONE_CASES["promoted_stays"](), ["--node-fail", "node1"],
                           ["Promote st:0 (Unpromoted -> Promoted node2)"]),
}


def run(capsys, *argv, stdin: str | None = None):
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    try:
        rc = main(["simulate", *argv])
    finally:
        sys.stdin = sys.__stdin__
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("name", sorted(CASES))
def test_injection_summary(name, tmp_path, capsys):
    xml, opts, expected = CASES[name]
    f = tmp_path / "cib.xml"
    f.write_text(xml)
    rc, out, err = run(capsys, str(f), "--now", "1000", *opts)
    assert rc == 0, err
    assert summary_of(out) == sorted(expected)
    assert "Performing Requested Modifications:" in out


def test_quorum_injection_sets_have_quorum(tmp_path, capsys):
    """--quorum false sets have-quorum="false" as Pacemaker's injection code writes it (crm_simulate
    2.1.5 prints no modification for it and schedules with the file's quorum)."""
    f = tmp_path / "cib.xml"
    f.write_text(BASE)
    rc, out, err = run(capsys, str(f), "--now", "1000", "--quorum", "false", "-I", str(tmp_path / "in.xml"))
    assert rc == 0, err
    assert not load_cib(str(tmp_path / "in.xml")).have_quorum
    assert summary_of(out) == ["Stop rsc1 (node1) due to no quorum", "Stop rsc2 (node2) due to no quorum"]


def test_save_input_and_output(tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(BASE)
    rc, out, err = run(capsys, str(f), "--now", "1000", "--node-fail", "node2", "-I", str(tmp_path / "in.xml"),
                       "-O", str(tmp_path / "out.xml"))
    assert rc == 0, err
    saved_in = load_cib(str(tmp_path / "in.xml"))
    state = {s.uname: s for s in saved_in.node_states}
    assert state["node2"].in_ccm == "false" and state["node2"].expected == "member"
    saved_out = load_cib(str(tmp_path / "out.xml"))
    # after the transition: rsc2 started on node3, so scheduling the output again changes nothing
    rc, out, err = run(capsys, str(tmp_path / "out.xml"), "--now", "1000")
    assert rc == 0 and summary_of(out) == []
    node3 = {s.uname: s for s in saved_out.node_states}["node3"]
    assert [op.operation for lr in node3.lrm if lr.id == "rsc2" for op in lr.ops][-1] == "start"


def test_op_fail_shows_the_failure_in_the_revised_status(tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(BASE)
    rc, out, err = run(capsys, str(f), "--now", "1000", "--node-fail", "node2", "--op-fail", "rsc2_start_0@node3=1")
    assert rc == 0, err
    assert "Pretending action rsc2_start_0 failed on node3 (rc=1)" in out
    assert "rsc2\t(ocf:heartbeat:Dummy):\t FAILED node3" in out.split("Revised Cluster Status:")[1]


def test_op_fail_alone_fails_the_action(tmp_path, capsys):
    """--op-fail without any other injection still runs the transition with that action failed."""
    f = tmp_path / "cib.xml"
    f.write_text(FRESH)
    rc, out, err = run(capsys, str(f), "--now", "1000", "--op-fail", "rsc1_start_0@node1=1")
    assert rc == 0, err
    assert "Pretending action rsc1_start_0 failed on node1 (rc=1)" in out
    assert "rsc1\t(ocf:heartbeat:Dummy):\t FAILED node1" in out.split("Revised Cluster Status:")[1]


@needs_crm_simulate
def test_op_fail_alone_against_crm_simulate(tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(FRESH)
    crm = subprocess.run(["crm_simulate", "-x", str(f), "-S", "-F", "rsc1_start_0@node1=1"], capture_output=True,
                         text=True, timeout=120).stdout
    rc, out, err = run(capsys, str(f), "--op-fail", "rsc1_start_0@node1=1")
    assert "rsc1\t(ocf:heartbeat:Dummy):\t FAILED node1" in crm.split("Revised Cluster Status:")[1]
    assert crm.split("Revised Cluster Status:")[1] == out.split("Revised Cluster Status:")[1]


def test_cib_from_standard_input(capsys):
    rc, out, err = run(capsys, "-", "--now", "1000", stdin=BASE)
    assert rc == 0, err
    assert summary_of(out) == []


@pytest.mark.parametrize("opts,message", [
    (["--op-inject", "rsc1-monitor@node1"], "invalid operation spec"),
    (["--op-inject", "nosuch_start_0@node1=0"], "invalid resource name 'nosuch'"),
    (["--node-up", "node9"], "node 'node9' is not in the configuration"),
    (["--quorum", "maybe"], "--quorum takes a boolean"),
    (["--set-datetime", "yesterday"], "not an ISO 8601 date"),
])
def test_bad_injections_are_refused(opts, message, tmp_path, capsys):
    f = tmp_path / "cib.xml"
    f.write_text(BASE)
    rc, out, err = run(capsys, str(f), *opts)
    assert rc == 2 and message in err and out == ""


@pytest.mark.parametrize("edit,message", [
    (lambda x: x.replace("<constraints>", '<constraints><rsc_order id="bad" first="nosuch" then="rsc1"/>'),
     "<rsc_order> 'bad' first='nosuch' refers to no resource, template or tag"),
    (lambda x: x.replace('name="stonith-enabled" value="false"', 'name="stonith-enabled" value="flase"'),
     "invalid boolean 'flase' for cluster option stonith-enabled: expected true or false"),
])
def test_misread_cib_is_refused(edit, message, tmp_path, capsys):
    """What crm_simulate refuses (or would misread) is refused with the line, exit 2, nothing scheduled."""
    f = tmp_path / "test.xml"
    f.write_text(edit(BASE))
    rc, out, err = run(capsys, str(f))
    assert rc == 2 and out == ""
    assert err.strip() == f"{f}:1: {message}"


@needs_crm_simulate
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_crm_simulate(name, tmp_path, capsys):
    xml, opts, _expected = CASES[name]
    f = tmp_path / "cib.xml"
    f.write_text(xml)
    crm = subprocess.run(["crm_simulate", "-x", str(f), "-S", *opts], capture_output=True, text=True, timeout=120)
    rc, out, err = run(capsys, str(f), *opts)
    assert summary_of(out) == summary_of(crm.stdout)
