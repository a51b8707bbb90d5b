"""Clones, promotable clones, tickets, resource sets, templates, tags and placement strategies
(utilization) on small hand-written CIBs.

Every expected summary is what crm_simulate 2.1.5 printed for the same CIB (the crm_simulate-marked
test at the end runs it again when it is installed).
"""
from __future__ import annotations

import re
import subprocess
from typing import Dict

import pytest

from tests.unit.crmsim import crm_simulate_summary, needs_crm_simulate, simulate_both
from tests.unit.test_policy_scheduler import cib, lrm, node_state, op, primitive, running, stopped, summary

N3 = ("node1", "node2", "node3")


def meta(rid: str, values: Dict[str, str] | None) -> str:
    if not values:
        return ""
    return (f'<meta_attributes id="{rid}-meta">'
            + "".join(f'<nvpair id="{rid}-m-{k}" name="{k}" value="{v}"/>' for k, v in values.items())
            + "</meta_attributes>")


def clone(cid: str, child: str, values: Dict[str, str] | None = None) -> str:
    return f'<clone id="{cid}">{meta(cid, values)}{child}</clone>'


def stateful(rid: str) -> str:
    return (f'<primitive id="{rid}" class="ocf" provider="pacemaker" type="Stateful"><operations>'
            f'<op id="{rid}-mon-p" name="monitor" interval="10s" role="Master"/>'
            f'<op id="{rid}-mon-u" name="monitor" interval="11s" role="Slave"/></operations></primitive>')


def promotable(cid: str, child: str, values: Dict[str, str] | None = None) -> str:
    return clone(cid, child, dict({"promotable": "true"}, **(values or {})))


def unpromoted(rsc: str) -> str:
    return lrm(rsc, op(rsc, "start"), agent=("ocf", "pacemaker", "Stateful"))


def promoted(rsc: str) -> str:
    return lrm(rsc, op(rsc, "start", call=1), op(rsc, "promote", call=2), agent=("ocf", "pacemaker", "Stateful"))


def probed(rsc: str) -> str:
    return lrm(rsc, op(rsc, "monitor", rc=7), agent=("ocf", "pacemaker", "Stateful"))


def tickets(xml: str, **states: str) -> str:
    """Add <tickets> to the status: name -> 'granted', 'revoked' or 'standby'."""
    inner = "".join(f'<ticket_state id="{name}" granted="{"false" if s == "revoked" else "true"}" '
                    f'standby="{"true" if s == "standby" else "false"}"/>' for name, s in states.items())
    return xml.replace("</status>", f"<tickets>{inner}</tickets></status>")


def ban(rsc: str, node: str) -> str:
    return f'<rsc_location id="ban-{rsc}-{node}" rsc="{rsc}" node="{node}" score="-INFINITY"/>'


S = {}
S["anon_fresh"] = lambda: cib(nodes=N3, resources=[clone("ping-clone", primitive("ping"))])
S["anon_clone_max"] = lambda: cib(
    nodes=N3, resources=[clone("ping-clone", primitive("ping"), {"clone-max": "2"})],
    status=[node_state("node1", stopped("ping")), node_state("node2", stopped("ping")),
            node_state("node3", running("ping"))])
S["anon_standby"] = lambda: cib(
    resources=[clone("ping-clone", primitive("ping"))], node_attrs={"node2": {"standby": "on"}},
    status=[node_state("node1", running("ping")), node_state("node2", running("ping"))])
S["anon_offline_node"] = lambda: cib(
    nodes=N3, resources=[clone("fs-clone", primitive("fs"))],
    status=[node_state("node1", running("fs")), node_state("node2", running("fs")),
            node_state("node3", running("fs"), online=False)])
S["with_clone"] = lambda: cib(
    nodes=N3, resources=[clone("ping-clone", primitive("ping")), primitive("web")],
    constraints=[ban("ping-clone", "node1"), ban("ping-clone", "node2"),
                 '<rsc_colocation id="c" rsc="web" with-rsc="ping-clone" score="INFINITY"/>',
                 '<rsc_order id="o" first="ping-clone" then="web"/>'])
S["order_after_stopped_clone"] = lambda: cib(
    resources=[clone("ping-clone", primitive("ping"), {"target-role": "Stopped"}), primitive("web")],
    constraints=['<rsc_order id="o" first="ping-clone" then="web"/>'])
S["interleave"] = lambda: cib(
    nodes=N3, resources=[clone("a-clone", primitive("a"), {"interleave": "true"}),
                         clone("b-clone", primitive("b"), {"interleave": "true"})],
    constraints=[ban("a-clone", "node3"), '<rsc_order id="o" first="a-clone" then="b-clone"/>'])
S["unique_node_max"] = lambda: cib(
    resources=[clone("u-clone", primitive("u"), {"globally-unique": "true", "clone-max": "3",
                                                 "clone-node-max": "2"})])
S["clone_moves_off_banned"] = lambda: cib(
    nodes=N3, resources=[clone("c", primitive("d"), {"clone-max": "2"})],
    constraints=[ban("c", "node1")],
    status=[node_state("node1", running("d")), node_state("node2", running("d")),
            node_state("node3", stopped("d"))])
S["promote_fresh"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    status=[node_state("node1", attrs={"master-st": "5"}), node_state("node2", attrs={"master-st": "10"})])
S["promote_higher_score"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    status=[node_state("node1", unpromoted("st"), attrs={"master-st": "5"}),
            node_state("node2", unpromoted("st"), attrs={"master-st": "10"})])
S["promoted_stays"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    status=[node_state("node1", promoted("st"), attrs={"master-st": "5"}),
            node_state("node2", unpromoted("st"), attrs={"master-st": "5"})])
S["promoted_standby"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))], node_attrs={"node1": {"standby": "on"}},
    status=[node_state("node1", promoted("st"), attrs={"master-st": "10"}),
            node_state("node2", unpromoted("st"), attrs={"master-st": "5"})])
S["with_promoted"] = lambda: cib(
    resources=[promotable("ms", stateful("st")), primitive("ip")],
    constraints=['<rsc_colocation id="c" rsc="ip" with-rsc="ms" with-rsc-role="Master" score="INFINITY"/>',
                 '<rsc_order id="o" first="ms" first-action="promote" then="ip" then-action="start"/>'],
    status=[node_state("node1", unpromoted("st"), stopped("ip"), attrs={"master-st": "5"}),
            node_state("node2", unpromoted("st"), stopped("ip"), attrs={"master-st": "10"})])
S["promoted_location"] = lambda: cib(
    resources=[promotable("ms", stateful("st"))],
    constraints=['<rsc_location id="l" rsc="ms" role="Master" node="node1" score="100"/>'],
    status=[node_state("node1", unpromoted("st"), attrs={"master-st": "5"}),
            node_state("node2", promoted("st"), attrs={"master-st": "10"})])
S["ticket_not_granted"] = lambda: cib(
    resources=[primitive("rsc1")], constraints=['<rsc_ticket id="t" rsc="rsc1" ticket="tA"/>'])
S["ticket_revoked_stop"] = lambda: tickets(cib(
    resources=[primitive("rsc1")],
    constraints=['<rsc_ticket id="t" rsc="rsc1" ticket="tA" loss-policy="stop"/>'],
    status=[node_state("node1", running("rsc1")), node_state("node2", stopped("rsc1"))]), tA="revoked")
S["ticket_revoked_freeze"] = lambda: tickets(cib(
    resources=[primitive("rsc1"), primitive("rsc2")],
    constraints=['<rsc_ticket id="t" rsc="rsc1" ticket="tA" loss-policy="freeze"/>',
                 '<rsc_ticket id="t2" rsc="rsc2" ticket="tA" loss-policy="freeze"/>'],
    status=[node_state("node1", running("rsc1"), stopped("rsc2")),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))]), tA="revoked")
S["ticket_granted_clone"] = lambda: tickets(cib(
    resources=[clone("c", primitive("d"))],
    constraints=['<rsc_ticket id="t" rsc="c" ticket="tA"/>']), tA="granted")
S["ticket_standby_promoted"] = lambda: tickets(cib(
    resources=[promotable("ms", stateful("st"))],
    constraints=['<rsc_ticket id="t" rsc="ms" rsc-role="Master" ticket="tA" loss-policy="demote"/>'],
    status=[node_state("node1", promoted("st"), attrs={"master-st": "10"}),
            node_state("node2", unpromoted("st"), attrs={"master-st": "5"})]), tA="standby")
S["cloned_group_fresh"] = lambda: cib(
    resources=[clone("gc", '<group id="g">' + primitive("a") + primitive("b") + "</group>")])
S["cloned_group_one_running"] = lambda: cib(
    nodes=N3, resources=[clone("gc", '<group id="g">' + primitive("a") + primitive("b") + "</group>",
                               {"clone-max": "2"})],
    constraints=[ban("gc", "node1")],
    status=[node_state("node1", running("a"), running("b")), node_state("node2", stopped("a"), stopped("b")),
            node_state("node3", stopped("a"), stopped("b"))])
TEMPLATE = '<template id="tmpl" class="ocf" provider="heartbeat" type="Dummy"/>'
S["order_set_blocked"] = lambda: cib(
    resources=[primitive("a", {"target-role": "Stopped"}), primitive("b"), primitive("c")],
    constraints=['<rsc_order id="o"><resource_set id="s1"><resource_ref id="a"/><resource_ref id="b"/>'
                 '</resource_set><resource_set id="s2"><resource_ref id="c"/></resource_set></rsc_order>'])
S["order_set_require_any"] = lambda: cib(
    resources=[primitive("a", {"target-role": "Stopped"}), primitive("b"), primitive("c")],
    constraints=['<rsc_order id="o"><resource_set id="s1" sequential="false" require-all="false">'
                 '<resource_ref id="a"/><resource_ref id="b"/></resource_set>'
                 '<resource_set id="s2"><resource_ref id="c"/></resource_set></rsc_order>'])
S["colocation_set"] = lambda: cib(
    nodes=N3, resources=[primitive("a"), primitive("b"), primitive("c")],
    constraints=['<rsc_location id="l" rsc="a" node="node3" score="100"/>',
                 '<rsc_colocation id="col" score="INFINITY"><resource_set id="s1"><resource_ref id="b"/>'
                 '<resource_ref id="c"/></resource_set><resource_set id="s2"><resource_ref id="a"/>'
                 '</resource_set></rsc_colocation>'])
S["anti_colocation_set"] = lambda: cib(
    nodes=N3, resources=[primitive("a"), primitive("b"), primitive("c")],
    constraints=['<rsc_colocation id="col" score="-INFINITY"><resource_set id="s1"><resource_ref id="a"/>'
                 '<resource_ref id="b"/><resource_ref id="c"/></resource_set></rsc_colocation>'])
S["template_location"] = lambda: cib(
    resources=[TEMPLATE, '<primitive id="t1" template="tmpl"/>', '<primitive id="t2" template="tmpl"/>'],
    constraints=['<rsc_location id="l" rsc="tmpl" node="node2" score="100"/>'])
S["tag_colocation"] = lambda: cib(
    nodes=N3, resources=[primitive("a"), primitive("b"), primitive("p")],
    constraints=['<rsc_location id="l" rsc="p" node="node3" score="100"/>',
                 '<rsc_colocation id="c" rsc="tg" with-rsc="p" score="INFINITY"/>'],
).replace("</constraints>", '</constraints><tags><tag id="tg"><obj_ref id="a"/><obj_ref id="b"/></tag></tags>')

S["clone_min_blocks"] = lambda: cib(
    nodes=N3, resources=[clone("a-clone", primitive("a"), {"clone-min": "2"}), primitive("web")],
    node_attrs={"node2": {"standby": "on"}, "node3": {"standby": "on"}},
    constraints=['<rsc_order id="o" first="a-clone" then="web"/>'])

S["health_migrate_on_red"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2", {"allow-unhealthy-nodes": "true"})],
    options={"node-health-strategy": "migrate-on-red"},
    status=[node_state("node1", running("rsc1"), running("rsc2"), attrs={"#health-disk": "red"}),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))])
S["health_only_green"] = lambda: cib(
    nodes=N3, resources=[primitive("rsc1")], options={"node-health-strategy": "only-green"},
    status=[node_state("node1", running("rsc1"), attrs={"#health-cpu": "yellow"}),
            node_state("node2", stopped("rsc1"), attrs={"#health-cpu": "red"}), node_state("node3", stopped("rsc1"))])
S["health_progressive"] = lambda: cib(
    resources=[primitive("rsc1")],
    options={"node-health-strategy": "progressive", "node-health-yellow": "-50", "node-health-base": "10"},
    status=[node_state("node1", attrs={"#health-a": "yellow", "#health-b": "yellow"}),
            node_state("node2", attrs={"#health-a": "-5"})])

S["shutdown_lock_stop"] = lambda: cib(
    resources=[primitive("rsc1"), primitive("rsc2", {"target-role": "Started"})],
    options={"shutdown-lock": "true"},
    status=[node_state("node1", running("rsc1"), running("rsc2"), attrs={"shutdown": "1000"}),
            node_state("node2", stopped("rsc1"), stopped("rsc2"))])
S["shutdown_lock_held"] = lambda: cib(
    resources=[primitive("rsc1")], options={"shutdown-lock": "true"},
    status=[node_state("node1", lrm("rsc1", op("rsc1", "start", call=1), op("rsc1", "stop", call=2)),
                       online=False).replace('<lrm_resource id="rsc1"', '<lrm_resource id="rsc1" shutdown-lock="1000"')
            .replace('expected="member"', 'expected="down"'),
            node_state("node2", stopped("rsc1"))])


def util_cib(strategy: str, caps: Dict[str, int], needs: Dict[str, int], **kw) -> str:
    """Nodes with a memory capacity, resources with a memory need, under a placement strategy."""
    xml = cib(nodes=tuple(caps), resources=[
        f'<primitive id="{r}" class="ocf" provider="heartbeat" type="Dummy"><utilization id="{r}-u">'
        f'<nvpair id="{r}-u-m" name="memory" value="{m}"/></utilization></primitive>' for r, m in needs.items()],
        options={"placement-strategy": strategy}, **kw)
    for n, m in caps.items():
        xml = xml.replace(f'<node id="{n}" uname="{n}">', f'<node id="{n}" uname="{n}"><utilization id="{n}-u">'
                                                          f'<nvpair id="{n}-u-m" name="memory" value="{m}"/>'
                                                          '</utilization>')
    return xml


S["util_capacity_bans"] = lambda: util_cib("utilization", {"node1": 512, "node2": 1024, "node3": 2048},
                                           {"big": 1024, "huge": 2048, "small": 256})
S["util_no_room"] = lambda: util_cib("utilization", {"node1": 512, "node2": 512}, {"a": 400, "b": 400, "c": 400})
S["util_balanced"] = lambda: util_cib("balanced", {"node1": 1000, "node2": 4000, "node3": 2000},
                                      {"a": 500, "b": 500, "c": 500, "d": 500})
S["util_minimal"] = lambda: util_cib("minimal", {"node1": 1000, "node2": 4000, "node3": 2000},
                                     {"a": 500, "b": 500, "c": 500})

EXPECTED = {
    "shutdown_lock_stop": ["Stop rsc1 (node1) due to node availability", "Stop rsc2 (node1) due to node availability"],
    "shutdown_lock_held": [],
    "health_migrate_on_red": ["Move rsc1 (node1 -> node2)"],
    "health_only_green": ["Move rsc1 (node1 -> node3)"],
    "health_progressive": ["Start rsc1 (node2)"],
    "clone_min_blocks": ["Start a:0 (node1)",
                         "Start web (node1) due to unrunnable clone-one-or-more:o (blocked)"],
    "util_capacity_bans": ["Start big (node2)", "Start huge (node3)", "Start small (node1)"],
    "util_no_room": ["Start a (node1)", "Start b (node2)"],
    "util_balanced": ["Start a (node2)", "Start b (node2)", "Start c (node2)", "Start d (node2)"],
    "util_minimal": ["Start a (node1)", "Start b (node1)", "Start c (node2)"],
    "order_set_blocked": ["Start b (node1) due to unrunnable a start (blocked)",
                          "Start c (node2) due to unrunnable a start (blocked)"],
    "order_set_require_any": ["Start b (node1)", "Start c (node2)"],
    "colocation_set": ["Start a (node3)", "Start b (node3)", "Start c (node3)"],
    "anti_colocation_set": ["Start a (node1)", "Start b (node2)", "Start c (node3)"],
    "template_location": ["Start t1 (node2)", "Start t2 (node2)"],
    "tag_colocation": ["Start a (node3)", "Start b (node3)", "Start p (node3)"],
    "cloned_group_fresh": ["Start a:0 (node1)", "Start a:1 (node2)", "Start b:0 (node1)", "Start b:1 (node2)"],
    "cloned_group_one_running": ["Move a:0 (node1 -> node3)", "Move b:0 (node1 -> node3)", "Start a:1 (node2)",
                                 "Start b:1 (node2)"],
    "anon_clone_max": ["Start ping:1 (node1)"],
    "anon_fresh": ["Start ping:0 (node1)", "Start ping:1 (node2)", "Start ping:2 (node3)"],
    "anon_offline_node": [],
    "anon_standby": ["Stop ping:1 (node2) due to node availability"],
    "clone_moves_off_banned": ["Move d:0 (node1 -> node3)"],
    "interleave": ["Start a:0 (node1)", "Start a:1 (node2)", "Start b:1 (node1)", "Start b:2 (node2)"],
    "order_after_stopped_clone": ["Start web (node1) due to unrunnable ping-clone running (blocked)"],
    "promote_fresh": ["Promote st:0 (Stopped -> Promoted node2)", "Start st:1 (node1)"],
    "promote_higher_score": ["Promote st:1 (Unpromoted -> Promoted node2)"],
    "promoted_location": ["Demote st:1 (Promoted -> Unpromoted node2)", "Promote st:0 (Unpromoted -> Promoted node1)"],
    "promoted_standby": ["Promote st:1 (Unpromoted -> Promoted node2)", "Stop st:0 (Promoted node1) due to node availability"],
    "promoted_stays": [],
    "ticket_granted_clone": ["Start d:0 (node1)", "Start d:1 (node2)"],
    "ticket_not_granted": [],
    "ticket_revoked_freeze": [],
    "ticket_revoked_stop": ["Stop rsc1 (node1) due to node availability"],
    "ticket_standby_promoted": ["Demote st:0 (Promoted -> Unpromoted node1)"],
    "unique_node_max": ["Start u:0 (node1)", "Start u:1 (node2)", "Start u:2 (node1)"],
    "with_clone": ["Start ping:0 (node3)", "Start web (node3)"],
    "with_promoted": ["Promote st:1 (Unpromoted -> Promoted node2)", "Start ip (node2)"],
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


NOTIFY = lambda: cib(  # noqa: E731
    nodes=N3, resources=[clone("c", primitive("d"), {"notify": "true"})], node_attrs={"node3": {"standby": "on"}},
    status=[node_state("node1", running("d")), node_state("node2", stopped("d")), node_state("node3", running("d"))])
# crm_simulate 2.1.5's "Executing Cluster Transition" for NOTIFY, line for line
NOTIFY_EXECUTED = """\
Pseudo action: c_pre_notify_stop_0
Resource action: d notify on node1
Resource action: d notify on node3
Pseudo action: c_confirmed-pre_notify_stop_0
Pseudo action: c_stop_0
Resource action: d stop on node3
Pseudo action: c_stopped_0
Pseudo action: c_post_notify_stopped_0
Resource action: d notify on node1
Pseudo action: c_confirmed-post_notify_stopped_0
Pseudo action: c_pre_notify_start_0
Resource action: d notify on node1
Pseudo action: c_confirmed-pre_notify_start_0
Pseudo action: c_start_0
Resource action: d start on node2
Pseudo action: c_running_0
Pseudo action: c_post_notify_running_0
Resource action: d notify on node1
Resource action: d notify on node2
Pseudo action: c_confirmed-post_notify_running_0""".splitlines()


def test_clone_notifications_around_stop_and_start():
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    t = schedule(parse_cib(NOTIFY(), "t.xml"), 0)
    lines = [re.sub(r"\s+", " ", line.strip().lstrip("*").strip()) for line in t.executed_lines()]
    assert [x for x in lines if "monitor" not in x] == NOTIFY_EXECUTED
    notify = [a for a in t.graph.actions if a.task == "notify" and not a.pseudo]
    # an instance's notify key names the notified operation, pre and post alike (Pacemaker's graph:
    # d:0_post_notify_start_0); only the clone's pseudo-actions use running/stopped
    assert sorted((a.key, a.node) for a in notify)[:2] == [("d:0_post_notify_start_0", "node1"),
                                                          ("d:0_post_notify_stop_0", "node1")]


def _graph_meta(xml_text):
    """{(operation_key, node): {CRM_meta_*: value}} of a transition graph's resource actions."""
    out = {}
    for m in re.finditer(r'<rsc_op ([^>]*?)(?<!/)>(.*?)</rsc_op>', xml_text, re.S):
        attrs = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(1)))
        key = attrs.get("internal_operation_key", attrs["operation_key"])  # Pacemaker's: the instance's key
        out[(key, attrs["on_node"])] = dict(re.findall(r'(CRM_meta_notify_[a-z_]+)="([^"]*)"', m.group(2)))
    return out


def test_saved_graph_carries_the_notification_variables():
    """--save-graph writes CRM_meta_notify_* on notify actions (and the instances' start/stop) as
    Pacemaker's graph does."""
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    meta = _graph_meta(schedule(parse_cib(NOTIFY(), "t.xml"), 0).graph_xml())
    post = meta[("d:0_post_notify_start_0", "node1")]
    assert post["CRM_meta_notify_type"] == "post" and post["CRM_meta_notify_operation"] == "start"
    assert post["CRM_meta_notify_key_type"] == "post" and post["CRM_meta_notify_key_operation"] == "running"
    assert post["CRM_meta_notify_all_uname"] == "node1 node2 node3"
    assert post["CRM_meta_notify_start_resource"] == "d:1" and post["CRM_meta_notify_start_uname"] == "node2"


@needs_crm_simulate
def test_saved_graph_notification_variables_against_crm_simulate(tmp_path):
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    f = tmp_path / "cib.xml"
    f.write_text(NOTIFY())
    subprocess.run(["crm_simulate", "-x", str(f), "-S", "-G", str(tmp_path / "g.xml")], capture_output=True,
                   timeout=120)
    theirs = _graph_meta((tmp_path / "g.xml").read_text())
    ours = _graph_meta(schedule(parse_cib(NOTIFY(), "t.xml"), 0).graph_xml())
    assert any(k[0].endswith("_notify_start_0") for k in theirs)
    assert ours == theirs


def test_shutdown_lock_expires_after_its_limit():
    """Locked at 1000 with shutdown-lock-limit=5m: held at 1200, expired (free to start elsewhere)
    at 1400 (crm_simulate, whose clock is far past it, starts the resource too)."""
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    xml = S["shutdown_lock_held"]().replace(
        '<nvpair id="opt-shutdown-lock"', '<nvpair id="opt-limit" name="shutdown-lock-limit" value="5m"/>'
        '<nvpair id="opt-shutdown-lock"')
    assert schedule(parse_cib(xml, "t.xml"), 1200).summary == []
    assert [re.sub(r"\s+", " ", x.strip()) for x in schedule(parse_cib(xml, "t.xml"), 1400).summary] == \
        ["* Start rsc1 ( node2 )"]


def _notify_lines(text: str):
    section = text.split("Executing Cluster Transition:", 1)[1].split("Revised Cluster Status:", 1)[0]
    # the instance number left out: for an instance with no history 2.1.5 prints the configured id, 3.0 the
    # instance's (as we do)
    return sorted(re.sub(r":\d+ ", " ", re.sub(r"\s+", " ", x.strip())) for x in section.splitlines() if "notify" in x)


PROMOTE_NOTIFY = lambda: cib(  # noqa: E731
    resources=[promotable("ms", stateful("st"), {"notify": "true"})],
    status=[node_state("node1", unpromoted("st"), attrs={"master-st": "5"}),
            node_state("node2", attrs={"master-st": "10"})])


def test_promote_is_pre_notified_to_instances_starting_in_the_same_transition():
    """create_notify_actions: a promote's pre-notification goes to every instance placed, including one whose
    start is in this transition (a start's only to those already running); the demote of the instance
    stopping or moving is post-notified to all active instances."""
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    t = schedule(parse_cib(PROMOTE_NOTIFY(), "t.xml"), 0)
    pre_promote = sorted(a.node for a in t.graph.actions if a.task == "notify" and "_pre_notify_promote_" in a.key
                         and not a.pseudo)
    assert pre_promote == ["node1", "node2"]


@needs_crm_simulate
def test_promote_notifications_against_crm_simulate(tmp_path, capsys):
    ours, crm = simulate_both(PROMOTE_NOTIFY(), str(tmp_path), capsys)
    assert _notify_lines(ours) == _notify_lines(crm)


UNCLEAN_NOTIFY = lambda: cib(  # noqa: E731
    nodes=("node1", "node2", "node3"),
    resources=[primitive("fence", cls="stonith"), clone("c", primitive("d"), {"notify": "true"})],
    options={"stonith-enabled": "true"}, quorum=False,
    status=[node_state("node1", running("d"), stopped("fence")), node_state("node2", running("d"), online=False),
            node_state("node3", running("d"), online=False)])


def test_no_notification_to_an_offline_node():
    """new_notify_action: instances on nodes that are offline (here unclean and not fenceable without
    quorum) get no notification; the one stopping on node1 is still notified."""
    from hadaemon.core.cib import parse_cib
    from hadaemon.core.policy import schedule

    t = schedule(parse_cib(UNCLEAN_NOTIFY(), "t.xml"), 0)
    assert sorted({a.node for a in t.graph.actions if a.task == "notify" and not a.pseudo}) == ["node1"]


@needs_crm_simulate
def test_no_notification_to_an_offline_node_against_crm_simulate(tmp_path, capsys):
    ours, crm = simulate_both(UNCLEAN_NOTIFY(), str(tmp_path), capsys)
    assert ([x for x in _notify_lines(ours) if "Resource action" in x]
            == [x for x in _notify_lines(crm) if "Resource action" in x])
