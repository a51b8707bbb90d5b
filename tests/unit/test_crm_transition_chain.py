"""Chains of consecutive actions on one node (transition.py, "Chains"): which actions form a chain,
deadlines, a failure or an abort inside a chain, and convergence when nodes run chains themselves.
The real scheduler, executor and status updates (tests/unit/crm_world.py); no mocks."""
from __future__ import annotations

from typing import List

from hadaemon.core.crm import transition as T

from tests.unit.crm_world import World, cib_with, dummy

GROUP = '<group id="g">' + dummy("vip") + dummy("store") + dummy("httpd") + "</group>"


def _on(node: str) -> str:
    return f'<rsc_location id="l-g" rsc="g" node="{node}" score="100"/>'


def _world_on_node1() -> World:
    w = World(cib_with(GROUP, _on("node1")))
    w.converge()
    assert w.where() == {"httpd": ["node1"], "store": ["node1"], "vip": ["node1"]}
    w.cib.find(".//rsc_location").set("node", "node2")
    return w


def _start(w: World):
    model, tr = w.schedule()
    w.tid += 1
    run = T.from_graph(w.tid, tr.graph, {a.id: 20.0 for a in tr.graph.actions}, chain=True)
    run, effects = T.step(run, T.Started(), 0.0)
    return model, run, effects


def _names(run: T.Run, ids) -> List[str]:
    return [f"{run.actions[i].task} {run.actions[i].rsc} {run.actions[i].node}" for i in ids]


def run_chained(w: World, limit: int | None = None, abort_after: int | None = None):
    """Run a transition as the nodes do: a chain's actions in order, the rest reported not run at the
    first unexpected result; limit: stop after that many actions (a crash); abort_after: an Abort
    then. Returns the run and every chain sent."""
    model, run, effects = _start(w)
    chains = []
    queue = list(effects)
    done = 0
    released = set()   # leaders' last actions that succeeded (what a leading node tells its followers)
    stop_asked = set()
    while queue:
        e = queue.pop(0)
        if isinstance(e, T.Execute):
            steps = [e]
        elif isinstance(e, T.ExecuteChain):
            steps = list(e.steps)
            chains.append(tuple(s.action.id for s in steps))
            if e.after is not None and e.after not in released:
                # a follower whose leader did not succeed: it never starts; the DC asked it to stop
                ids = tuple(s.action.id for s in steps)
                assert set(ids) <= stop_asked or run.completed or limit is not None
                run, more = T.step(run, T.ChainCancelled(ids), 0.0)
                queue += more
                continue
        else:
            if isinstance(e, T.StopChain):
                stop_asked.update(e.action_ids)
            continue
        for i, s in enumerate(steps):
            if limit is not None and done >= limit:
                return run, chains
            if abort_after is not None and done == abort_after:
                run, more = T.step(run, T.Abort("cib changed"), 0.0)
                queue += more
                stop = {a for m in more if isinstance(m, T.StopChain) for a in m.action_ids}
                stop_asked.update(stop)
                if s.action.id in stop:
                    run, more = T.step(run, T.ChainCancelled(tuple(x.action.id for x in steps[i:])), 0.0)
                    queue += more
                    break
            ok = w.execute(model, run, s.action)
            done += 1
            if ok:
                released.add(s.action.id)
            run, more = T.step(run, T.ActionDone(s.action.id, ok, abort=w.news), 0.0)
            queue += more
            if not ok and i + 1 < len(steps):
                run, more = T.step(run, T.ChainCancelled(tuple(x.action.id for x in steps[i + 1:])), 0.0)
                queue += more
                break
    return run, chains


def test_a_group_move_is_one_chain_per_node_in_group_order():
    w = _world_on_node1()
    run, chains = run_chained(w)
    assert run.completed and run.result == "complete"
    assert [_names(run, c) for c in chains] == [
        ["stop httpd node1", "stop store node1", "stop vip node1"],
        ["start vip node2", "start store node2", "start httpd node2"]]
    assert w.where() == {"httpd": ["node2"], "store": ["node2"], "vip": ["node2"]}
    assert w.max_active == 1
    # the recurring monitors are not chained: the DC starts them when their start is done
    monitors = [a for a in run.actions.values() if a.task == "monitor" and a.interval_ms]
    assert monitors and not any(a.id in c for a in monitors for c in chains)


def test_without_chain_every_action_is_its_own_execute():
    w = _world_on_node1()
    model, tr = w.schedule()
    run = T.from_graph(1, tr.graph, {a.id: 20.0 for a in tr.graph.actions})
    _run, effects = T.step(run, T.Started(), 0.0)
    assert effects and all(isinstance(e, T.Execute) for e in effects)


def test_each_chained_action_keeps_its_timeout_deadlines_add_up():
    w = _world_on_node1()
    model, tr = w.schedule()
    timeouts = {a.id: (7.0 if a.rsc == "store" else 20.0) for a in tr.graph.actions}
    run = T.from_graph(1, tr.graph, timeouts, margin=5.0, chain=True)
    run, effects = T.step(run, T.Started(), 100.0)
    (chain, follower) = [e for e in effects if isinstance(e, T.ExecuteChain)]
    assert [s.deadline for s in chain.steps] == [100.0 + 20 + 5, 100.0 + 27 + 5, 100.0 + 47 + 5]
    assert [s.action.timeout_s for s in chain.steps] == [20.0, 7.0, 20.0]
    # the follower (the starts on node2) waits for the leader: its deadlines add the leader's timeouts
    assert follower.after == chain.steps[-1].action.id and chain.handoff == ("node2",)
    assert [s.deadline for s in follower.steps] == [100.0 + 47 + 20 + 5, 100.0 + 47 + 27 + 5,
                                                    100.0 + 47 + 47 + 5]
    # no result for the first: it times out at its own deadline, the rest is asked to stop, the
    # follower all of its actions
    run, effects = T.step(run, T.Tick(), 125.0)
    assert [type(e) for e in effects] == [T.TimedOut, T.StopChain, T.StopChain]
    stops = {e.node: e.action_ids for e in effects[1:]}
    assert stops == {"node1": tuple(s.action.id for s in chain.steps[1:]),
                     "node2": tuple(s.action.id for s in follower.steps)}
    run, effects = T.step(run, T.ChainCancelled(stops["node1"]), 125.5)
    assert not run.completed    # the follower's actions still count as running
    run, effects = T.step(run, T.ChainCancelled(tuple(s.action.id for s in follower.steps)), 125.6)
    assert run.completed and run.result == "failed"
    assert [run.states[s.action.id] for s in chain.steps] == [T.FAILED, T.SKIPPED, T.SKIPPED]
    assert {run.states[s.action.id] for s in follower.steps} == {T.SKIPPED}


def test_a_failure_in_a_chain_stops_the_rest_and_the_next_transition_recovers():
    w = _world_on_node1()
    w.fail[("store", "start", "node2")] = 1
    run, chains = run_chained(w)
    assert run.result == "failed"
    states = {tuple(_names(run, [a]))[0]: run.states[a] for c in chains for a in c}
    assert states["start vip node2"] == T.DONE
    assert states["start store node2"] == T.FAILED
    assert states["start httpd node2"] == T.SKIPPED
    assert "start httpd node2" not in [f"{t} {r} {n}" for t, r, n, _i in w.executed]
    w.converge()
    assert w.max_active == 1
    assert len({n for v in w.where().values() for n in v}) == 1   # the group together, on one node


def test_an_abort_stops_the_chains_and_nothing_new_starts():
    w = _world_on_node1()
    run, chains = run_chained(w, abort_after=1)    # after the first stop
    assert run.completed and run.result == "aborted"
    ran = [f"{t} {r} {n}" for t, r, n, _i in w.executed]
    assert ran[-1] == "stop httpd node1"
    assert w.where() == {"store": ["node1"], "vip": ["node1"]}
    w.converge()
    assert w.where() == {"httpd": ["node2"], "store": ["node2"], "vip": ["node2"]}
    assert w.max_active == 1


def test_a_cancelled_chain_member_starts_again_when_the_transition_goes_on():
    """A node stops a chain at a result the DC still takes for a success: the DC starts the rest."""
    w = _world_on_node1()
    model, run, effects = _start(w)
    (chain,) = [e for e in effects if isinstance(e, T.ExecuteChain) and e.after is None]
    first, rest = chain.steps[0].action, tuple(s.action.id for s in chain.steps[1:])
    run, more = T.step(run, T.ActionDone(first.id, w.execute(model, run, first)), 0.0)
    assert not more
    run, more = T.step(run, T.ChainCancelled(rest), 0.0)
    (again,) = more
    assert isinstance(again, T.ExecuteChain) and tuple(s.action.id for s in again.steps) == rest
    # the follower still waits for the last one: the node sent it again still tells node2
    assert again.handoff == ("node2",) and run.handoffs[rest[-1]] == ("node2",)


def test_an_action_that_needs_only_an_earlier_member_is_not_chained():
    a = T.ActionSpec(1, "a_start_0", "start", "a", "n1")
    b = T.ActionSpec(2, "b_start_0", "start", "b", "n1")
    c = T.ActionSpec(3, "c_start_0", "start", "c", "n1")
    d = T.ActionSpec(4, "d_start_0", "start", "d", "n2")
    p = T.ActionSpec(5, "probe", "monitor", "e", "n1")
    run = T.new_run(1, [a, b, c, d, p], [(1, 2), (1, 3), (1, 4), (2, 5)], chain=True)
    states = dict(run.states)
    assert T.chain_from(run, states, 1) == (1, 2)     # 3 needs only 1: not behind 2; 4: other node
    run, effects = T.step(run, T.Started(), 0.0)
    assert [tuple(s.action.id for s in e.steps) for e in effects] == [(1, 2)]
    run, effects = T.step(run, T.ActionDone(1, True), 0.0)
    assert sorted(e.action.id for e in effects) == [3, 4]
    run, effects = T.step(run, T.ActionDone(2, True), 0.0)
    assert [e.action.id for e in effects] == [5]       # probes are never chained


def test_every_prefix_of_a_chained_move_converges_without_two_active():
    w0 = _world_on_node1()
    _run, chains = run_chained(_world_on_node1())
    total = sum(len(c) for c in chains) + 6
    for limit in range(total + 1):
        w = _world_on_node1()
        assert w0.where() == w.where()
        run_chained(w, limit=limit)
        for _ in range(10):
            _model, tr = w.schedule()
            if not tr.graph.actions:
                break
            run_chained(w)
        else:
            raise AssertionError(f"no stable state after a crash at {limit}")
        assert w.where() == {"httpd": ["node2"], "store": ["node2"], "vip": ["node2"]}, limit
        assert w.max_active == 1, limit
