"""More policy-engine cases: failures and on-fail, quorum policies, node states, orders, migration.

Every expected summary is what crm_simulate 2.1.5 printed for the same CIB.
"""
from __future__ import annotations

import pytest

from tests.unit.test_policy_scheduler import cib, group, lrm, node_state, op, primitive, running, stopped, summary


def prim_ops(rid, ops_xml, meta=None):
    inner = ""
    if meta:
        inner += (f'<meta_attributes id="{rid}-meta">'
                  + "".join(f'<nvpair id="{rid}-m-{k}" name="{k}" value="{v}"/>' for k, v in meta.items())
                  + "</meta_attributes>")
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy">{inner}'
            f'<operations>{ops_xml}</operations></primitive>')


def failed_monitor(rsc):
    return lrm(rsc, op(rsc, "start", call=1), op(rsc, "monitor", rc=7, call=2, interval=10000, target=0))


S = {}
S["maintenance_node"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2")], node_attrs={"node1": {"maintenance": "true"}},
    status=[node_state("node1", running("rsc1")), node_state("node2", stopped("rsc1"))])
S["standby_running"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2", {"resource-stickiness": "INFINITY"})],
    node_attrs={"node1": {"standby": "on"}},
    status=[node_state("node1", running("rsc1"), running("rsc2")),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))])
S["onfail_standby"] = lambda: cib(
    resources=[prim_ops("rsc1", '<op id="m" name="monitor" interval="10s" on-fail="standby"/>'), primitive("rsc2")],
    status=[node_state("node1", failed_monitor("rsc1"), running("rsc2")),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))])
S["onfail_stop"] = lambda: cib(
    resources=[prim_ops("rsc1", '<op id="m" name="monitor" interval="10s" on-fail="stop"/>')],
    status=[node_state("node1", failed_monitor("rsc1")), node_state("node2", stopped("rsc1"))])
S["onfail_ignore"] = lambda: cib(
    resources=[prim_ops("rsc1", '<op id="m" name="monitor" interval="10s" on-fail="ignore"/>')],
    status=[node_state("node1", failed_monitor("rsc1")), node_state("node2", stopped("rsc1"))])
S["onfail_block_stop"] = lambda: cib(
    resources=[prim_ops("rsc1", '<op id="s" name="stop" interval="0" on-fail="block"/>'), primitive("rsc2")],
    constraints=['<rsc_colocation id="c" rsc="rsc2" with-rsc="rsc1" score="INFINITY"/>'],
    status=[node_state("node1", lrm("rsc1", op("rsc1", "start", call=1), op("rsc1", "stop", rc=1, call=2)),
                       running("rsc2")),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))])
S["multi_block"] = lambda: cib(
    resources=[primitive("rsc1", {"multiple-active": "block"})],
    status=[node_state("node1", running("rsc1")), node_state("node2", running("rsc1"))])
S["multi_stop_only"] = lambda: cib(
    resources=[primitive("rsc1", {"multiple-active": "stop_only"})],
    status=[node_state("node1", running("rsc1")), node_state("node2", running("rsc1"))])
S["freeze"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2")], quorum=False, options={"no-quorum-policy": "freeze"},
    status=[node_state("node1", running("rsc1")), node_state("node2")])
S["ignore"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2")], quorum=False, options={"no-quorum-policy": "ignore"},
    status=[node_state("node1", running("rsc1")), node_state("node2")])
S["asymmetric"] = lambda: cib(
    nodes=("node1", "node2", "node3"), resources=[primitive("rsc1"), primitive("rsc2")],
    options={"symmetric-cluster": "false"},
    constraints=['<rsc_location id="l1" rsc="rsc1" node="node3" score="0"/>',
                 '<rsc_location id="l2" rsc="rsc1" node="node2" score="10"/>'])
S["score_attribute"] = lambda: cib(
    nodes=("node1", "node2", "node3"), resources=[primitive("rsc1")],
    node_attrs={"node1": {"pingd": "100"}, "node2": {"pingd": "300"}, "node3": {"pingd": "200"}},
    constraints=['<rsc_location id="l1" rsc="rsc1"><rule id="r" score-attribute="pingd">'
                 '<expression id="e" attribute="pingd" operation="defined"/></rule></rsc_location>'])
S["sticky_inf_vs_pref"] = lambda: cib(
    resources=[group("g", primitive("a"), primitive("b"), meta={"resource-stickiness": "INFINITY"})],
    constraints=['<rsc_location id="l1" rsc="g" node="node2" score="INFINITY"/>'],
    status=[node_state("node1", running("a"), running("b")), node_state("node2", stopped("a"), stopped("b"))])
S["shutdown"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2")],
    status=[node_state("node1", running("rsc1"), running("rsc2"), attrs={"shutdown": "1700000000"}),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))])
S["optional_order"] = lambda: cib(
    resources=[prim_ops("first", '<op id="m" name="monitor" interval="10s"/>'), primitive("then")],
    constraints=['<rsc_order id="o" first="first" then="then" kind="Optional"/>',
                 '<rsc_location id="l" rsc="then" node="node1" score="100"/>',
                 '<rsc_location id="l2" rsc="first" node="node1" score="100"/>'],
    status=[node_state("node1", failed_monitor("first"), running("then")),
            node_state("node2", stopped("first"), stopped("then"))])
S["order_blocked"] = lambda: cib(
    resources=[primitive("first", {"target-role": "Stopped"}), primitive("then")],
    constraints=['<rsc_order id="o" first="first" then="then"/>'],
    status=[node_state("node1", running("then")), node_state("node2")])
S["coloc_neg_finite"] = lambda: cib(
    resources=[primitive("a"), primitive("b")],
    constraints=['<rsc_colocation id="c" rsc="b" with-rsc="a" score="-500"/>',
                 '<rsc_location id="l" rsc="b" node="node1" score="300"/>',
                 '<rsc_location id="l2" rsc="a" node="node1" score="10"/>'])
S["probe_found_running"] = lambda: cib(
    resources=[primitive("rsc1")],
    status=[node_state("node1", lrm("rsc1", op("rsc1", "monitor", rc=0, call=1, target=7))),
            node_state("node2", lrm("rsc1", op("rsc1", "monitor", rc=0, call=1, target=7)))])
S["probe_not_installed"] = lambda: cib(
    resources=[primitive("rsc1")],
    status=[node_state("node1", lrm("rsc1", op("rsc1", "monitor", rc=5, call=1, target=7))),
            node_state("node2", stopped("rsc1"))])
S["orphan_kept"] = lambda: cib(
    resources=[primitive("rsc1")], options={"stop-orphan-resources": "false"},
    status=[node_state("node1", running("rsc1"), running("old")), node_state("node2")])
S["unmanaged_failed"] = lambda: cib(
    resources=[prim_ops("rsc1", '<op id="m" name="monitor" interval="10s"/>', {"is-managed": "false"})],
    status=[node_state("node1", failed_monitor("rsc1")), node_state("node2")])
S["group_disabled"] = lambda: cib(
    resources=[group("g", primitive("a"), primitive("b"), meta={"target-role": "Stopped"})],
    status=[node_state("node1", running("a"), running("b")), node_state("node2")])
S["migrate"] = lambda: cib(
    resources=[primitive("rsc1", {"allow-migrate": "true"})],
    constraints=['<rsc_location id="l" rsc="rsc1" node="node2" score="100"/>'],
    status=[node_state("node1", running("rsc1")), node_state("node2", stopped("rsc1"))])
S["no_stonith_device"] = lambda: cib(
    resources=[primitive("rsc1")], options={"stonith-enabled": "true"},
    status=[node_state("node1"), node_state("node2")])
S["unordered_group"] = lambda: cib(
    resources=[group("g", primitive("a"), primitive("b"), meta={"ordered": "false"})],
    status=[node_state("node1", lrm("a", op("a", "start", call=1), op("a", "monitor", rc=7, call=2, target=7)),
                       running("b")),
            node_state("node2", stopped("a"), stopped("b"))])
S["discovery"] = lambda: cib(
    nodes=("node1", "node2", "node3"), resources=[primitive("rsc1"), primitive("rsc2")],
    constraints=['<rsc_location id="l1" rsc="rsc1" node="node2" score="0" resource-discovery="never"/>',
                 '<rsc_location id="l2" rsc="rsc2" node="node3" score="-10" resource-discovery="exclusive"/>'])


def _mop(rsc, task, call, rc=0):
    return op(rsc, task, rc=rc, call=call).replace("/>", ' migrate_source="node1" migrate_target="node2"/>')


def _migrated(target_history):
    return lambda: cib(
        resources=[primitive("rsc1", {"allow-migrate": "true"})],
        constraints=['<rsc_location id="l" rsc="rsc1" node="node2" score="100"/>'],
        status=[node_state("node1", lrm("rsc1", op("rsc1", "start", call=1), _mop("rsc1", "migrate_to", 2))),
                node_state("node2", target_history)])


S["migration_done"] = _migrated(lrm("rsc1", _mop("rsc1", "migrate_from", 3)))
S["migration_partial"] = _migrated(stopped("rsc1"))
S["migration_from_failed"] = _migrated(lrm("rsc1", _mop("rsc1", "migrate_from", 3, rc=1)))

EXPECTED = {
    "asymmetric": ["Start rsc1 (node2)"],
    "coloc_neg_finite": ["Start a (node1)", "Start b (node2)"],
    "discovery": ["Start rsc1 (node1)"],
    "freeze": ["Start rsc2 (node2) due to quorum freeze (blocked)"],
    "group_disabled": ["Stop a (node1) due to node availability", "Stop b (node1) due to node availability"],
    "ignore": ["Start rsc2 (node2)"],
    "maintenance_node": ["Start rsc2 (node2)"],
    "migrate": ["Migrate rsc1 (node1 -> node2)"],
    "migration_done": [],
    "migration_from_failed": ["Recover rsc1 (node2)"],
    "migration_partial": ["Migrate rsc1 (node1 -> node2)"],
    "multi_block": [],
    "multi_stop_only": ["Stop rsc1 (node1) due to node availability", "Stop rsc1 (node2) due to node availability"],
    "no_stonith_device": [],
    "onfail_block_stop": [],
    "onfail_ignore": [],
    "onfail_standby": ["Move rsc2 (node1 -> node2)", "Recover rsc1 (node1 -> node2)"],
    "onfail_stop": ["Stop rsc1 (node1) due to node availability"],
    "optional_order": ["Recover first (node1)"],
    "order_blocked": ["Stop then (node1) due to unrunnable first start"],
    "orphan_kept": [],
    "probe_found_running": ["Restart rsc1 (node1)"],
    "probe_not_installed": ["Start rsc1 (node2)"],
    "score_attribute": ["Start rsc1 (node2)"],
    "shutdown": ["Move rsc1 (node1 -> node2)", "Move rsc2 (node1 -> node2)"],
    "standby_running": ["Move rsc1 (node1 -> node2)", "Move rsc2 (node1 -> node2)"],
    "sticky_inf_vs_pref": [],
    "unmanaged_failed": [],
    "unordered_group": ["Start a (node1)"],
}


@pytest.mark.parametrize("name", sorted(S))
def test_case_summary(name):
    assert summary(S[name]()) == sorted(EXPECTED[name])


def test_every_case_has_an_expectation():
    assert set(S) == set(EXPECTED)


def test_discovery_limits_probes():
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    t = schedule(parse_cib(S["discovery"](), "t.xml"), 0)
    probes = sorted((a.rsc, a.node) for a in t.graph.actions if a.task == "monitor" and a.interval_ms == 0)
    assert probes == [("rsc1", "node1"), ("rsc1", "node3"), ("rsc2", "node3")]


def test_completed_migration_only_stops_the_source():
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    t = schedule(parse_cib(S["migration_done"](), "t.xml"), 0)
    assert [(a.task, a.node) for a in t.graph.actions if a.task != "monitor"] == [("stop", "node1")]
    assert t.current["rsc1"] == ("node2",)
