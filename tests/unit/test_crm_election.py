"""DC election as a pure state machine: nodes exchange the effects as messages in many delivery
orders; every node of a partition names the same DC, an incumbent DC stays, a late crmd is included."""
import random

from hadaemon.core.crm import election as EL


class Net:
    """Delivers the election effects of several nodes as messages, in a seeded random order."""

    def __init__(self, names, seed=0, timeout=3.0):
        self.rng = random.Random(seed)
        self.now = 0.0
        self.states = {n: EL.new_election(n, f"{n}-i1", timeout) for n in names}
        self.queue = []       # (dst, src, vote)
        self.links = {n: set(names) for n in names}
        self.elected = {n: [] for n in names}

    def apply(self, node, event):
        st, effects = EL.step(self.states[node], event, self.now)
        self.states[node] = st
        for e in effects:
            if isinstance(e, EL.BroadcastVote):
                for dst in self.links[node]:
                    if dst != node:
                        self.queue.append((dst, node, e.vote))
            elif isinstance(e, EL.SendVote):
                if e.node in self.links[node]:
                    self.queue.append((e.node, node, e.vote))
            elif isinstance(e, EL.Elected):
                self.elected.setdefault(node, []).append(e.dc)

    def membership(self, node, members):
        self.apply(node, EL.Membership(tuple(members)))

    def run(self, max_steps=10000):
        steps = 0
        while self.queue and steps < max_steps:
            i = self.rng.randrange(len(self.queue))
            dst, src, vote = self.queue.pop(i)
            if dst in self.states and src in self.links[dst]:
                self.apply(dst, EL.VoteReceived(src, vote))
            steps += 1
        assert steps < max_steps, "election did not settle"

    def expire(self):
        self.now += 10.0
        for n in list(self.states):
            self.apply(n, EL.Tick())
        self.run()

    def dcs(self, nodes=None):
        return {n: self.states[n].dc for n in (nodes or self.states)}


def test_three_nodes_agree_on_one_dc_in_every_delivery_order():
    for seed in range(50):
        names = ["node1", "node2", "node3"]
        net = Net(names, seed)
        for n in names:
            net.membership(n, names)
        net.run()
        dcs = set(net.dcs().values())
        assert len(dcs) == 1 and "" not in dcs, (seed, net.dcs())
        assert all(net.states[n].decided for n in names)


def test_no_vote_from_a_member_decides_without_it_after_the_timeout():
    net = Net(["a", "b"], 1)
    net.states.pop("c", None)
    for n in ("a", "b"):
        net.membership(n, ["a", "b", "c"])   # c is a heartbeat member whose crmd does not run
    net.run()
    assert net.dcs() == {"a": "", "b": ""}  # still waiting for c's vote
    net.expire()
    assert net.dcs() == {"a": "a", "b": "a"}


def test_incumbent_dc_stays_when_a_lower_named_node_joins():
    net = Net(["b", "c"], 2)
    net.states["a"] = EL.new_election("a", "a-i1", 3.0)
    net.links = {"a": set(), "b": {"b", "c"}, "c": {"b", "c"}}
    for n in ("b", "c"):
        net.membership(n, ["b", "c"])
    net.run()
    assert net.dcs(["b", "c"]) == {"b": "b", "c": "b"}
    net.links = {n: {"a", "b", "c"} for n in ("a", "b", "c")}
    for n in ("a", "b", "c"):
        net.membership(n, ["a", "b", "c"])
    net.run()
    assert net.dcs() == {"a": "b", "b": "b", "c": "b"}


def test_a_crmd_started_late_is_included_by_a_new_round():
    for seed in range(20):
        net = Net(["n1", "n2", "n3"], seed)
        late = net.states.pop("n1")
        for n in ("n2", "n3"):
            net.membership(n, ["n1", "n2", "n3"])
        net.run()
        net.expire()
        assert net.dcs() == {"n2": "n2", "n3": "n2"}
        net.states["n1"] = late
        net.membership("n1", ["n1", "n2", "n3"])
        net.run()
        # n2 was DC (incumbent): it stays; n1 now agrees
        assert net.dcs() == {"n1": "n2", "n2": "n2", "n3": "n2"}, (seed, net.dcs())
        assert all(net.states[n].decided for n in ("n1", "n2", "n3"))


def test_restarted_crmd_of_the_dc_triggers_a_new_election_everyone_agrees_on():
    for seed in range(20):
        names = ["n1", "n2", "n3"]
        net = Net(names, seed)
        for n in names:
            net.membership(n, names)
        net.run()
        assert set(net.dcs().values()) == {"n1"}
        net.states["n1"] = EL.new_election("n1", "n1-i2", 3.0)   # kill -9 and restart
        net.membership("n1", names)
        net.run()
        dcs = set(net.dcs().values())
        assert len(dcs) == 1 and "" not in dcs, (seed, net.dcs())


def test_partitions_each_have_one_dc_and_merge_to_one():
    for seed in range(30):
        names = ["n1", "n2", "n3", "n4"]
        net = Net(names, seed)
        for n in names:
            net.membership(n, names)
        net.run()
        left, right = ["n1", "n2"], ["n3", "n4"]
        for side in (left, right):
            for n in side:
                net.links[n] = set(side)
        net.queue.clear()
        for side in (left, right):
            for n in side:
                net.membership(n, side)
        net.run()
        assert len({net.states[n].dc for n in left}) == 1
        assert len({net.states[n].dc for n in right}) == 1
        assert net.states["n3"].dc in right and net.states["n1"].dc in left
        for n in names:
            net.links[n] = set(names)
        for n in names:
            net.membership(n, names)
        net.run()
        dcs = set(net.dcs().values())
        assert len(dcs) == 1 and dcs != {""}, (seed, net.dcs())
        # both were incumbents: the lowest name wins
        assert dcs == {"n1"}


def test_votes_of_another_membership_view_are_ignored():
    st = EL.new_election("a", "a1", 3.0)
    st, eff = EL.step(st, EL.Membership(("a", "b")), 0.0)
    assert isinstance(eff[0], EL.BroadcastVote)
    st2, eff2 = EL.step(st, EL.VoteReceived("b", EL.Vote(("a", "b", "c"), "b1", False, 1)), 0.1)
    assert st2 == st and eff2 == []
    st3, eff3 = EL.step(st, EL.VoteReceived("b", EL.Vote(("a", "b"), "b1", False, 1)), 0.1)
    assert st3.decided and st3.dc == "a"
    assert any(isinstance(e, EL.SendVote) and e.node == "b" for e in eff3)
    assert any(isinstance(e, EL.Elected) and e.dc == "a" for e in eff3)


def test_vote_round_trips_through_a_dict():
    v = EL.Vote(("a", "b"), "x", True, 4)
    assert EL.Vote.from_dict(v.to_dict()) == v


def test_a_departed_crmd_is_not_waited_for_and_counts_again_when_it_votes():
    for seed in range(20):
        names = ["n1", "n2", "n3"]
        net = Net(names, seed)
        for n in names:
            net.membership(n, names)
        net.run()
        assert set(net.dcs().values()) == {"n1"}
        gone = net.states.pop("n1")   # n1's crmd stops cleanly, its heartbeat stays
        for n in ("n2", "n3"):
            net.apply(n, EL.Departed("n1"))
        net.queue = [q for q in net.queue if q[0] != "n1"]
        net.run()
        assert net.dcs() == {"n2": "n2", "n3": "n2"}, (seed, net.dcs())   # no timeout needed
        assert net.now == 0.0
        net.states["n1"] = EL.new_election("n1", "n1-i2", gone.timeout)
        net.membership("n1", names)
        net.run()
        assert net.dcs() == {"n1": "n2", "n2": "n2", "n3": "n2"}, (seed, net.dcs())
