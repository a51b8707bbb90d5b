"""The transition graph: ordering edges respected, deterministic XML, and what a CRM needs per action."""
from __future__ import annotations

from hadaemon.core.cib import parse_cib
from hadaemon.core.policy.graph import Action, TransitionGraph
from hadaemon.core.policy import schedule
from tests.unit.test_policy_cases import S as CASES
from tests.unit.test_policy_scheduler import s_group_location, s_tie_break


def test_topo_order_respects_edges_and_breaks_ties_by_id():
    acts = [Action(i, f"r{i}_start_0", "start", f"r{i}", "n1") for i in range(4)]
    g = TransitionGraph(acts, [(3, 0), (2, 1)])
    order = [a.id for a in g.topo_order()]
    assert order.index(3) < order.index(0) and order.index(2) < order.index(1)
    assert order == [2, 1, 3, 0]


def test_cycle_keeps_every_action():
    acts = [Action(i, f"r{i}_start_0", "start", f"r{i}", "n1") for i in range(3)]
    g = TransitionGraph(acts, [(0, 1), (1, 0)])
    assert sorted(a.id for a in g.topo_order()) == [0, 1, 2]


def test_group_members_start_in_order_after_their_probes():
    t = schedule(parse_cib(s_group_location(), "t.xml"), 0)
    order = [(a.rsc, a.task, a.node) for a in t.graph.topo_order()]
    starts = [o for o in order if o[1] == "start" and o[0] != "grp"]
    assert starts == [("a", "start", "node2"), ("b", "start", "node2"), ("c", "start", "node2")]
    stops = [o for o in order if o[1] == "stop" and o[0] != "grp"]
    assert stops == [("c", "stop", "node1"), ("b", "stop", "node1"), ("a", "stop", "node1")]
    assert order.index(("c", "stop", "node1")) < order.index(("a", "start", "node2"))


def test_probe_and_migration_details():
    t = schedule(parse_cib(s_tie_break(), "t.xml"), 0)
    probes = [a for a in t.graph.actions if a.task == "monitor" and a.interval_ms == 0]
    assert len(probes) == 6 and all(a.target_rc == 7 for a in probes)
    t = schedule(parse_cib(CASES["migrate"](), "t.xml"), 0)
    tasks = {(a.task, a.node): a for a in t.graph.actions}
    assert {"migrate_to", "migrate_from"} <= {task for task, _ in tasks}
    mig = tasks[("migrate_to", "node1")]
    assert (mig.migrate_source, mig.migrate_target) == ("node1", "node2")
    assert tasks[("start", "node2")].pseudo
    xml = t.graph.to_xml()
    assert 'operation="migrate_from"' in xml and xml == t.graph.to_xml()
