"""The transition executor: readiness, pseudo actions, failures and aborts, timeouts; and, with the
real scheduler and status updates, convergence from every partially applied prefix of a transition."""
import copy

import pytest

from hadaemon.core.crm import transition as T
from tests.unit.crm_world import World, cib_with, dummy


def _spec(aid, task="start", node="n1", pseudo=False, kind="rsc_op", timeout=10.0):
    return T.ActionSpec(aid, f"r_{task}_0", task, "r", node, 0, pseudo, kind, 0, timeout)


def _executed(effects):
    return [e.action.id for e in effects if isinstance(e, T.Execute)]


def test_actions_start_when_their_inputs_are_done_and_pseudo_actions_complete_by_themselves():
    run = T.new_run(1, [_spec(0, "stop"), _spec(1, "stopped", pseudo=True, kind="pseudo_event"),
                        _spec(2, "start", "n2"), _spec(3, "monitor", "n2")],
                    [(0, 1), (1, 2), (2, 3)])
    run, eff = T.step(run, T.Started(), 0.0)
    assert _executed(eff) == [0]
    run, eff = T.step(run, T.ActionDone(0, True), 1.0)
    assert _executed(eff) == [2] and run.states[1] == T.DONE
    run, eff = T.step(run, T.ActionDone(2, True), 2.0)
    assert _executed(eff) == [3]
    run, eff = T.step(run, T.ActionDone(3, True), 3.0)
    assert eff == [T.Completed(1, "complete", "")] and run.completed


def test_independent_actions_run_in_parallel():
    run = T.new_run(2, [_spec(0), _spec(1, node="n2"), _spec(2, node="n3")], [(0, 2)])
    run, eff = T.step(run, T.Started(), 0.0)
    assert _executed(eff) == [0, 1]
    assert run.in_flight == (0, 1)


def test_a_failed_action_stops_new_actions_and_ends_when_nothing_is_in_flight():
    run = T.new_run(3, [_spec(0), _spec(1, node="n2"), _spec(2, node="n3")], [(0, 2)])
    run, _ = T.step(run, T.Started(), 0.0)
    run, eff = T.step(run, T.ActionDone(0, False), 1.0)
    assert eff == [] and not run.completed          # action 1 still in flight; 2 never starts
    run, eff = T.step(run, T.ActionDone(1, True), 2.0)
    assert eff == [T.Completed(3, "failed", "action failed")]
    assert run.states == {0: T.FAILED, 1: T.DONE, 2: T.SKIPPED}


def test_abort_waits_for_in_flight_actions():
    run = T.new_run(4, [_spec(0), _spec(1)], [(0, 1)])
    run, _ = T.step(run, T.Started(), 0.0)
    run, eff = T.step(run, T.Abort("node lost"), 0.5)
    assert eff == []
    run, eff = T.step(run, T.ActionDone(0, True), 1.0)
    assert eff == [T.Completed(4, "aborted", "node lost")]
    assert run.states[1] == T.SKIPPED
    # late results and further events change nothing
    assert T.step(run, T.ActionDone(1, True), 2.0) == (run, [])


def test_a_result_that_is_news_aborts_the_transition_instead_of_failing_it():
    """A probe finding the resource running (ActionDone with an abort reason): the action is done, no
    new action starts, and the transition ends aborted with that reason (Pacemaker recomputes)."""
    run = T.new_run(7, [_spec(0, "monitor"), _spec(1, "monitor", "n2"), _spec(2, "start", "n2")],
                    [(0, 2), (1, 2)])
    run, _ = T.step(run, T.Started(), 0.0)
    run, eff = T.step(run, T.ActionDone(0, True, abort="probe of r on n1: rc=0 (expected 7)"), 1.0)
    assert eff == [] and run.states[0] == T.DONE and not run.failed
    run, eff = T.step(run, T.ActionDone(1, True), 2.0)
    assert eff == [T.Completed(7, "aborted", "probe of r on n1: rc=0 (expected 7)")]
    assert run.states == {0: T.DONE, 1: T.DONE, 2: T.SKIPPED}


def test_an_action_without_result_times_out_after_its_timeout_plus_the_margin():
    run = T.new_run(5, [_spec(0, timeout=10.0), _spec(1)], [(0, 1)], margin=5.0)
    run, _ = T.step(run, T.Started(), 100.0)
    assert T.next_deadline(run) == 115.0
    run, eff = T.step(run, T.Tick(), 114.9)
    assert eff == []
    run, eff = T.step(run, T.Tick(), 115.0)
    assert eff[0] == T.TimedOut(_spec(0, timeout=10.0))
    assert eff[1] == T.Completed(5, "failed", "action failed")
    run2, eff2 = T.step(run, T.ActionDone(0, True), 116.0)   # the result arrives too late
    assert eff2 == [] and run2.states[0] == T.FAILED


def test_empty_graph_completes_at_once():
    run, eff = T.step(T.new_run(6, [], []), T.Started(), 0.0)
    assert eff == [T.Completed(6, "complete", "")]


def _cluster():
    cib = cib_with(dummy("solo") + '<group id="g">' + dummy("a") + dummy("b") + "</group>",
                   '<rsc_location id="l-solo" rsc="solo" node="node1" score="100"/>'
                   '<rsc_location id="l-g" rsc="g" node="node2" score="100"/>')
    return cib


def test_a_fresh_cluster_converges_to_the_preferred_placement_with_one_instance_each():
    w = World(_cluster())
    n = w.converge()
    assert n >= 1
    assert w.where() == {"a": ["node2"], "b": ["node2"], "solo": ["node1"]}
    assert w.max_active == 1
    # once stable, nothing more to do and no restart
    before = list(w.executed)
    assert w.converge() == 0 and w.executed == before


def test_every_partially_applied_prefix_of_a_transition_converges_to_the_same_placement():
    base = World(copy.deepcopy(_cluster()))
    base.converge()
    want = base.where()
    _m, first = World(copy.deepcopy(_cluster())).start_run()
    total = len([a for a in first.actions.values() if not a.immediate])
    assert total >= 6
    for k in range(total + 1):
        w = World(copy.deepcopy(_cluster()))
        w.run_transition(limit=k)       # the DC dies after k actions; a new DC starts over
        w.converge()
        assert w.where() == want, k
        assert w.max_active == 1, k
        starts = [e for e in w.executed if e[0] == "start"]
        assert len(starts) == 3, (k, starts)  # nothing started twice


def test_a_failed_start_moves_the_resource_and_records_the_fail_count():
    cib = cib_with(dummy("solo"), '<rsc_location id="l" rsc="solo" node="node1" score="100"/>')
    w = World(cib)
    w.fail[("solo", "start", "node1")] = 1
    w.converge()
    assert w.where() == {"solo": ["node2"]}
    text = __import__("hadaemon.core.crm.cibdoc", fromlist=["x"]).to_text(w.cib)
    assert 'name="fail-count-solo#start_0" value="INFINITY"' in text
    assert 'id="solo_last_failure_0"' in text


def test_probes_finding_a_running_resource_abort_and_recompute_without_a_failure():
    """The crmd restarted on node1 and lost its history while solo kept running: the probe finds it
    (rc 0, expected 7). The transition is aborted with that news, not failed; no fail-count; the next
    one only adds the monitor (no start elsewhere, no restart)."""
    from hadaemon.core.crm import cibdoc

    cib = cib_with(dummy("solo"))
    w = World(cib, running={"solo": {"node1"}})
    first = w.run_transition()
    assert first.result == "aborted" and not first.failed
    assert w.ends == [("aborted", "probe of solo on node1: rc=0 (expected 7)")]
    assert sorted(w.executed) == [("monitor", "solo", "node1", 0), ("monitor", "solo", "node2", 0)]
    assert w.converge() == 1                                   # one more transition: the monitor
    assert w.ends[1:] == [("complete", "")]
    assert w.executed[2:] == [("monitor", "solo", "node1", 10000)] and w.where() == {"solo": ["node1"]}
    text = cibdoc.to_text(w.cib)
    assert "fail-count-" not in text and "_last_failure_0" not in text
    assert w.max_active == 1


def test_a_probe_that_fails_still_fails_the_transition():
    cib = cib_with(dummy("solo"))
    w = World(cib)
    w.fail[("solo", "monitor", "node1")] = 5      # OCF_ERR_INSTALLED: a real failure
    run = w.run_transition()
    assert run.result == "failed" and w.ends[-1] == ("failed", "action failed")


def test_a_failed_monitor_restarts_the_resource_in_place():
    cib = cib_with(dummy("solo"), '<rsc_location id="l" rsc="solo" node="node1" score="100"/>')
    w = World(cib)
    w.converge()
    assert w.where() == {"solo": ["node1"]}
    # the recurring monitor finds it stopped: the LRM reports the change
    w.running["solo"].discard("node1")
    from hadaemon.core.crm import status as S
    rec = S.OpRecord("solo", "monitor", 10000, 7, 0, next(w.calls), "", 0, last_run=1_700_000_000)
    assert S.record_op(w.cib, "node1", rec, 1_700_000_000)
    count = len(w.executed)
    w.converge()
    tail = [(t, n) for t, _r, n, _i in w.executed[count:]]
    assert ("stop", "node1") in tail and ("start", "node1") in tail
    assert w.where() == {"solo": ["node1"]}


@pytest.mark.parametrize("node_lost", ["node1"])
def test_a_lost_node_without_fencing_has_its_resources_started_elsewhere(node_lost):
    from hadaemon.core.crm import status as S

    w = World(_cluster())
    w.converge()
    S.set_node_state(w.cib, node_lost, in_ccm="false", crmd="offline", join="down")
    w.running["solo"].discard(node_lost)   # the node is gone (and its resources with it)
    w.converge()
    assert w.where() == {"a": ["node2"], "b": ["node2"], "solo": ["node2"]}


def test_a_resource_found_running_by_a_probe_is_never_active_twice():
    # a restarted crmd forgot its history: the resource still runs on node2, node1 is preferred
    cib = cib_with(dummy("d"), '<rsc_location id="l" rsc="d" node="node1" score="100"/>')
    w = World(cib, running={"d": {"node2"}})
    model, run = w.start_run()
    start = [a for a in run.actions.values() if a.task == "start"][0]
    probes = [a.id for a in run.actions.values() if a.task == "monitor" and a.interval_ms == 0]
    assert set(probes) <= set(run.inputs[start.id])    # the start waits for every probe
    w.converge()
    assert w.where() == {"d": ["node1"]}
    assert w.max_active == 1
    tasks = [(t, n) for t, _r, n, i in w.executed if i == 0 and t != "monitor"]
    assert tasks.index(("stop", "node2")) < tasks.index(("start", "node1"))
