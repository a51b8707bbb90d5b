"""Issue 9 behaviours without a test of their own until now: systemd and service resource classes, a probe that
failed or found the agent not installed, a <node_state> without an id (ignored: its history is not read), and
resources active on several nodes (multiple-active stop_start / stop_only). Each expected summary is what
crm_simulate 2.1.5 printed for the same CIB; the crm_simulate-marked test runs it again."""
from __future__ import annotations

from tests.unit.crmsim import case_tests
from tests.unit.test_policy_scheduler import cib, lrm, node_state, op, primitive, running, stopped

FEATURES = '<cib crm_feature_set="3.16.1" '


def unit(rid: str, cls: str) -> str:
    return f'<primitive id="{rid}" class="{cls}" type="nginx"/>'


CASES = {
    "systemd-starts": (lambda: cib(resources=[unit("web", "systemd")]), ["Start web (node1)"]),
    "service-starts": (lambda: cib(resources=[unit("web", "service")]), ["Start web (node1)"]),
    "systemd-running-stays": (lambda: cib(resources=[unit("web", "systemd")], status=[
        node_state("node1", lrm("web", op("web", "start"), agent=("systemd", "", "nginx"))),
        node_state("node2", lrm("web", op("web", "monitor", rc=7), agent=("systemd", "", "nginx")))])
        .replace(' provider=""', ""), []),
    "failed-probe-recovers": (lambda: cib(resources=[primitive("rsc1")], status=[
        node_state("node1", lrm("rsc1", op("rsc1", "monitor", rc=1, target=7))),
        node_state("node2", stopped("rsc1"))]).replace("<cib ", FEATURES, 1), ["Recover rsc1 (node1)"]),
    "probe-not-installed-elsewhere": (lambda: cib(resources=[primitive("rsc1")], status=[
        node_state("node1", lrm("rsc1", op("rsc1", "monitor", rc=5, target=7))),
        node_state("node2", stopped("rsc1"))]).replace("<cib ", FEATURES, 1), ["Start rsc1 (node2)"]),
    "node-state-without-id-ignored": (lambda: cib(resources=[primitive("rsc1")], status=[
        node_state("node1", running("rsc1")).replace('<node_state id="node1" ', "<node_state "),
        node_state("node2", stopped("rsc1"))]), ["Start rsc1 (node2)"]),
    "multiply-active-restarts": (lambda: cib(resources=[primitive("rsc1")], status=[
        node_state("node1", running("rsc1")), node_state("node2", running("rsc1"))]), ["Restart rsc1 (node1)"]),
    "multiply-active-stop-only": (lambda: cib(resources=[primitive("rsc1", meta={"multiple-active": "stop_only"})],
                                              status=[node_state("node1", running("rsc1")),
                                                      node_state("node2", running("rsc1"))]),
                                  ["Stop rsc1 (node1) due to node availability",
                                   "Stop rsc1 (node2) due to node availability"]),
}


test_summary, test_against_crm_simulate = case_tests(CASES)
