"""Membership core: event timelines in, node/link states, epochs and effects out (no I/O, no mocks)."""
from hadaemon.core.heartbeat.membership import (
    DEAD, INIT, UP, WARN, Heartbeat, LinkDown, LinkStatusChanged, LinkUp, MembershipChanged,
    MAX_GENERATION_JUMP, MAX_PEERS, NodeRestarted, NodeStateChanged, Reconfigure, Rejected, Start, Tick, Timing,
    UnknownNode, Verified, members, new_membership, next_deadline, step, summary,
)

T = Timing(keepalive=1.0, warntime=5.0, deadtime=10.0, initdead=20.0)
NODES = ("a", "b", "c")


def HB(node, link, gen, seq=0, echo=7):
    """A heartbeat that echoes the local node's generation (7): sent after the local node started."""
    return Heartbeat(node, link, gen, seq, echo)


def run(timeline, state=None, links=("eth0",), timing=T):
    """Apply [(time, event), ...]; return final state and [(time, effect), ...]."""
    state = state or new_membership("a", 7, timing, NODES, links)
    seen = []
    for now, ev in timeline:
        state, effects = step(state, ev, now)
        seen.extend((now, e) for e in effects)
    return state, seen


def of(seen, kind):
    return [(t, e) for t, e in seen if isinstance(e, kind)]


def beats(node, start, stop, every=1.0, link="eth0", gen=1):
    out, t, seq = [], start, 0
    while t <= stop + 1e-9:
        out.append((t, HB(node, link, gen, seq)))
        t, seq = round(t + every, 6), seq + 1
    return out


def merge(*timelines):
    return sorted((x for tl in timelines for x in tl), key=lambda p: p[0])


def test_before_start_only_local_node_is_member_and_peers_are_init():
    s = new_membership("a", 7, T, NODES, ("eth0",))
    assert members(s) == ("a",)
    assert {n: p.state for n, p in s.peers.items()} == {"b": INIT, "c": INIT}
    assert s.epoch == 0


def test_heard_peers_join_and_each_view_change_increments_epoch():
    s, seen = run([(0, Start()), (0.5, HB("b", "eth0", 1, 0)), (0.7, HB("c", "eth0", 3, 0))])
    assert members(s) == ("a", "b", "c")
    changes = [e for _, e in of(seen, MembershipChanged)]
    assert [(c.epoch, c.members, c.joined) for c in changes] == [
        (1, ("a", "b"), ("b",)), (2, ("a", "b", "c"), ("c",))]
    assert [(e.node, e.old, e.new) for _, e in of(seen, NodeStateChanged)] == [
        ("b", INIT, UP), ("c", INIT, UP)]


def test_unheard_peer_stays_init_until_initdead_then_dead():
    tl = [(0, Start())] + beats("b", 1, 30) + [(19.9, Tick()), (20.0, Tick())]
    s, seen = run(sorted(tl, key=lambda p: p[0]))
    dead = [(t, e) for t, e in of(seen, NodeStateChanged) if e.node == "c"]
    assert dead == [(20.0, NodeStateChanged("c", INIT, DEAD, None))]
    assert s.peers["c"].links["eth0"].status == DEAD
    assert s.peers["b"].state == UP


def test_silent_peer_goes_warn_after_warntime_then_dead_after_deadtime():
    tl = merge([(0, Start())], beats("b", 1, 10), beats("c", 1, 40),
               [(t / 2, Tick()) for t in range(0, 80)])
    s, seen = run(tl)
    b_changes = [(t, e.old, e.new) for t, e in of(seen, NodeStateChanged) if e.node == "b"]
    # last heard at 10: warn at 10 + warntime, dead at 10 + deadtime
    assert b_changes == [(1, INIT, UP), (15.0, UP, WARN), (20.0, WARN, DEAD)]
    warn = [e for _, e in of(seen, NodeStateChanged) if e.new == WARN][0]
    assert warn.silent_for == 5.0
    left = [e for _, e in of(seen, MembershipChanged) if e.left]
    assert left[0].left == ("b",) and left[0].members == ("a", "c")
    assert s.peers["b"].state == DEAD and s.peers["c"].state == UP


def test_warn_is_still_a_member_and_a_late_heartbeat_returns_to_up_without_epoch_change():
    tl = merge([(0, Start())], beats("b", 1, 2), [(8.0, Tick()), (9.0, HB("b", "eth0", 1, 9))])
    s, seen = run(tl)
    assert [(e.old, e.new) for _, e in of(seen, NodeStateChanged)] == [(INIT, UP), (UP, WARN), (WARN, UP)]
    assert [e.epoch for _, e in of(seen, MembershipChanged)] == [1]
    assert members(s) == ("a", "b")


def test_dead_node_rejoins_with_same_generation_and_gets_new_epoch():
    tl = merge([(0, Start())], beats("b", 1, 5), [(15.0, Tick()), (16.0, HB("b", "eth0", 1, 50))])
    s, seen = run(tl)
    assert [(t, e.new) for t, e in of(seen, NodeStateChanged)] == [(1, UP), (15.0, DEAD), (16.0, UP)]
    assert [(e.epoch, e.members) for _, e in of(seen, MembershipChanged)] == [
        (1, ("a", "b")), (2, ("a",)), (3, ("a", "b"))]
    assert not of(seen, NodeRestarted)


def test_new_generation_is_a_restart_and_changes_the_view():
    tl = [(0, Start()), (1, HB("b", "eth0", 4, 0)), (2, HB("b", "eth0", 4, 1)),
          (4, HB("b", "eth0", 5, 0))]
    s, seen = run(tl)
    assert [e for _, e in of(seen, NodeRestarted)] == [NodeRestarted("b", 4, 5)]
    assert [e.epoch for _, e in of(seen, MembershipChanged)] == [1, 2]
    assert s.peers["b"].generation == 5 and s.peers["b"].state == UP
    assert (("b", 5) in s.view) and (("b", 4) not in s.view)


def test_older_generation_is_a_replay_and_ignored():
    tl = [(0, Start()), (1, HB("b", "eth0", 5, 0)), (9, HB("b", "eth0", 4, 99)), (12, Tick())]
    s, seen = run(tl)
    assert [e for _, e in of(seen, Rejected)] == [Rejected("b", 4, 5, "replay")]
    assert s.peers["b"].state == DEAD  # the old heartbeat did not keep it alive


def test_unknown_node_is_reported_and_not_admitted():
    s, seen = run([(0, Start()), (1, HB("mallory", "eth0", 1, 0))])
    assert [e for _, e in of(seen, UnknownNode)] == [UnknownNode("mallory", "eth0")]
    assert "mallory" not in s.peers and members(s) == ("a",)


def test_autojoin_admits_nodes_when_no_node_list():
    s = new_membership("a", 1, T, (), ("eth0",), autojoin=True)
    s, seen = run([(0, Start()), (1, HB("x", "eth0", 1, 0, echo=1))], state=s)
    assert members(s) == ("a", "x")


def test_autojoin_keeps_at_most_max_peers():
    s = new_membership("a", 1, T, (), ("eth0",), autojoin=True)
    s, seen = run([(0, Start())] + [(1, HB(f"n{i}", "eth0", 1, 0, echo=1)) for i in range(MAX_PEERS + 50)],
                  state=s)
    assert len(s.peers) == MAX_PEERS
    assert len(of(seen, UnknownNode)) == 50


def test_own_heartbeats_are_ignored():
    s, seen = run([(0, Start()), (1, HB("a", "eth0", 7, 0))])
    assert seen == [] and members(s) == ("a",)


def test_two_links_node_up_while_any_link_hears_it_each_link_reported():
    links = ("eth0", "eth1")
    tl = merge([(0, Start())], beats("b", 1, 40, link="eth0"), beats("b", 1.5, 12.5, link="eth1"),
               [(t / 2, Tick()) for t in range(0, 80)])
    s, seen = run(tl, links=links)
    assert s.peers["b"].state == UP
    assert s.peers["b"].links["eth0"].status == UP
    assert s.peers["b"].links["eth1"].status == DEAD
    link_changes = [(t, e) for t, e in of(seen, LinkStatusChanged) if e.node == "b"]
    assert (22.5, LinkStatusChanged("b", "eth1", UP, DEAD)) in link_changes
    assert not [e for _, e in of(seen, NodeStateChanged) if e.node == "b" and e.new in (WARN, DEAD)]


def test_local_link_down_marks_that_link_dead_for_all_peers_at_once():
    links = ("eth0", "eth1")
    tl = merge([(0, Start())], beats("b", 1, 5, link="eth0"), beats("b", 1, 5, link="eth1"),
               beats("c", 1, 5, link="eth1"), [(5.5, LinkDown("eth1"))])
    s, seen = run(tl, links=links)
    at = [e for t, e in of(seen, LinkStatusChanged) if t == 5.5]
    assert set(at) == {LinkStatusChanged("b", "eth1", UP, DEAD), LinkStatusChanged("c", "eth1", UP, DEAD)}
    assert s.peers["b"].state == UP  # still heard on eth0 recently
    s, seen = run([(6.0, LinkUp("eth1")), (6.1, HB("c", "eth1", 1, 9))], state=s)
    assert s.peers["c"].links["eth1"].status == UP
    assert s.peers["b"].links["eth1"].status == UP  # last heard 5 < deadtime ago, link back


def test_sub_second_timers():
    t = Timing(keepalive=0.1, warntime=0.25, deadtime=0.5, initdead=1.0)
    tl = merge([(0, Start())], beats("b", 0.1, 2.0, every=0.1), beats("c", 0.1, 1.0, every=0.1),
               [(round(k * 0.05, 3), Tick()) for k in range(0, 41)])
    s, seen = run(tl, timing=t)
    c = [(tm, e.new) for tm, e in of(seen, NodeStateChanged) if e.node == "c"]
    assert c == [(0.1, UP), (1.25, WARN), (1.5, DEAD)]
    assert s.peers["b"].state == UP


def test_next_deadline_points_at_the_next_transition():
    s, _ = run([(0, Start()), (1, HB("b", "eth0", 1, 0))])
    # c: initdead at 20; b: warn at 6, link dead/dead at 11
    assert next_deadline(s) == 6.0
    s, seen = step(s, Tick(), next_deadline(s))
    assert [e.new for e in seen if isinstance(e, NodeStateChanged)] == [WARN]
    assert next_deadline(s) == 11.0


def test_no_deadline_before_start_and_when_everything_is_dead():
    s = new_membership("a", 1, T, NODES, ("eth0",))
    assert next_deadline(s) is None
    s, _ = run([(0, Start()), (30, Tick())], state=s)
    assert next_deadline(s) is None


def test_reconfigure_keeps_known_peers_and_adds_new_nodes_and_links():
    s, _ = run([(0, Start()), (1, HB("b", "eth0", 1, 0))])
    t2 = Timing(keepalive=0.5, warntime=2.0, deadtime=4.0, initdead=8.0)
    s, seen = step(s, Reconfigure(t2, ("a", "b", "d"), ("eth0", "eth1")), 2)
    assert set(s.peers) == {"b", "d"} and s.peers["b"].state == UP
    assert set(s.peers["b"].links) == {"eth0", "eth1"}
    assert [e for e in seen if isinstance(e, MembershipChanged)] == []
    s, seen = step(s, Tick(), 5.0)  # new deadtime 4 applies: silent since 1
    assert s.peers["b"].state == DEAD


def test_summary_lists_members_and_others():
    s, _ = run([(0, Start()), (1, HB("b", "eth0", 1, 0)), (25, HB("b", "eth0", 1, 1))])
    assert summary(s) == "epoch 1: 2 member(s) a b; c dead"


# -- freshness and generations (issue 13: replays after a restart, forged generations) ----------------
def test_packets_that_do_not_echo_this_incarnation_never_make_a_peer_up():
    # b's packets recorded before the local node (generation 7) started echo generation 6, or nothing
    tl = [(0, Start())] + [(t, Heartbeat("b", "eth0", 3, t, echo=6)) for t in range(1, 8)] + \
         [(8, Heartbeat("b", "eth0", 3, 8)), (30, Tick())]
    s, seen = run(tl)
    assert {e.reason for _, e in of(seen, Rejected)} == {"stale"} and len(of(seen, Rejected)) == 8
    assert s.peers["b"].state == DEAD and members(s) == ("a",)
    assert s.peers["b"].generation == 3 and not s.peers["b"].verified   # echoed back, not believed


def test_a_fresh_heartbeat_verifies_the_generation_then_any_packet_of_it_counts():
    tl = [(0, Start()), (1, Heartbeat("b", "eth0", 3, 10, echo=6)), (2, HB("b", "eth0", 3, 11)),
          (3, Heartbeat("b", "eth0", 3, 12))]   # a message or ack: no echo, but the generation is proven
    s, seen = run(tl)
    assert [e for _, e in of(seen, Verified)] == [Verified("b", 3, 11)]
    assert [e.reason for _, e in of(seen, Rejected)] == ["stale"]
    assert s.peers["b"].state == UP and s.peers["b"].seq == 12


def test_generations_known_from_disk_make_older_ones_replays_without_being_believed():
    s = new_membership("a", 7, T, NODES, ("eth0",), known={"b": 3})
    assert s.peers["b"].generation == 3 and s.peers["b"].state == INIT and members(s) == ("a",)
    # b's generation 1 recorded 8 minutes earlier, replayed: counted, never up
    s, seen = run([(0, Start())] + [(t / 5, Heartbeat("b", "eth0", 1, t, echo=5)) for t in range(1, 61)] +
                  [(25, Tick())], state=s)
    assert [e.reason for _, e in of(seen, Rejected)] == ["replay"] * 60
    assert s.peers["b"].state == DEAD and not of(seen, NodeRestarted)
    # b itself, restarted at 4, answering this incarnation: a restart it is (heard in this run: no)
    s, seen = run([(26, HB("b", "eth0", 4, 1))], state=s)
    assert members(s) == ("a", "b") and s.peers["b"].generation == 4 and not of(seen, NodeRestarted)


def test_a_restart_is_held_while_the_known_incarnation_still_speaks():
    tl = merge([(0, Start())], beats("b", 1, 10), [(5.5, HB("b", "eth0", 8, 0)), (10.5, HB("b", "eth0", 8, 1)),
                                                   (12.0, HB("b", "eth0", 8, 2))])
    s, seen = run(tl)
    assert [(t, e.reason) for t, e in of(seen, Rejected)] == [(5.5, "generation"), (10.5, "generation")]
    assert [(t, e) for t, e in of(seen, NodeRestarted)] == [(12.0, NodeRestarted("b", 1, 8))]
    assert s.peers["b"].generation == 8 and s.peers["b"].state == UP


def test_one_forged_generation_locks_nobody_out():
    forged = [(2.5, HB("b", "eth0", 2**64 - 1, 0)), (3.5, HB("b", "eth0", 1 + MAX_GENERATION_JUMP + 1, 0)),
              (4.5, HB("b", "eth0", 2, 0))]
    tl = merge([(0, Start())], beats("b", 1, 30), forged, [(t, Tick()) for t in range(31)])
    s, seen = run(tl)
    assert [e.reason for _, e in of(seen, Rejected)] == ["generation"] * 3
    assert not of(seen, NodeRestarted)
    assert [(e.old, e.new) for _, e in of(seen, NodeStateChanged) if e.node == "b"] == [(INIT, UP)]
    assert s.peers["b"].generation == 1 and s.peers["b"].state == UP


def test_a_peer_that_lost_its_state_counts_again_from_one_once_the_old_generation_is_dead():
    tl = merge([(0, Start())], beats("b", 1, 5, gen=40),
               [(6, HB("b", "eth0", 1, 0)), (15.5, Tick()), (16, HB("b", "eth0", 1, 1))])
    s, seen = run(tl)
    assert [(t, e.reason) for t, e in of(seen, Rejected)] == [(6, "replay")]   # 40 was heard 1 s ago
    assert [(t, e) for t, e in of(seen, NodeRestarted)] == [(16, NodeRestarted("b", 40, 1))]
    assert s.peers["b"].generation == 1 and s.peers["b"].state == UP


def test_fast_path_gives_the_full_steps_states_and_effects(monkeypatch):
    """A steady peer's heartbeat skips the other peers (O(1)); random timelines of heartbeats (right and
    wrong generations, echoes, two links), ticks, link cuts and restarts give the same states and effects
    as the full step, and next_due() is never after next_deadline()."""
    import random

    from hadaemon.core.heartbeat import membership as mb

    nodes = tuple(f"n{i}" for i in range(8))
    timing = Timing(keepalive=0.1, warntime=0.3, deadtime=0.5, initdead=1.0)
    fast_hits = 0
    for seed in range(40):
        rnd = random.Random(seed)
        gens = {n: 1 for n in nodes}
        timeline, now = [(0.0, Start())], 0.0
        for _ in range(400):
            now = round(now + rnd.choice((0.001, 0.01, 0.03, 0.2, 0.7)), 6)
            r = rnd.random()
            if r < 0.8:
                n = rnd.choice(nodes[1:])
                if rnd.random() < 0.03:
                    gens[n] += 1
                gen = gens[n] if rnd.random() > 0.05 else gens[n] - 1
                echo = 7 if rnd.random() > 0.05 else 6
                timeline.append((now, Heartbeat(n, rnd.choice(("eth0", "eth0", "eth1")), gen, 0, echo)))
            elif r < 0.9:
                timeline.append((now, Tick()))
            else:
                timeline.append((now, rnd.choice((LinkDown, LinkUp))(rnd.choice(("eth0", "eth1")))))
        full = fast = new_membership("n0", 7, timing, nodes, ("eth0", "eth1"))
        for t, ev in timeline:
            monkeypatch.setattr(mb, "FAST_PATH", False)
            full, full_effects = step(full, ev, t)
            monkeypatch.setattr(mb, "FAST_PATH", True)
            if isinstance(ev, Heartbeat) and mb._steady_heartbeat(fast, ev, t) is not None:
                fast_hits += 1
            fast, fast_effects = step(fast, ev, t)
            assert (fast, fast_effects) == (full, full_effects), (seed, t, ev)
            due, exact = mb.next_due(fast), next_deadline(fast)
            assert (due is None) == (exact is None) or (due is not None and exact is None)
            assert due is None or exact is None or due <= exact
    assert fast_hits > 300   # the fast path was actually taken (799 with these seeds)
