"""Date expressions in the rules of nvpair sets (Pacemaker's pe_eval_rules / pe__eval_date_expr wherever
a rule is: a resource's meta_attributes, rsc_defaults, op_defaults, node attributes, crm_config), evaluated
at the scheduler's time. Every expected summary is what crm_simulate 2.1.5 printed for the same CIB with
`-t DATE` (the crm_simulate-marked test runs it again when it is installed)."""
from __future__ import annotations

import re
from typing import List

import pytest

from hadaemon.core.cib.dates import parse_datetime
from hadaemon.core.cib import parse_cib
from hadaemon.core.errors import ConfigError
from hadaemon.core.policy import schedule
from tests.unit.crmsim import crm_simulate_summary, needs_crm_simulate
from tests.unit.test_policy_scheduler import cib, node_state, running, stopped


def prim(rid: str, sets: str = "") -> str:
    return f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy">{sets}</primitive>'


def date_set(sid: str, expr: str, name: str, value: str, score: int = 2, tag: str = "meta_attributes") -> str:
    """A set with one rule holding the date expression `expr` (its inner XML, id given here)."""
    return (f'<{tag} id="{sid}" score="{score}"><rule id="{sid}-r" score="0">'
            f'<date_expression id="{sid}-d" {expr}</date_expression></rule>'
            f'<nvpair id="{sid}-nv" name="{name}" value="{value}"/></{tag}>')


def spec(**fields) -> str:
    attrs = " ".join(f'{k}="{v}"' for k, v in fields.items())
    return f'operation="date_spec"><date_spec id="ds" {attrs}/>'


def sticky_world(expr: str) -> str:
    """p runs on node2, prefers node1 (100): it stays while the dated set gives it stickiness 1000 and
    moves when only the plain set (stickiness 0) applies."""
    sets = date_set("day", expr, "resource-stickiness", "1000") + (
        '<meta_attributes id="night" score="1"><nvpair id="night-st" name="resource-stickiness" value="0"/>'
        '</meta_attributes>')
    return cib(resources=[prim("p", sets)], constraints=['<rsc_location id="l" rsc="p" node="node1" score="100"/>'],
               status=[node_state("node1", stopped("p")), node_state("node2", running("p"))])


def running_world(resources=None, extra: str = "", options_xml: str = "", node_sets: str = "") -> str:
    """p runs on node1 (preferring it by 100), node2 empty; extra goes after the constraints
    (rsc_defaults / op_defaults), options_xml into crm_config, node_sets into node1's definition."""
    x = cib(resources=resources or [prim("p")], constraints=['<rsc_location id="l" rsc="p" node="node1" score="100"/>'],
            status=[node_state("node1", running("p")), node_state("node2", stopped("p"))])
    x = x.replace('validate-with="pacemaker-3.0"', 'validate-with="pacemaker-3.5"')
    x = x.replace("</constraints>", "</constraints>" + extra)
    if options_xml:
        x = x.replace("</crm_config>", options_xml + "</crm_config>")
    if node_sets:
        x = x.replace('<node id="node1" uname="node1"></node>',
                      '<node id="node1" uname="node1">' + node_sets + "</node>", 1)
        assert node_sets in x
    return x


WEEKDAY_HOURS = spec(hours="9-16", weekdays="1-5")
WINDOW = 'operation="in_range" start="2026-12-05 00:00:00Z"><duration id="dur" hours="6"/>'
STOP = ("target-role", "Stopped")

CASES = {
    # resource-stickiness by time of day: a Monday at 10:00 keeps p, 20:00 or a Saturday moves it
    "spec-monday-day": (lambda: sticky_world(WEEKDAY_HOURS), "2026-12-07 10:00:00Z", []),
    "spec-monday-night": (lambda: sticky_world(WEEKDAY_HOURS), "2026-12-07 20:00:00Z",
                          ["Move p (node2 -> node1)"]),
    "spec-saturday": (lambda: sticky_world(WEEKDAY_HOURS), "2026-12-05 10:00:00Z", ["Move p (node2 -> node1)"]),
    "spec-hour-edge": (lambda: sticky_world(WEEKDAY_HOURS), "2026-12-07 16:59:59Z", []),
    "spec-month-days": (lambda: sticky_world(spec(months="12", monthdays="1-10")), "2026-12-05 03:00:00Z", []),
    "spec-other-month": (lambda: sticky_world(spec(months="1-11")), "2026-12-05 03:00:00Z",
                         ["Move p (node2 -> node1)"]),
    "spec-yeardays": (lambda: sticky_world(spec(yeardays="339")), "2026-12-05 03:00:00Z", []),
    "spec-iso-week": (lambda: sticky_world(spec(weekyears="2026", weeks="49")), "2026-12-05 03:00:00Z", []),
    "spec-iso-week-other": (lambda: sticky_world(spec(weeks="50-53")), "2026-12-05 03:00:00Z",
                            ["Move p (node2 -> node1)"]),
    "spec-open-range": (lambda: sticky_world(spec(years="2027-")), "2026-12-05 03:00:00Z",
                        ["Move p (node2 -> node1)"]),
    # the deprecated `moon` field (phase 0 new .. 4 full .. 7), as 2.1.5 evaluates it: 2026-12-05 is phase 7,
    # 2026-12-09 phase 0, 2026-12-24 phase 4
    "spec-moon-7": (lambda: sticky_world(spec(moon="7")), "2026-12-05 03:00:00Z", []),
    "spec-moon-new": (lambda: sticky_world(spec(moon="0")), "2026-12-09 03:00:00Z", []),
    "spec-moon-full-not-new": (lambda: sticky_world(spec(moon="0-3")), "2026-12-24 03:00:00Z",
                               ["Move p (node2 -> node1)"]),
    "spec-moon-and-hours": (lambda: sticky_world(spec(moon="4", hours="0-5")), "2026-12-24 03:00:00Z", []),
    # in_range with a duration in a resource's meta_attributes: stopped inside the window only
    "meta-window-inside": (lambda: running_world([prim("p", date_set("w", WINDOW, *STOP))]), "2026-12-05 03:00:00Z",
                           ["Stop p (node1) due to node availability"]),
    "meta-window-after": (lambda: running_world([prim("p", date_set("w", WINDOW, *STOP))]), "2026-12-05 07:00:00Z",
                          []),
    "meta-window-before": (lambda: running_world([prim("p", date_set("w", WINDOW, *STOP))]), "2026-12-04 23:00:00Z",
                           []),
    # lt / gt in rsc_defaults
    "defaults-lt-true": (lambda: running_world(extra="<rsc_defaults>" + date_set(
        "rd", 'operation="lt" end="2027-01-01">', *STOP) + "</rsc_defaults>"), "2026-12-05 03:00:00Z",
                         ["Stop p (node1) due to node availability"]),
    "defaults-lt-false": (lambda: running_world(extra="<rsc_defaults>" + date_set(
        "rd", 'operation="lt" end="2026-01-01">', *STOP) + "</rsc_defaults>"), "2026-12-05 03:00:00Z", []),
    "defaults-gt": (lambda: running_world(extra="<rsc_defaults>" + date_set(
        "rd", 'operation="gt" start="2026-12-05 02:00:00Z">', *STOP) + "</rsc_defaults>"), "2026-12-05 03:00:00Z",
                    ["Stop p (node1) due to node availability"]),
    # a cluster_property_set with a date rule: stop-all-resources in the window
    "options-window-inside": (lambda: running_world(options_xml=date_set(
        "night", WINDOW, "stop-all-resources", "true", tag="cluster_property_set")), "2026-12-05 03:00:00Z",
                              ["Stop p (node1) due to node availability"]),
    "options-window-after": (lambda: running_world(options_xml=date_set(
        "night", WINDOW, "stop-all-resources", "true", tag="cluster_property_set")), "2026-12-05 09:00:00Z", []),
    # a node attribute set with a date rule: node1 in standby by date
    "node-standby-gt": (lambda: running_world(node_sets=date_set(
        "n1", 'operation="gt" start="2026-12-01">', "standby", "on", tag="instance_attributes")),
                        "2026-12-05 03:00:00Z", ["Move p (node1 -> node2)"]),
    "node-standby-not-yet": (lambda: running_world(node_sets=date_set(
        "n1", 'operation="gt" start="2026-12-06">', "standby", "on", tag="instance_attributes")),
                             "2026-12-05 03:00:00Z", []),
}


def summary_at(xml: str, when: str) -> List[str]:
    t = schedule(parse_cib(xml, "test.xml"), parse_datetime(when))
    out = []
    for line in t.summary:
        line = re.sub(r"\s+", " ", line.strip().lstrip("*").strip())
        out.append(line.replace("( ", "(").replace(" )", ")"))
    return sorted(out)


def crm_simulate_at(xml: str, when: str, tmp: str) -> List[str]:
    return crm_simulate_summary(xml, tmp, "-t", when)


@pytest.mark.parametrize("name", sorted(CASES))
def test_date_rules_in_sets(name):
    make, when, expected = CASES[name]
    assert summary_at(make(), when) == sorted(expected)


@needs_crm_simulate
@pytest.mark.parametrize("name", sorted(CASES))
def test_against_crm_simulate(name, tmp_path):
    make, when, _ = CASES[name]
    assert summary_at(make(), when) == crm_simulate_at(make(), when, str(tmp_path))


@pytest.mark.parametrize("expr,words", [
    ('operation="date_spec"><date_spec id="s" hours="nine"/>', "date_spec hours 'nine'"),
    ('operation="in_range" start="2026-01-01"><duration id="u" hours="x"/>', "duration hours 'x'"),
    ('operation="date_spec">', "needs a <date_spec>"),
])
def test_bad_date_expressions_in_sets_are_refused(expr, words):
    xml = running_world([prim("p", date_set("w", expr, *STOP))])
    with pytest.raises(ConfigError) as e:
        parse_cib(xml, "cib.xml")
    assert words in e.value.message


@pytest.mark.parametrize("when,stopped_now", [("2026-12-05 03:00:00Z", True), ("2026-12-05 07:00:00Z", False)])
def test_simulate_uses_the_cibs_execution_date(tmp_path, capsys, when, stopped_now):
    """Without --now or -t, hactl simulate runs at the <cib execution-date> a saved input carries (as
    crm_simulate); -t still wins over it."""
    from hadaemon.cli.hactl import main
    xml = running_world([prim("p", date_set("w", WINDOW, *STOP))])
    xml = xml.replace("<cib ", f'<cib execution-date="{parse_datetime(when)}" ', 1)
    path = tmp_path / "cib.xml"
    path.write_text(xml)
    assert main(["simulate", str(path)]) == 0
    assert ("Stop       p" in capsys.readouterr().out) == stopped_now
    other = "2026-12-05 07:00:00Z" if stopped_now else "2026-12-05 03:00:00Z"
    assert main(["simulate", str(path), "-t", other]) == 0
    assert ("Stop       p" in capsys.readouterr().out) != stopped_now


@pytest.mark.parametrize("when,value", [("2029-06-01 00:00:00Z", "old"), ("2031-06-01 00:00:00Z", "new")])
def test_crm_plans_ops_with_the_parameters_the_scheduler_digested(when, value):
    """ha-crmd's plan_op evaluates rules with dates at the time the transition was scheduled at: the same
    parameters and digest as the scheduler (with no time every date expression held, so the dated set
    always won and the scheduler saw a changed definition at every transition)."""
    from hadaemon.core.crm.ops import plan_op
    from hadaemon.core.policy.digests import action_digest

    sets = (date_set("new", 'operation="gt" start="2030-01-01">', "fake", "new", tag="instance_attributes")
            + '<instance_attributes id="old" score="1"><nvpair id="old-f" name="fake" value="old"/>'
              '</instance_attributes>')
    model = parse_cib(cib(resources=[prim("p", sets)], status=[node_state("node1"), node_state("node2")]), "t.xml")
    now = parse_datetime(when)
    t = schedule(model, now)
    start = next(a for a in t.graph.actions if a.task == "start" and a.rsc == "p")
    plan = plan_op(model, "p", "start", 0, start.node, now=now)
    assert plan.params["fake"] == value
    assert plan.digest == action_digest(t._ws, start.rsc, start.node, "start", 0)
