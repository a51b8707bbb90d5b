"""A reloadable parameter change: the reload-agent waits for the resource's probes and the recurring
monitor waits for the reload (Pacemaker's pcmk__probe_rsc_on_node and recurring_op_for_active), so the
new monitor never runs with the old parameters before the reload. Checked on the graph's inputs, and
against crm_simulate -S -G for a primitive, a group member and clone instances."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from typing import Dict, Set, Tuple

import pytest

from hadaemon.core.cib import history as H
from hadaemon.core.cib import parse_cib
from hadaemon.core.policy import schedule
from tests.unit.crmsim import needs_crm_simulate

NOW = 1800000000
NODES = ("node1", "node2", "node3")
Key = Tuple[str, object]


def _history(rid: str, node: str, call: int, state: str = "/run/d.state") -> str:
    """A start (fake=1, with the restart list and digest ha-crmd writes: only `state` needs a restart)
    and a 10 s monitor of ocf:heartbeat:Dummy `rid` on `node`."""
    start = H.digest({"state": state, "fake": "1"})
    restart = H.digest({"state": state})
    mon = H.digest({"state": state, "fake": "1", "CRM_meta_timeout": "20000"})
    common = ('crm-debug-origin="do_update_resource" crm_feature_set="3.19.0" rc-code="0" op-status="0" '
              f'on_node="{node}" last-rc-change="1700000000" exec-time="0" queue-time="0"')
    return (f'<lrm_resource id="{rid}" type="Dummy" class="ocf" provider="heartbeat">'
            f'<lrm_rsc_op id="{rid}_last_0" operation_key="{rid}_start_0" operation="start" {common} '
            f'transition-key="3:7:0:uuid" transition-magic="0:0;3:7:0:uuid" call-id="{call}" interval="0" '
            f'op-digest="{start}" op-force-restart="  state  " op-restart-digest="{restart}"/>'
            f'<lrm_rsc_op id="{rid}_monitor_10000" operation_key="{rid}_monitor_10000" operation="monitor" '
            f'{common} transition-key="4:7:0:uuid" transition-magic="0:0;4:7:0:uuid" call-id="{call + 1}" '
            f'interval="10000" op-digest="{mon}"/></lrm_resource>')


def _prim(rid: str, fake: str, state: str = "/run/d.state") -> str:
    return (f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy"><operations>'
            f'<op id="{rid}-mon" name="monitor" interval="10s" timeout="20s"/></operations>'
            f'<instance_attributes id="{rid}-ia"><nvpair id="{rid}-state" name="state" value="{state}"/>'
            f'<nvpair id="{rid}-fake" name="fake" value="{fake}"/></instance_attributes></primitive>')


def _cib(resources: str, status: Dict[str, str]) -> str:
    nodes = "".join(f'<node id="{n}" uname="{n}" type="member"/>' for n in NODES)
    states = "".join(f'<node_state id="{n}" uname="{n}" in_ccm="true" crmd="online" join="member" '
                     f'expected="member"><lrm id="{n}"><lrm_resources>{status.get(n, "")}</lrm_resources>'
                     f'</lrm></node_state>' for n in NODES)
    return ('<cib admin_epoch="0" epoch="1" num_updates="0" have-quorum="1" validate-with="pacemaker-3.0">'
            '<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">'
            '<nvpair id="o-st" name="stonith-enabled" value="false"/></cluster_property_set></crm_config>'
            f'<nodes>{nodes}</nodes><resources>{resources}</resources><constraints/></configuration>'
            f'<status>{states}</status></cib>')


# d (fake 1 -> 2) runs on node1; node2 and node3 have not probed it
PRIMITIVE = _cib(_prim("d", "2"), {"node1": _history("d", "node1", 2)})
# group g = a (unchanged), d (fake 1 -> 2), both on node1
GROUP = _cib(f'<group id="g">{_prim("a", "1", "/run/a.state")}{_prim("d", "2")}</group>',
             {"node1": _history("a", "node1", 2, "/run/a.state") + _history("d", "node1", 4)})
# clone c of d (fake 1 -> 2) on node1 and node2; a third instance starts on node3
CLONE = _cib(f'<clone id="c">{_prim("d", "2")}</clone>',
             {"node1": _history("d", "node1", 2), "node2": _history("d", "node2", 2)})
# a's restart-listed parameter changes too: a restarts, d restarts after it, d's reload is dropped
GROUP_RESTART = _cib(f'<group id="g">{_prim("a", "1", "/run/a2.state")}{_prim("d", "2")}</group>',
                     {"node1": _history("a", "node1", 2, "/run/a.state") + _history("d", "node1", 4)})


def _key(el) -> Key:
    return (el.get("internal_operation_key") or el.get("operation_key") or el.get("operation"), el.get("on_node"))


def graph_inputs(graph_xml: str) -> Dict[Key, Set[Key]]:
    """{(operation key, node): {inputs' (operation key, node)}} of a transition graph (an instance's own
    key when the graph gives one)."""
    out: Dict[Key, Set[Key]] = {}
    for syn in ET.fromstring(graph_xml).iter("synapse"):
        action = list(syn.find("action_set"))[0]
        out[_key(action)] = {_key(list(t)[0]) for t in syn.iter("trigger")}
    return out


def ours(xml: str) -> Dict[Key, Set[Key]]:
    return graph_inputs(schedule(parse_cib(xml, "test.xml"), NOW).graph_xml())


def _reload_and_monitors(inputs: Dict[Key, Set[Key]]) -> Dict[Key, Set[Key]]:
    return {k: v for k, v in inputs.items() if "_reload-agent_" in k[0] or k[0].endswith("_monitor_10000")}


def test_monitor_after_reload_and_reload_after_probes():
    g = ours(PRIMITIVE)
    assert g[("d_reload-agent_0", "node1")] == {("d_monitor_0", "node2"), ("d_monitor_0", "node3")}
    assert g[("d_monitor_10000", "node1")] == {("d_reload-agent_0", "node1")}
    assert ("d_stop_0", "node1") not in g and ("d_start_0", "node1") not in g


def test_group_member_reload_waits_for_its_own_probes_only():
    g = ours(GROUP)
    assert g[("d_reload-agent_0", "node1")] == {("d_monitor_0", "node2"), ("d_monitor_0", "node3")}
    assert g[("d_monitor_10000", "node1")] == {("d_reload-agent_0", "node1")}
    assert ("a_monitor_10000", "node1") not in g      # a is unchanged: its monitor stays as it is


def test_clone_instance_reload_is_not_ordered_after_other_instances_probes():
    """Pacemaker orders a probe before the reload named on the clone (an instance's key on the clone
    matches nothing): each instance's reload waits for nothing, its monitor for its reload."""
    g = ours(CLONE)
    for inst, node in (("d:0", "node1"), ("d:1", "node2")):
        assert g[(f"{inst}_reload-agent_0", node)] == set()
        assert g[(f"{inst}_monitor_10000", node)] == {(f"{inst}_reload-agent_0", node)}


def test_a_reload_dropped_for_a_restart_leaves_the_monitor_after_the_start():
    g = ours(GROUP_RESTART)
    assert not [k for k in g if "_reload-agent_" in k[0]]
    assert g[("d_monitor_10000", "node1")] == {("d_start_0", "node1")}


@needs_crm_simulate
@pytest.mark.parametrize("name", ["PRIMITIVE", "GROUP", "CLONE", "GROUP_RESTART"])
def test_reload_orderings_against_crm_simulate(tmp_path, name):
    xml = globals()[name]
    (tmp_path / "cib.xml").write_text(xml)
    subprocess.run(["crm_simulate", "-x", str(tmp_path / "cib.xml"), "-S", "-G", str(tmp_path / "g.xml")],
                   capture_output=True, timeout=120)
    theirs = _reload_and_monitors(graph_inputs((tmp_path / "g.xml").read_text()))
    assert any(k[0].endswith("_monitor_10000") for k in theirs)
    assert _reload_and_monitors(ours(xml)) == theirs
