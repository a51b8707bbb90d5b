"""With a placement strategy, resources are assigned in pcmk__sort_resources order: a resource's score on its
current node includes what it is colocated with ('this with'), followed recursively; a group's comes from
its last member, which reaches the other members through the group's internal colocations. So a group whose
last member hit its migration-threshold on its node sorts after groups that keep theirs, and takes a free node
instead of swapping with one of them (Pacemaker's failed-sticky-group case, on a CIB of our own). Expected
summaries are what crm_simulate 2.1.5 printed; the crm_simulate-marked test runs it again."""
from __future__ import annotations


import pytest

from hadaemon.core.cib import parse_cib
from hadaemon.core.policy import schedule
from tests.unit.crmsim import crm_simulate_summary, needs_crm_simulate, summary_of
from tests.unit.test_policy_scheduler import cib, group, lrm, node_state, op, stopped


def member(rid: str, capacity: bool = False) -> str:
    util = (f'<utilization id="{rid}-u"><nvpair id="{rid}-u-c" name="capacity" value="1"/></utilization>'
            if capacity else "")
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy">{util}<operations>'
            f'<op id="{rid}-mon" name="monitor" interval="10s"/></operations></primitive>')


def sticky_groups(strategy: str = "utilization") -> str:
    """Three nodes of capacity 1; g1 runs on node1 and g2 on node2 (each preferring its node, INFINITY
    stickiness, migration-threshold 1); g1's last member b1 failed its monitor on node1."""
    def on(node, *rids, failed=None):
        entries = []
        for r in ("a1", "b1", "a2", "b2"):
            if r in rids:
                ops = [op(r, "start", call=2), op(r, "monitor", interval=10000, call=3,
                                                   rc=7 if r == failed else 0, target=0)]
                entries.append(lrm(r, *ops))
            else:
                entries.append(stopped(r))
        attrs = {f"fail-count-{failed}#monitor_10000": "1", f"last-failure-{failed}#monitor_10000": "100"} \
            if failed else None
        return node_state(node, *entries, attrs=attrs)

    x = cib(nodes=("node1", "node2", "node3"),
            resources=[group("g1", member("a1", True), member("b1")), group("g2", member("a2", True), member("b2"))],
            options={"placement-strategy": strategy},
            constraints=['<rsc_location id="l1" rsc="g1" node="node1" score="200"/>',
                         '<rsc_location id="l2" rsc="g2" node="node2" score="200"/>'],
            status=[on("node1", "a1", "b1", failed="b1"), on("node2", "a2", "b2"), on("node3")])
    # a feature set of at least 3.0.13: 2.1.5 reads per-operation fail counts only then
    x = x.replace("<cib ", '<cib crm_feature_set="3.16.1" ', 1).replace(
        "</configuration>", '<rsc_defaults><meta_attributes id="rd"><nvpair id="rd-mt" name="migration-threshold" '
        'value="1"/><nvpair id="rd-st" name="resource-stickiness" value="INFINITY"/></meta_attributes>'
        '</rsc_defaults></configuration>')
    for n in ("node1", "node2", "node3"):
        x = x.replace(f'<node id="{n}" uname="{n}"></node>',
                      f'<node id="{n}" uname="{n}"><utilization id="{n}-u"><nvpair id="{n}-u-c" '
                      'name="capacity" value="1"/></utilization></node>')
    return x


CASES = {
    "utilization": (sticky_groups(), ["Move a1 (node1 -> node3)", "Recover b1 (node1 -> node3)"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_summary(name):
    xml, expected = CASES[name]
    assert summary_of("Transition Summary:\n" + "\n".join(schedule(parse_cib(xml, "t.xml"), 1000).summary)) \
        == sorted(expected)


@needs_crm_simulate
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_crm_simulate(name, tmp_path):
    xml, expected = CASES[name]
    assert crm_simulate_summary(xml, str(tmp_path)) == sorted(expected)
