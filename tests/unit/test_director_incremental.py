"""The event path's pure parts: table_changes equals the full diff restricted to what changed (property
test), apply_ops is linear, up counts stay right, and flap damping holds a flapping real down."""
from hypothesis import given, settings
from hypothesis import strategies as st

from hadaemon.core.director.checks import make_plan
from hadaemon.core.director.config import parse_config
from hadaemon.core.director.debounce import (
    Damping, HealthState, RealDown, RealHealth, RealHeld, RealUp, Result, apply_maintenance, apply_results,
    initial_state,
)
from hadaemon.core.director.lvs_table import AddDest, Destination, Service, VirtualService, apply_ops, diff
from hadaemon.core.director.table import dest_key, table_changes, virtual_service, wanted_table

CONFIG = """\
checkinterval=1
readdquiescent={readd}
virtual=10.0.0.1:80
\treal=10.0.1.1:80 gate
\treal=10.0.1.2:80 gate 3
\treal=10.0.1.3 gate 2
\treal=10.0.1.3:80 gate 5
\tfallback=127.0.0.1:80 gate
\tquiescent={q1}
virtual=10.0.0.1:443
\treal=10.0.1.1:443 masq
\treal=10.0.1.4:443 masq 7
\tquiescent={q2}
virtual=10.0.0.2:80
\treal=10.0.1.5:80 gate
\tfallback=10.0.1.5:80 gate
"""


def config(readd, q1, q2):
    return parse_config(CONFIG.format(readd=readd, q1=q1, q2=q2), "x.cf")


health_st = st.builds(RealHealth, up=st.booleans(), last_time=st.sampled_from([None, 1.0]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["yes", "no"]), st.sampled_from(["yes", "no"]), st.sampled_from(["yes", "no"]),
       st.data())
def test_table_changes_equal_the_full_diff(readd, q1, q2, data):
    c = config(readd, q1, q2)
    plan = make_plan(c)
    pairs = sorted(plan.targets)
    before = HealthState({p: data.draw(health_st) for p in pairs})
    startup = data.draw(st.booleans())
    current = wanted_table(c, before, None if startup else {}, plan)
    changed = data.draw(st.lists(st.sampled_from(pairs), unique=True))
    after = before.updated({p: data.draw(health_st) for p in changed})
    overrides = {}
    overridden = data.draw(st.lists(st.sampled_from(pairs), unique=True))
    for p in overridden:
        v = plan.virtuals[p[0]]
        overrides[(virtual_service(v).key, dest_key(v, plan.targets[p].real))] = data.draw(st.integers(0, 9))
    ops = table_changes(c, after, current, sorted(set(changed) | set(overridden)), plan, overrides)
    expected = wanted_table(c, after, current, plan, overrides)
    assert apply_ops(current, ops) == expected
    # nothing but what the full diff would do
    full = diff(current, expected)
    assert sorted(map(repr, ops)) == sorted(map(repr, full))


def test_table_changes_touch_only_the_changed_reals():
    reals = "".join(f"\treal=10.1.{i // 250}.{i % 250 + 1}:80 gate\n" for i in range(2000))
    c = parse_config(f"quiescent=yes\nvirtual=10.0.0.1:80\n{reals}\tfallback=127.0.0.1:80 gate\n", "x.cf")
    plan = make_plan(c)
    state = HealthState({p: RealHealth(up=True, last_time=1.0) for p in plan.targets})
    current = wanted_table(c, state, {}, plan)
    pair = sorted(plan.targets)[7]
    after = state.updated({pair: RealHealth(up=False, last_time=2.0)})
    ops = table_changes(c, after, current, [pair], plan)
    assert len(ops) == 1 and ops[0].dest.weight == 0 and ops[0].dest.key == pair[1]
    assert after.up_counts == {"tcp:10.0.0.1:80": 1999} and state.up_counts == {"tcp:10.0.0.1:80": 2000}


def test_apply_ops_copies_a_service_once_per_batch():
    svc = VirtualService("tcp", "10.0.0.1", 80)
    ops = [AddDest(svc, Destination(f"10.1.{i // 250}.{i % 250 + 1}", 80)) for i in range(20000)]
    table = {svc.key: Service(svc, {})}
    out = apply_ops(table, ops)                 # quadratic before: 20,000 copies of a growing dict
    assert len(out[svc.key].dests) == 20000 and table[svc.key].dests == {}


def run(plan, state, pair, oks, t0=0.0, step=1.0, damping=None):
    events = []
    t = t0
    for ok in oks:
        state, ev = apply_results(plan, state, [Result(pair, "negotiate", ok, "200 OK" if ok else "timeout")], t,
                                  damping)
        events += ev
        t += step
    return state, events, t


def test_flap_damping_holds_a_flapping_real_down_until_stable():
    c = parse_config("quiescent=yes\nvirtual=10.0.0.1:80\n\treal=10.0.1.1:80 gate\n\treal=10.0.1.2:80 gate\n",
                     "x.cf")
    plan = make_plan(c)
    pair = ("tcp:10.0.0.1:80", "10.0.1.1:80")
    damping = Damping(count=4, window=30.0)
    state = initial_state(c, plan=plan)
    # up, down, up, down (4 changes: allowed), then the 5th change within 30 s: held down
    state, events, t = run(plan, state, pair, [True, False, True, False, True], damping=damping)
    assert [type(e) for e in events] == [RealUp, RealDown, RealUp, RealDown, RealHeld]
    assert not state.get(pair).up and state.get(pair).held is not None
    assert wanted_table(c, state, None, plan)["tcp:10.0.0.1:80"].dests["10.0.1.1:80"].weight == 0
    # successes for less than the window: still held; a failure restarts the clock
    state, events, t = run(plan, state, pair, [True] * 20 + [False] + [True] * 29, t0=t, damping=damping)
    assert events == [] and not state.get(pair).up
    # 30 s of successes in a row after the last failure: released, up again
    state, events, t = run(plan, state, pair, [True] * 2, t0=t, damping=damping)
    assert [type(e) for e in events] == [RealUp] and state.get(pair).up and state.get(pair).held is None
    assert state.up_counts == {"tcp:10.0.0.1:80": 1}


def test_without_damping_every_change_counts_and_slow_changes_are_not_damped():
    c = parse_config("virtual=10.0.0.1:80\n\treal=10.0.1.1:80 gate\n", "x.cf")
    plan = make_plan(c)
    pair = ("tcp:10.0.0.1:80", "10.0.1.1:80")
    _, events, _ = run(plan, initial_state(c, plan=plan), pair, [True, False] * 10)
    assert len(events) == 20 and not any(isinstance(e, RealHeld) for e in events)
    # with damping 4 changes / 30 s, changes 10 s apart never exceed it
    _, events, _ = run(plan, initial_state(c, plan=plan), pair, [True, False] * 10, step=10.0,
                       damping=Damping(4, 30.0))
    assert len(events) == 20 and not any(isinstance(e, RealHeld) for e in events)


def test_maintenance_changes_only_keep_counts():
    c = parse_config("virtual=10.0.0.1:80\n\treal=10.0.1.1:80 gate\n\treal=10.0.1.2:80 gate\n", "x.cf")
    plan = make_plan(c)
    state = initial_state(c, {p: True for p in plan.targets}, plan)
    assert state.up_counts == {"tcp:10.0.0.1:80": 2}
    p1 = ("tcp:10.0.0.1:80", "10.0.1.1:80")
    state, events = apply_maintenance(plan, state, {p1: True}, 5.0)
    assert [type(e) for e in events] == [RealDown] and state.up_counts == {"tcp:10.0.0.1:80": 1}
    state, events = apply_maintenance(plan, state, {}, 6.0)        # nothing changed: nothing to do
    assert events == [] and state.get(p1).maintenance


def test_plan_and_table_entries_made_in_steps_equal_the_whole():
    """A reload derives the plan and the table entries a chunk of reals per loop turn: the same result as at once
    (order of targets and groups, duplicates first-wins, fallbacks, every chunk size)."""
    from hadaemon.core.director.checks import plan_steps
    from hadaemon.core.director.table import prepare_plan, prepare_steps

    text = CONFIG.format(readd="yes", q1="yes", q2="no").replace(
        "\treal=10.0.1.5:80 gate\n", "".join(f"\treal=10.0.2.{i}:80 gate {i % 4}\n" for i in range(1, 40))
        + "\treal=10.0.2.7:80 gate 9\n\treal=10.0.1.5:80 gate\n")
    cfg = parse_config(text, "x.cf")
    whole = make_plan(cfg)
    prepare_plan(whole)
    for chunk in (1, 2, 7, 500):
        steps, n = plan_steps(cfg, chunk), 0
        while True:
            try:
                next(steps)
                n += 1
            except StopIteration as done:
                plan = done.value
                break
        assert n >= sum(-(-len(v.reals) // chunk) for v in cfg.virtuals) - 1
        assert list(plan.targets) == list(whole.targets) and plan.targets == whole.targets
        assert plan.groups == whole.groups and list(plan.groups) == list(whole.groups)
        assert plan.identity == whole.identity
        for _ in prepare_steps(plan, chunk):
            assert all(("rows", v.key) not in plan.memo or plan.memo[("rows", v.key)].rows
                       for v in cfg.virtuals)
        for v in cfg.virtuals:
            a, b = plan.memo[("rows", v.key)], whole.memo[("rows", v.key)]
            assert (a.svc, a.rows, a.by_pair, a.by_dest, a.fallback) == (b.svc, b.rows, b.by_pair, b.by_dest,
                                                                         b.fallback)
        health = initial_state(cfg, {}, plan)
        assert wanted_table(cfg, health, None, plan) == wanted_table(cfg, health, None, whole)
