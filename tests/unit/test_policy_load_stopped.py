"""load_stopped_<node> pseudo-actions with a placement strategy (pcmk__create_utilization_constraints):
a resource with utilization stops before its node's load_stopped, which comes before starts there. The
expected executed actions are what crm_simulate 2.1.5 printed (the crm_simulate-marked test runs it)."""
from __future__ import annotations

import subprocess


from hadaemon.core.cib import parse_cib
from hadaemon.core.policy import schedule
from tests.unit.crmsim import needs_crm_simulate
from tests.unit.test_policy_scheduler import cib, node_state, running


def util(rid, cpu):
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy"><utilization id="{rid}-u">'
            f'<nvpair id="{rid}-u-cpu" name="cpu" value="{cpu}"/></utilization></primitive>')


def swap(strategy="utilization"):
    """Two nodes of 2 CPUs, each full with a 2-CPU resource that prefers the other node."""
    x = cib(resources=[util("rsc1", 2), util("rsc2", 2)], options={"placement-strategy": strategy},
            constraints=['<rsc_location id="l1" rsc="rsc1" node="node2" score="100"/>',
                         '<rsc_location id="l2" rsc="rsc2" node="node1" score="100"/>'],
            status=[node_state("node1", running("rsc1")), node_state("node2", running("rsc2"))])
    for n in ("node1", "node2"):
        x = x.replace(f'<node id="{n}" uname="{n}"></node>',
                      f'<node id="{n}" uname="{n}"><utilization id="{n}-u"><nvpair id="{n}-u-cpu" name="cpu" '
                      'value="2"/></utilization></node>')
    return x


EXECUTED = """\
  * Resource action: rsc2            stop on node2
  * Resource action: rsc2            monitor on node1
  * Resource action: rsc1            stop on node1
  * Resource action: rsc1            monitor on node2
  * Pseudo action:   load_stopped_node2
  * Pseudo action:   load_stopped_node1
  * Resource action: rsc2            start on node1
  * Resource action: rsc1            start on node2"""


def test_stops_free_the_capacity_before_the_starts():
    t = schedule(parse_cib(swap(), "t.xml"), 0)
    assert "\n".join(t.executed_lines()) == EXECUTED
    keys = {a.id: (a.key, a.node) for a in t.graph.actions}
    edges = {(keys[x], keys[y]) for x, y in t.graph.edges if x in keys and y in keys}
    assert (("rsc1_stop_0", "node1"), ("load_stopped_node1", "node1")) in edges
    assert (("load_stopped_node2", "node2"), ("rsc1_start_0", "node2")) in edges


def test_no_load_stopped_without_a_placement_strategy():
    t = schedule(parse_cib(swap("default"), "t.xml"), 0)
    assert not any(a.key.startswith("load_stopped") for a in t.graph.actions)


@needs_crm_simulate
def test_against_crm_simulate(tmp_path):
    f = tmp_path / "cib.xml"
    f.write_text(swap())
    out = subprocess.run(["crm_simulate", "-x", str(f), "-S"], capture_output=True, text=True, timeout=120).stdout
    section = out.split("Executing Cluster Transition:\n", 1)[1].split("\n\n", 1)[0]
    assert section == EXECUTED
