"""Messaging core as event timelines over a simulated lossy, reordering, duplicating network (pure Python)."""
import heapq
import random
import zlib
from dataclasses import replace

import pytest

from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.heartbeat.messaging import Backpressure, Delivered, Messenger, MessagingError, Undeliverable

KEYS = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n")


class Net:
    """Nodes joined by a simulated network: seeded loss, random delay (reordering) and duplication.

    Every packet goes through wire.encode/decode and a ReplayGuard, as in the daemon.
    """

    def __init__(self, names, seed=1, loss=0.0, dup=0.0, delay=0.001, jitter=0.0, gens=None, **kw):
        self.rng = random.Random(seed)
        self.loss, self.dup, self.delay, self.jitter = loss, dup, delay, jitter
        self.now = 0.0
        self.queue = []
        self.count = 0
        self.kw = kw
        self.gens = dict(gens or {n: 1 for n in names})
        self.nodes = {n: Messenger(n, self.gens[n], **kw) for n in names}
        self.guards = {n: wire.ReplayGuard() for n in names}
        self.down = set()
        self.received = {n: [] for n in names}
        self.undeliverable = {n: [] for n in names}
        self.wire_drops = 0
        self.packets = 0
        for n in names:
            self.nodes[n].membership({p: self.gens[p] for p in names if p != n})

    def transmit(self, src, packets):
        for pkt in packets:
            data = wire.encode(replace(pkt, link="eth0"), KEYS, max_size=wire.MAX_DATAGRAM)
            self.packets += 1
            for dst in ([pkt.dst] if pkt.dst else [n for n in self.nodes if n != src]):
                if self.rng.random() < self.loss:
                    continue
                copies = 2 if self.rng.random() < self.dup else 1
                for _ in range(copies):
                    self.count += 1
                    when = self.now + self.delay + self.rng.random() * self.jitter
                    heapq.heappush(self.queue, (when, self.count, src, dst, data))

    def send(self, src, dst, channel, body):
        self.transmit(src, self.nodes[src].send(dst, channel, body, self.now))
        return self.nodes[src].last_msg_id

    def deliver(self, src, dst, data):
        if dst in self.down or src in self.down:
            return
        pkt = wire.decode(data, KEYS)
        if self.guards[dst].check(pkt):
            self.wire_drops += 1
            return
        delivered, out = self.nodes[dst].on_packet(pkt, self.now)
        self.received[dst] += delivered
        self.transmit(dst, out)

    def step(self, until):
        """Advance to the next event (packet arrival or messenger timer) not after `until`; False if none."""
        timers = [(m.next_deadline(), n) for n, m in self.nodes.items() if n not in self.down]
        timers = [(t, n) for t, n in timers if t is not None]
        t_timer = min(timers)[0] if timers else None
        t_pkt = self.queue[0][0] if self.queue else None
        cands = [t for t in (t_timer, t_pkt) if t is not None]
        if not cands or min(cands) > until:
            self.now = max(self.now, until)
            return False
        self.now = max(self.now, min(cands))
        if t_pkt is not None and t_pkt <= self.now:
            _, _, src, dst, data = heapq.heappop(self.queue)
            self.deliver(src, dst, data)
        else:
            for t, n in timers:
                if t <= self.now:
                    self.transmit(n, self.nodes[n].tick(self.now))
        return True

    def run(self, until, max_steps=2_000_000):
        for _ in range(max_steps):
            if not self.step(until):
                return
        raise AssertionError("simulation did not settle")

    def kill(self, node):
        self.down.add(node)

    def declare_dead(self, node):
        for n, m in self.nodes.items():
            if n != node and n not in self.down:
                self.undeliverable[n] += m.peer_dead(node)

    def restart(self, node):
        self.down.discard(node)
        self.gens[node] += 1
        self.nodes[node] = Messenger(node, self.gens[node], **self.kw)
        self.guards[node] = wire.ReplayGuard()
        self.received[node] = []
        for n, m in self.nodes.items():
            if n != node:
                self.undeliverable[n] += m.peer_joined(node, self.gens[node])
                self.nodes[node].peer_joined(n, self.gens[n])


def bodies(received, src):
    return [d.body for d in received if d.src == src]


def test_unicast_and_broadcast_on_a_perfect_network():
    net = Net(["a", "b", "c"])
    m1 = net.send("a", "b", "crm", b"to b")
    m2 = net.send("a", "", "crm", b"to all")
    net.run(1.0)
    assert net.received["b"] == [Delivered("a", "crm", b"to b", m1), Delivered("a", "crm", b"to all", m2, True)]
    assert net.received["c"] == [Delivered("a", "crm", b"to all", m2, True)]
    assert net.received["a"] == []
    assert net.nodes["a"].outstanding(m2) == frozenset() and net.nodes["a"].next_deadline() is None
    assert net.nodes["a"].buffered_bytes == 0


def test_10000_messages_among_3_nodes_under_loss_reorder_and_duplication_arrive_once_in_order():
    rng = random.Random(7)
    names = ["a", "b", "c"]
    net = Net(names, seed=3, loss=0.2, dup=0.05, delay=0.0005, jitter=0.004, max_queued=400)
    expected = {(s, r): [] for s in names for r in names if s != r}
    backlog = {n: [] for n in names}
    sent = 0
    big = 0
    for i in range(10000):
        src = rng.choice(names)
        dst = rng.choice([n for n in names if n != src] + [""])
        size = rng.choice([10, 100, 1000]) if rng.random() < 0.97 else rng.randrange(3000, 30000)
        body = f"{src}>{dst or '*'}#{i}|".encode() + (rng.randbytes(size) if size > 1000 and i % 2
                                                     else b"z" * size)
        big += size > 1000
        backlog[src].append((dst, body))
    t = 0.0
    while any(backlog.values()):
        for n in names:
            while backlog[n]:
                dst, body = backlog[n][0]
                try:
                    net.send(n, dst, "crm", body)
                except Backpressure:
                    break
                backlog[n].pop(0)
                sent += 1
                for r in ([dst] if dst else [x for x in names if x != n]):
                    expected[(n, r)].append(body)
                if sent % 20 == 0:
                    break
        t += 0.002
        net.run(t)
    net.run(t + 60)
    assert sent == 10000 and big > 100
    for (s, r), want in expected.items():
        got = bodies(net.received[r], s)
        assert len(got) == len(want), (s, r)
        assert got == want, (s, r)
    for m in net.nodes.values():
        assert m.next_deadline() is None and m.buffered_bytes == 0
        assert all(m.queued(p) == 0 for p in names)
    stats = {k: sum(m.stats[k] for m in net.nodes.values()) for k in net.nodes["a"].stats}
    assert stats["retransmits"] > 1000 and stats["duplicates"] > 10
    assert net.wire_drops > 100          # network duplicates: caught by the replay guard already
    assert stats["undeliverable"] == 0 and stats["bad_messages"] == 0


def test_peer_death_reports_every_unconfirmed_message_never_silent_loss():
    names = ["a", "b", "c"]
    net = Net(names, seed=11, loss=0.2, jitter=0.003)
    to_b = {}
    to_c = []
    for i in range(300):
        if i == 150:
            net.kill("b")
        dst = ["b", "", "c"][i % 3]
        mid = net.send("a", dst, "crm", f"m{i}".encode() * (1 + i % 50))
        if dst in ("b", ""):
            to_b[mid] = f"m{i}".encode() * (1 + i % 50)
        if dst in ("c", ""):
            to_c.append(f"m{i}".encode() * (1 + i % 50))
        net.run(net.now + 0.003)
    net.run(net.now + 2.0)        # b is silent; a keeps retransmitting, nothing is given up silently
    assert net.nodes["a"].queued("b") > 0
    net.declare_dead("b")
    net.run(net.now + 5.0)
    got_b = {d.msg_id for d in net.received["b"]}
    reported = {u.msg_id for u in net.undeliverable["a"] if u.dst == "b"}
    assert all(u.reason == "peer dead" and u.channel == "crm" for u in net.undeliverable["a"])
    assert set(to_b) <= got_b | reported          # each message: delivered, or reported undeliverable
    assert len(reported) >= 100                   # everything after the kill at least
    assert bodies(net.received["c"], "a") == to_c  # c unaffected
    broadcast_ids = {d.msg_id for d in net.received["c"] if d.broadcast}
    for mid in broadcast_ids & reported:
        assert net.nodes["a"].outstanding(mid) == frozenset()
    with pytest.raises(MessagingError, match="'b' is not a live member"):
        net.send("a", "b", "crm", b"late")


def test_broadcast_outstanding_until_every_member_acked_then_dead_member_reported():
    net = Net(["a", "b", "c"])
    net.kill("c")
    mid = net.send("a", "", "crm", b"hello")
    net.run(0.5)
    assert net.nodes["a"].outstanding(mid) == frozenset({"c"})
    assert [d.body for d in net.received["b"]] == [b"hello"]
    net.declare_dead("c")
    assert net.undeliverable["a"] == [Undeliverable("c", "crm", mid, "peer dead")]
    assert net.nodes["a"].outstanding(mid) == frozenset() and net.nodes["a"].next_deadline() is None


def test_restarted_receiver_gets_a_fresh_stream_and_old_copies_are_reported():
    net = Net(["a", "b"], loss=0.0)
    net.kill("b")
    old = [net.send("a", "b", "crm", f"old{i}".encode()) for i in range(3)]
    net.run(0.3)
    net.restart("b")                                # new generation: a fails the old stream
    assert [u.msg_id for u in net.undeliverable["a"]] == old
    assert {u.reason for u in net.undeliverable["a"]} == {"peer restarted"}
    new = net.send("a", "b", "crm", b"new")
    net.run(2.0)
    assert [(d.msg_id, d.body) for d in net.received["b"]] == [(new, b"new")]


def test_packets_for_an_earlier_incarnation_are_not_delivered():
    a, b = Messenger("a", 1), Messenger("b", 5)
    a.peer_joined("b", 4)                     # a still believes b is generation 4
    b.peer_joined("a", 1)
    pkts = a.send("b", "crm", b"x", 0.0)
    assert b.on_packet(pkts[0], 0.0) == ([], [])
    assert b.stats["stale"] == 1


def test_restarted_sender_resets_receiver_expectations_and_stale_sender_is_ignored():
    b = Messenger("b", 1)
    a1 = Messenger("a", 1)
    a1.peer_joined("b", 1)
    b.peer_joined("a", 1)
    for i in range(3):
        (p,) = a1.send("b", "crm", f"{i}".encode(), 0.0)
        assert len(b.on_packet(p, 0.0)[0]) == 1
    old = a1.send("b", "crm", b"old-late", 0.0)
    a2 = Messenger("a", 2)                    # a restarted; its stream starts at 1 again
    a2.peer_joined("b", 1)
    (p,) = a2.send("b", "crm", b"fresh", 0.0)
    assert p.stream_seq == 1
    assert [d.body for d in b.on_packet(p, 0.0)[0]] == [b"fresh"]
    assert b.on_packet(old[0], 0.0) == ([], [])          # from the dead incarnation
    assert b.stats["stale"] == 1


def pair(**kw):
    a, b = Messenger("a", 1, **kw), Messenger("b", 1, **kw)
    a.peer_joined("b", 1)
    b.peer_joined("a", 1)
    return a, b


def test_out_of_order_held_back_and_duplicates_suppressed():
    a, b = pair()
    pkts = [a.send("b", "crm", f"m{i}".encode(), 0.0)[0] for i in range(4)]
    d, acks = b.on_packet(pkts[2], 0.0)
    assert d == [] and acks[0].ack_seq == 0 and acks[0].sack == ((3, 3),)
    d, acks = b.on_packet(pkts[1], 0.0)
    assert d == [] and acks[0].sack == ((2, 3),)
    d, _ = b.on_packet(pkts[0], 0.0)
    assert [x.body for x in d] == [b"m0", b"m1", b"m2"]
    d, acks = b.on_packet(pkts[1], 0.0)       # duplicate
    assert d == [] and acks[0].ack_seq == 3 and b.stats["duplicates"] == 1
    d, _ = b.on_packet(pkts[3], 0.0)
    assert [x.body for x in d] == [b"m3"]
    # acks release a's buffers; a selective ack spares a retransmission
    for p in b.on_packet(pkts[3], 0.0)[1]:
        a.on_packet(p, 0.0)
    assert a.buffered_bytes == 0 and a.next_deadline() is None


def test_sack_prevents_retransmitting_received_fragments():
    a, b = pair()
    pkts = [a.send("b", "crm", f"m{i}".encode(), 0.0)[0] for i in range(5)]
    for p in pkts[1:]:
        for ack in b.on_packet(p, 0.0)[1]:
            a.on_packet(ack, 0.0)
    retx = a.tick(1.0)
    assert [p.stream_seq for p in retx] == [1]
    assert retx[0].seq != pkts[0].seq          # fresh transmission number, so the replay guard lets it in


def test_retransmission_backoff_is_exponential_and_capped():
    a, _ = pair(rto_initial=0.1, rto_max=0.8)
    a.send("b", "crm", b"x", 0.0)
    times = []
    now = 0.0
    for _ in range(8):
        now = a.next_deadline()
        times.append(round(now, 6))
        assert len(a.tick(now)) == 1
    gaps = [round(y - x, 6) for x, y in zip([0.0] + times, times)]
    assert gaps == [0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8, 0.8]


def test_fragmentation_and_reassembly_with_small_fragments():
    a, b = pair(max_fragment=100, compression=None)
    body = bytes(range(256)) * 10
    pkts = a.send("b", "big", body, 0.0)
    assert len(pkts) == 26 and [p.frag for p in pkts] == list(range(26)) and pkts[0].nfrags == 26
    got = []
    for p in reversed(pkts):                  # worst-case order
        got += b.on_packet(p, 0.0)[0]
    assert got == [Delivered("a", "big", body, pkts[0].msg_id)]


def test_default_fragments_fit_a_datagram():
    a, b = pair(compression=None)
    body = random.Random(1).randbytes(50_000)
    pkts = a.send("b", "crm", body, 0.0)
    assert len(pkts) >= 40
    assert all(len(wire.encode(replace(p, link="x" * 15), KEYS)) <= wire.MAX_DATAGRAM for p in pkts)
    got = []
    for p in pkts:
        got += b.on_packet(wire.decode(wire.encode(p, KEYS), KEYS), 0.0)[0]
    assert [d.body for d in got] == [body]


@pytest.mark.parametrize("method", ["zlib", "bz2"])
def test_compression_above_threshold(method):
    a, b = pair(compression=method, compression_threshold=2)       # KB, as in ha.cf
    small = b"s" * 2048                                               # not above the threshold
    large = b"cib " * 5000
    p_small = a.send("b", "crm", small, 0.0)
    p_large = a.send("b", "crm", large, 0.0)
    assert len(p_small) == 2 and not any(p.compressed for p in p_small)
    assert len(p_large) == 1 and p_large[0].compressed and len(p_large[0].payload) < 1000
    got = []
    for p in p_small + p_large:
        got += b.on_packet(p, 0.0)[0]
    assert [d.body for d in got] == [small, large]


def test_incompressible_body_is_sent_raw():
    a, _ = pair(compression="zlib", compression_threshold_bytes=10)
    pkts = a.send("b", "crm", random.Random(2).getrandbits(8 * 3000).to_bytes(3000, "big"), 0.0)
    assert not any(p.compressed for p in pkts)


def test_decompression_bomb_is_refused():
    a, b = pair(max_message_bytes=10_000)
    bomb = b"\x01" + zlib.compress(b"\0" * 1_000_000)
    (p,) = a.send("b", "crm", b"placeholder", 0.0)
    d, acks = b.on_packet(replace(p, payload=bomb, compressed=True), 0.0)
    assert d == [] and b.stats["bad_messages"] == 1 and acks


def test_backpressure_when_queue_full_changes_nothing():
    a, b = pair(window=4, max_queued=10, max_fragment=100, compression=None)
    assert len(a.send("b", "crm", b"x" * 600, 0.0)) == 4       # 6 fragments: 4 in flight, 2 queued
    assert a.queued("b") == 6
    before = (a.queued("b"), a.buffered_bytes, a.last_msg_id)
    with pytest.raises(Backpressure):
        a.send("b", "crm", b"y" * 500, 0.0)
    assert (a.queued("b"), a.buffered_bytes, a.last_msg_id) == before
    net_pkts = a.tick(0.0)
    assert net_pkts == []                      # window full: queued fragments wait for acks


def test_window_limits_fragments_in_flight_and_acks_release_more():
    a, b = pair(window=4, max_fragment=10, compression=None)
    first = a.send("b", "crm", b"0123456789" * 10, 0.0)
    assert [p.stream_seq for p in first] == [1, 2, 3, 4]
    more = []
    for p in first:
        for ack in b.on_packet(p, 0.0)[1]:
            more += a.on_packet(ack, 0.0)[1]
    assert [p.stream_seq for p in more] == [5, 6, 7, 8]


def test_message_larger_than_the_queue_is_an_error_not_backpressure():
    a, _ = pair(max_fragment=100, max_queued=50, compression=None)
    with pytest.raises(MessagingError, match="needs 51 fragments; at most 50") as ei:
        a.send("b", "crm", b"x" * 5001, 0.0)
    assert not isinstance(ei.value, Backpressure)
    big = Messenger("a", 1, compression=None)
    big.peer_joined("b", 1)
    assert len(big.send("b", "crm", bytes(big.max_message_bytes), 0.0)) == big.window   # the largest fits


def test_buffered_bytes_limit():
    a, _ = pair(max_buffered_bytes=1000, compression=None)
    a.send("b", "crm", b"x" * 900, 0.0)
    with pytest.raises(Backpressure, match="bytes already buffered"):
        a.send("b", "crm", b"x" * 200, 0.0)


def test_send_errors():
    a, _ = pair()
    with pytest.raises(MessagingError, match="local node"):
        a.send("a", "crm", b"x", 0.0)
    with pytest.raises(MessagingError, match="'zz' is not a live member"):
        a.send("zz", "crm", b"x", 0.0)
    with pytest.raises(MessagingError, match="channel"):
        a.send("b", "", b"x", 0.0)
    with pytest.raises(MessagingError, match="channel"):
        a.send("b", "c" * 65, b"x", 0.0)
    small = Messenger("a", 1, max_message_bytes=10)
    small.peer_joined("b", 1)
    with pytest.raises(MessagingError, match="exceeds the limit"):
        small.send("b", "crm", b"x" * 11, 0.0)


def test_broadcast_with_no_members_and_membership_updates():
    a = Messenger("a", 1)
    assert a.send("", "crm", b"x", 0.0) == [] and a.last_msg_id == 1
    assert a.membership({"a": 1, "b": 3, "c": 4}) == []
    assert a.members() == ("b", "c")
    a.send("", "crm", b"y", 0.0)
    failed = a.membership(["b"])
    assert failed == [Undeliverable("c", "crm", 2, "peer dead")]
    assert a.members() == ("b",)
    assert a.membership({"b": 5}) == [Undeliverable("b", "crm", 2, "peer restarted")]


def test_generation_unknown_is_adopted_from_first_ack():
    a, b = Messenger("a", 1), Messenger("b", 9)
    a.peer_joined("b")                         # shell did not pass the generation
    b.peer_joined("a", 1)
    (p,) = a.send("b", "crm", b"x", 0.0)
    assert p.dst_generation == 0
    d, acks = b.on_packet(p, 0.0)
    assert [x.body for x in d] == [b"x"]
    a.on_packet(acks[0], 0.0)
    (p2,) = a.send("b", "crm", b"y", 0.0)
    assert p2.dst_generation == 9


def test_stale_acks_are_ignored():
    a, b = pair()
    (p,) = a.send("b", "crm", b"x", 0.0)
    (ack,) = b.on_packet(p, 0.0)[1]
    assert a.on_packet(replace(ack, stream_id=99), 0.0) == ([], [])
    assert a.on_packet(replace(ack, dst_generation=7), 0.0) == ([], [])
    assert a.on_packet(replace(ack, generation=2), 0.0) == ([], [])
    assert a.queued("b") == 1
    a.on_packet(ack, 0.0)
    assert a.queued("b") == 0


def test_ack_with_huge_sack_range_is_bounded():
    a, b = pair()
    pkts = [a.send("b", "crm", b"x", 0.0)[0] for _ in range(3)]
    (ack,) = b.on_packet(pkts[1], 0.0)[1]
    a.on_packet(replace(ack, ack_seq=0, sack=((0, 2**63),)), 0.0)     # must not loop 2**63 times
    assert a.queued("b") == 3 and a.next_deadline() is None    # sacked: not resent, but not done either
    assert a.peer_dead("b") == [Undeliverable("b", "crm", i, "peer dead") for i in (1, 2, 3)]


def test_sacked_but_undelivered_messages_are_reported_when_the_receiver_dies():
    a, b = pair()
    pkts = [a.send("b", "crm", f"m{i}".encode(), 0.0)[0] for i in range(3)]
    for p in pkts[1:]:                         # m0 lost: b holds m1, m2 without delivering them
        for ack in b.on_packet(p, 0.0)[1]:
            a.on_packet(ack, 0.0)
    assert [p.stream_seq for p in a.tick(5.0)] == [1]
    assert [u.msg_id for u in a.peer_dead("b")] == [1, 2, 3]


def test_packets_not_for_me_or_from_me_are_ignored():
    a, b = pair()
    (p,) = a.send("b", "crm", b"x", 0.0)
    assert a.on_packet(p, 0.0) == ([], [])
    assert Messenger("c", 1).on_packet(p, 0.0) == ([], [])
    assert b.on_packet(replace(p, kind="hb"), 0.0) == ([], [])


def test_inconsistent_fragments_are_discarded_not_delivered():
    a, b = pair(max_fragment=4, compression=None)
    p0, p1, p2 = a.send("b", "crm", b"abcdefghij", 0.0)
    assert b.on_packet(p0, 0.0)[0] == []
    assert b.on_packet(replace(p1, nfrags=2), 0.0)[0] == []       # claims the message ends here
    assert b.on_packet(p2, 0.0)[0] == [] and b.stats["bad_messages"] >= 1
    (q,) = a.send("b", "crm", b"next", 0.0)
    assert [d.body for d in b.on_packet(q, 0.0)[0]] == [b"next"]   # the stream goes on


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_partitions_and_restarts_never_lose_silently(seed):
    """Invariants under 30% loss, partitions (one- or two-sided death reports) and receiver restarts:
    per (sender, receiver) deliveries are in sending order without duplicates, and every message is
    delivered or reported undeliverable to its sender."""
    rng = random.Random(seed)
    names = ["a", "b", "c"]
    net = Net(names, seed=seed, loss=0.3, dup=0.05, jitter=0.005)
    sent = {}            # msg key (src, msg_id) -> list of receivers
    order = {}           # (src, dst) -> msg ids in sending order
    delivered_log = []   # (receiver, Delivered), across restarts
    cut = set()
    orig_deliver = net.deliver

    def deliver(src, dst, data):
        if frozenset((src, dst)) in cut:
            return
        before = len(net.received[dst])
        orig_deliver(src, dst, data)
        delivered_log.extend((dst, d) for d in net.received[dst][before:])

    net.deliver = deliver
    for step in range(400):
        src = rng.choice(names)
        dst = rng.choice([n for n in names if n != src] + [""])
        targets = net.nodes[src].members() if not dst else [dst]
        if dst and dst not in net.nodes[src].members():
            continue
        try:
            mid = net.send(src, dst, "crm", f"{src}:{step}".encode() * rng.randrange(1, 400))
        except Backpressure:
            continue
        sent[(src, mid)] = list(targets)
        for t in targets:
            order.setdefault((src, t), []).append(mid)
        net.run(net.now + 0.01)
        r = rng.random()
        if r < 0.02:                                   # partition a pair; maybe only one side notices
            x, y = rng.sample(names, 2)
            cut.add(frozenset((x, y)))
            net.run(net.now + 0.3)
            net.undeliverable[x] += net.nodes[x].peer_dead(y)
            if rng.random() < 0.5:
                net.undeliverable[y] += net.nodes[y].peer_dead(x)
            net.run(net.now + 0.3)
            cut.discard(frozenset((x, y)))
            for p, q in ((x, y), (y, x)):
                net.undeliverable[p] += net.nodes[p].peer_joined(q, net.gens[q])
        elif r < 0.03:                                 # a receiver restarts with a new generation
            victim = rng.choice(names)
            net.run(net.now + 0.2)
            net.restart(victim)
            # messages from the victim's previous incarnation are nobody's concern any more
            for key in [k for k in sent if k[0] == victim]:
                del sent[key]
            for key in [k for k in order if k[0] == victim]:
                del order[key]
            delivered_log[:] = [(r_, d) for r_, d in delivered_log if d.src != victim]
    net.run(net.now + 120)
    got = {}
    for receiver, d in delivered_log:
        got.setdefault((d.src, receiver), []).append(d.msg_id)
    reported = {(src, u.dst, u.msg_id) for src, us in net.undeliverable.items() for u in us}
    for (src, dst), ids in order.items():
        seq = got.get((src, dst), [])
        assert len(seq) == len(set(seq)), (src, dst)              # no duplicates
        positions = [ids.index(m) for m in seq if m in ids]
        assert positions == sorted(positions), (src, dst)         # sending order
        for m in ids:
            assert m in seq or (src, dst, m) in reported, (src, dst, m)
    for m in net.nodes.values():
        assert m.next_deadline() is None


def test_fast_retransmit_after_three_acks_past_a_hole_once_per_timer():
    a, b = pair()
    pkts = [a.send("b", "crm", f"m{i}".encode(), 0.0)[0] for i in range(8)]
    resent = []
    for p in pkts[1:]:                          # m0 lost; every later arrival acks past the hole
        for ack in b.on_packet(p, 0.001)[1]:
            resent += [q for q in a.on_packet(ack, 0.002)[1] if q.kind == "msg"]
    assert [q.stream_seq for q in resent] == [1]        # once, after the third such ack
    assert a.stats["fast_retransmits"] == 1
    d, acks = b.on_packet(resent[0], 0.003)
    assert [x.body for x in d] == [f"m{i}".encode() for i in range(8)]
    a.on_packet(acks[0], 0.004)
    assert a.queued("b") == 0 and a.next_deadline() is None


def test_retransmission_timeout_adapts_to_the_round_trip_time():
    a, b = pair(rto_initial=0.5, rto_min=0.01, rto_max=2.0)
    now = 0.0
    for _ in range(20):                         # 2 ms round trips
        (p,) = a.send("b", "crm", b"x", now)
        (ack,) = b.on_packet(p, now + 0.001)[1]
        a.on_packet(ack, now + 0.002)
        now += 0.01
    a.send("b", "crm", b"lost", now)
    assert a.next_deadline() - now < 0.05        # no longer the initial 0.5 s
    slow_a, slow_b = pair(rto_initial=0.05, rto_min=0.01, rto_max=2.0)
    for i in range(20):                         # 300 ms round trips: the timer backs off to match
        (p,) = slow_a.send("b", "crm", b"x", i * 1.0)
        (ack,) = slow_b.on_packet(p, i * 1.0 + 0.15)[1]
        slow_a.on_packet(ack, i * 1.0 + 0.3)
    slow_a.send("b", "crm", b"y", 100.0)
    assert slow_a.next_deadline() - 100.0 >= 0.3


def test_held_runs_match_a_brute_force_model():
    from hadaemon.core.heartbeat.messaging import _Runs

    rng = random.Random(5)
    for _ in range(200):
        runs, held, expected = _Runs(), set(), 1
        for _ in range(60):
            x = expected + rng.randrange(0, 30)
            if rng.random() < 0.3:
                x = expected
            if x not in held:
                held.add(x)
                runs.add(x)
            while expected in held:
                runs.discard_first(expected)
                held.discard(expected)
                expected += 1
            want, cur = [], None
            for v in sorted(held):
                if cur and v == cur[1] + 1:
                    cur[1] = v
                else:
                    cur = [v, v]
                    want.append(cur)
            assert runs.head(1000) == tuple(map(tuple, want))
