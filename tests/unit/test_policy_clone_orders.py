"""Orderings with clones on small hand-written CIBs: which of a clone's actions count for an action
ordered before or after it (Pacemaker scopes them to the other action's node), clone-min, and
interleaved instances left without a partner.

Every expected summary is what crm_simulate 2.1.5 printed for the same CIB (the crm_simulate-marked
test runs it again when it is installed).
"""
from __future__ import annotations


import pytest

from tests.unit.crmsim import crm_simulate_summary, needs_crm_simulate
from tests.unit.test_policy_clones import ban, clone
from tests.unit.test_policy_scheduler import cib, lrm, node_state, op, primitive, running, stopped, summary

N3 = ("node1", "node2", "node3")
N4 = ("node1", "node2", "node3", "node4")

S = {}
# an instance of a clone with clone-min stops (its node goes standby): what is ordered after the clone
# still has enough instances and stays where it is
S["clone_min_instance_stops"] = lambda: cib(
    nodes=N4, resources=[clone("a-clone", primitive("a"), {"clone-min": "2"}), primitive("web")],
    node_attrs={"node2": {"standby": "on"}},
    constraints=[ban("a-clone", "node4"), ban("web", "node1"), ban("web", "node2"), ban("web", "node3"),
                 '<rsc_order id="o" first="a-clone" then="web"/>'],
    status=[node_state("node1", running("a"), stopped("web")), node_state("node2", running("a"), stopped("web")),
            node_state("node3", running("a"), stopped("web")), node_state("node4", stopped("a"), running("web"))])
# a new instance starts on node2: 'web' (after the clone, on node1) is not restarted, because only
# the clone's actions on web's node count for it
S["new_instance_elsewhere"] = lambda: cib(
    resources=[clone("a-clone", primitive("a")), primitive("web")],
    constraints=['<rsc_order id="o" first="a-clone" then="web"/>',
                 '<rsc_location id="l" rsc="web" node="node1" score="100"/>'],
    status=[node_state("node1", running("a"), running("web")), node_state("node2", stopped("a"), stopped("web"))])
# the instance on web's own node failed and is recovered there: web restarts too
S["instance_restarts_on_same_node"] = lambda: cib(
    resources=[clone("a-clone", primitive("a", {"target-role": "Started"})), primitive("web")],
    constraints=['<rsc_order id="o" first="a-clone" then="web"/>',
                 '<rsc_location id="l" rsc="web" node="node1" score="100"/>'],
    status=[node_state("node1", lrm("a", op("a", "start", call=1), op("a", "monitor", rc=1, call=2, interval=10000)),
                       running("web")),
            node_state("node2", running("a"), stopped("web"))])
# interleaved clones: b-clone's instance on node1 loses its a-clone partner (a-clone banned there);
# 'web', ordered after b-clone and running on node1, restarts with it
S["interleave_partner_lost"] = lambda: cib(
    nodes=N3, resources=[primitive("web"), clone("a-clone", primitive("a"), {"interleave": "true"}),
                         clone("b-clone", primitive("b"), {"interleave": "true"})],
    constraints=['<rsc_order id="o1" first="a-clone" then="b-clone"/>',
                 '<rsc_order id="o2" first="b-clone" then="web"/>',
                 ban("a-clone", "node1"), '<rsc_location id="l" rsc="web" node="node1" score="100"/>'],
    status=[node_state(n, running("a"), running("b"), *([running("web")] if n == "node1" else [stopped("web")]))
            for n in N3])
# the same with clone-min on a-clone: the order goes through a clone-one-or-more pseudo-action, so
# b-clone's instances are not paired with a-clone's and b starts on node1 too
S["clone_min_not_interleaved"] = lambda: cib(
    nodes=N3, resources=[clone("a-clone", primitive("a"), {"clone-min": "2"}),
                         clone("b-clone", primitive("b"), {"interleave": "true"})],
    constraints=['<rsc_order id="o1" first="a-clone" then="b-clone"/>', ban("a-clone", "node1")])
# two instance histories of each member of a cloned group on one node (b's listed first): the second
# of each belongs to one removed instance g:2, whichever member's history comes first
S["cloned_group_removed_instance"] = lambda: cib(
    resources=[clone("gc", '<group id="g">' + primitive("a") + primitive("b") + "</group>")],
    status=[node_state("node1", running("b:1"), running("b:0"), running("a:1"), running("a:0")),
            node_state("node2", online=False)])
# a-clone is being stopped (target-role): its running instances do not make it 'running' for what is
# ordered after it, so b-clone's instances and the cloned group's members stop too
S["stopped_clone_stops_dependents"] = lambda: cib(
    resources=[clone("a-clone", primitive("a"), {"target-role": "Stopped"}), clone("b-clone", primitive("b")),
               clone("gc", '<group id="g">' + primitive("m1") + "</group>")],
    constraints=['<rsc_order id="o1" first="a-clone" then="b-clone"/>',
                 '<rsc_order id="o2" first="b-clone" then="gc"/>'],
    status=[node_state(n, running("a"), running("b"), running("m1")) for n in ("node1", "node2")])
# 'web' is ordered after a clone being stopped, 'app' is colocated with web: web cannot start again,
# so app's start is blocked too and app stops (pcmk__block_colocation_dependents)
S["blocked_colocation_dependent"] = lambda: cib(
    resources=[clone("a-clone", primitive("a"), {"target-role": "Stopped"}), primitive("web"), primitive("app")],
    constraints=['<rsc_order id="o" first="a-clone" then="web"/>',
                 '<rsc_colocation id="c" rsc="app" with-rsc="web" score="INFINITY"/>'],
    status=[node_state("node1", running("a"), running("web"), running("app")),
            node_state("node2", running("a"), stopped("web"), stopped("app"))])
# a group colocated with a clone that cannot run anywhere: its first member is unmanaged and stays where
# it runs; the later members are not chained to the colocation through it, so they take the group's
# mandatory colocation themselves and stay stopped
S["unmanaged_member_group_with_clone"] = lambda: cib(
    resources=[clone("a-clone", primitive("a"), {"target-role": "Stopped"}),
               '<group id="g">' + primitive("m1", {"is-managed": "false"}) + primitive("m2") + primitive("m3")
               + "</group>"],
    constraints=['<rsc_colocation id="c" rsc="g" with-rsc="a-clone" score="INFINITY"/>',
                 '<rsc_location id="l" rsc="g" node="node1" score="100"/>'],
    status=[node_state("node1", stopped("a"), running("m1"), stopped("m2"), stopped("m3")),
            node_state("node2", stopped("a"), stopped("m1"), stopped("m2"), stopped("m3"))])


def _util_primitive(rid: str, cpu: int) -> str:
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy"><utilization id="{rid}-u">'
            f'<nvpair id="{rid}-u-cpu" name="cpu" value="{cpu}"/></utilization></primitive>')


def _with_capacity(xml: str, caps) -> str:
    for n, cpu in caps.items():
        xml = xml.replace(f'<node id="{n}" uname="{n}">', f'<node id="{n}" uname="{n}"><utilization id="{n}-u">'
                                                          f'<nvpair id="{n}-u-cpu" name="cpu" value="{cpu}"/>'
                                                          '</utilization>')
    return xml


# placement-strategy utilization: a cloned group is colocated with clone c1; placing an instance of c1
# counts what must join it (an instance of the cloned group: 2 + 2 cpu): only node3 holds all 6 cpu, so
# c1's instance goes there (not to node1, where the group would then not fit)
S["utilization_colocated_clones"] = lambda: _with_capacity(cib(
    nodes=N3, options={"placement-strategy": "utilization"},
    resources=[clone("c1", _util_primitive("r1", 2), {"clone-max": "1"}),
               clone("c2", '<group id="g">' + _util_primitive("r2", 2) + _util_primitive("r3", 2) + "</group>",
                     {"clone-max": "1"})],
    constraints=['<rsc_colocation id="col" rsc="c2" with-rsc="c1" score="INFINITY"/>',
                 '<rsc_order id="o" first="c1" then="c2"/>']), {"node1": 4, "node2": 5, "node3": 10})

# an anonymous clone's fail count is named after the clone's child without an instance number (as the
# history names it): with migration-threshold=1 the instance on node1 leaves it
S["anonymous_fail_count"] = lambda: cib(
    resources=[clone("c", primitive("d", {"migration-threshold": "1"}))],
    status=[node_state("node1", running("d"), attrs={"fail-count-d": "1"}), node_state("node2", running("d"))])

# an instance attribute set to "#default" is not set at all (populate_hash): the parameter digest
# recorded without it still matches, so nothing restarts
S["default_value_not_a_parameter"] = lambda: cib(
    resources=[clone("c", primitive("d").replace(
        'type="Dummy">', 'type="Dummy"><instance_attributes id="d-ia">'
        '<nvpair id="d-ia-x" name="fake" value="#default"/></instance_attributes>'))],
    status=[node_state("node1", running("d")), node_state("node2", running("d"))])

# placement-strategy utilization: resources are placed in order of their score on their current node
# (pcmk__sort_resources), so b, sticky on node1, keeps its node although a, listed first and stopped,
# prefers node1; a, with no room left there, goes to node2 (without the sort, a would take node1 and
# push b to node2)
S["utilization_running_first"] = lambda: _with_capacity(cib(
    options={"placement-strategy": "utilization"},
    resources=[_util_primitive("a", 2), _util_primitive("b", 2).replace(
        'type="Dummy">', 'type="Dummy"><meta_attributes id="b-meta"><nvpair id="b-m-s" '
        'name="resource-stickiness" value="INFINITY"/></meta_attributes>')],
    constraints=['<rsc_location id="l" rsc="a" node="node1" score="200"/>'],
    status=[node_state("node1", stopped("a"), running("b")), node_state("node2", stopped("a"), stopped("b"))]),
    {"node1": 2, "node2": 2})

EXPECTED = {
    "clone_min_instance_stops": ["Stop a:1 (node2) due to node availability"],
    "new_instance_elsewhere": ["Start a:1 (node2)"],
    "utilization_running_first": ["Start a (node2)"],
    "default_value_not_a_parameter": [],
    "anonymous_fail_count": ["Stop d:0 (node1) due to node availability"],
    "utilization_colocated_clones": ["Start r1:0 (node3)", "Start r2:0 (node3)", "Start r3:0 (node3)"],
    "unmanaged_member_group_with_clone": [],
    "blocked_colocation_dependent": ["Stop a:0 (node1) due to node availability",
                                     "Stop a:1 (node2) due to node availability",
                                     "Stop app (node1) due to colocation with web",
                                     "Stop web (node1) due to unrunnable a-clone running"],
    "stopped_clone_stops_dependents": [
        "Stop a:0 (node1) due to node availability", "Stop a:1 (node2) due to node availability",
        "Stop b:0 (node1) due to unrunnable a-clone running", "Stop b:1 (node2) due to unrunnable a-clone running",
        "Stop m1:0 (node1) due to required b-clone running", "Stop m1:1 (node2) due to required b-clone running"],
    "cloned_group_removed_instance": ["Stop a:2 (node1) due to node availability",
                                      "Stop b:2 (node1) due to node availability"],
    "clone_min_not_interleaved": ["Start a:0 (node2)", "Start a:1 (node3)", "Start b:0 (node1)", "Start b:1 (node2)",
                                  "Start b:2 (node3)"],
    "instance_restarts_on_same_node": ["Recover a:0 (node1)", "Restart web (node1) due to required a-clone running"],
    "interleave_partner_lost": ["Restart web (node1) due to required b-clone running",
                                "Stop a:0 (node1) due to node availability", "Stop b:0 (node1)"],
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
