"""Fuzz the heartbeat wire parser and the message layer from the corpus kept in tests/fuzz/ (bounded).

Seeds: tests/fuzz/heartbeat-corpus.txt (genuine packets of every kind, edge cases, the issue-13 attack
packets), made by tests/fuzz/build_heartbeat_corpus.py. Hypothesis mutates them: raw (bit flips,
truncation, splices: the parser must only ever raise Drop) and re-signed (a valid digest over a mutated
body: the parser, the node's receive path and the messenger must never raise, and every datagram is
accepted or dropped and counted exactly once). A new failure's input belongs in the corpus.
"""
import asyncio
import logging
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.heartbeat.hacf import parse_hacf
from hadaemon.core.heartbeat.messaging import Messenger
from hadaemon.daemons.heartbeat_node import HeartbeatNode

CORPUS_FILE = Path(__file__).resolve().parents[1] / "fuzz" / "heartbeat-corpus.txt"
AUTH = parse_authkeys("auth 1\n1 sha256 fuzz-corpus-key-0123456789abcdef\n2 sha1 fuzz-corpus-second-key\n3 crc\n")
HACF = "keepalive 100ms\ndeadtime 500ms\ninitdead 1\nbcast eth0\nnode a\nnode b\nnode c\n"
BOUNDED = settings(max_examples=500, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def load_corpus():
    out = []
    for line in CORPUS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, hexdata = line.split()
            out.append((name, b"" if hexdata == "-" else bytes.fromhex(hexdata)))
    return out


CORPUS = load_corpus()
SEEDS = [d for _, d in CORPUS]


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def resign(data: bytes) -> bytes:
    """`data` with a valid digest under the active key (whatever its body has become)."""
    if len(data) < 4 + 32:
        return data
    head = wire.MAGIC + bytes([wire.VERSION, 1])
    body = data[4 + 32:]
    return head + AUTH.sign(head + body) + body


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, val in ops:
        if kind == "flip" and b:
            b[pos % len(b)] ^= 1 << (val % 8)
        elif kind == "set" and b:
            b[pos % len(b)] = val % 256
        elif kind == "cut":
            del b[pos % (len(b) + 1):]
        elif kind == "insert":
            b[pos % (len(b) + 1):pos % (len(b) + 1)] = bytes([val % 256]) * (1 + val % 9)
        elif kind == "splice":
            other = SEEDS[val % len(SEEDS)]
            b = b[:pos % (len(b) + 1)] + other[pos % (len(other) + 1):]
    return bytes(b)


ops = st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "splice"]), st.integers(0, 1 << 16),
                         st.integers(0, 1 << 16)), min_size=1, max_size=6)


def test_the_corpus_covers_every_kind_and_decodes_as_its_name_says():
    kinds = set()
    for name, data in CORPUS:
        try:
            pkt = wire.decode(data, AUTH)
        except wire.Drop as drop:
            assert not name.startswith(("hb", "msg", "ack")), (name, drop)
            continue
        kinds.add(pkt.kind)
        assert name.split("-")[0] == pkt.kind, name
        assert wire.peek(data, AUTH) == (pkt.src, pkt.generation, pkt.kind, pkt.link, pkt.seq)
    assert kinds == {"hb", "msg", "ack"}


@BOUNDED
@given(st.sampled_from(SEEDS), ops)
def test_mutated_datagrams_only_ever_drop(seed, mutation):
    data = mutate(seed, mutation)
    try:
        pkt = wire.decode(data, AUTH)
    except wire.Drop as drop:
        assert drop.reason in ("oversized", "malformed", "auth", "version")
        return
    assert wire.decode(wire.encode(pkt, AUTH), AUTH) == pkt


def make_node():
    loop = asyncio.new_event_loop()
    now = [100.0]
    node = HeartbeatNode(parse_hacf(HACF, "ha.cf"), AUTH, "a", 1, loop=loop, clock=lambda: now[0])
    node.start()
    return node, now, loop


@BOUNDED
@given(st.lists(st.tuples(st.sampled_from(SEEDS), ops, st.booleans(), st.floats(0, 0.3)), min_size=1, max_size=25))
def test_resigned_mutations_through_the_node_and_the_messenger_never_raise(items):
    node, now, loop = make_node()
    errors = Errors()
    logging.getLogger("ha-heartbeat").addHandler(errors)
    messenger = Messenger("a", 1)
    messenger.membership({"b": 3, "c": 4})
    try:
        for seed, mutation, signed, dt in items:
            now[0] += dt
            data = mutate(seed, mutation)
            if signed:
                data = resign(data)
            before = sum(node.drop_counters().values()) + node.received
            node.on_datagram("eth0", data, ("10.0.0.2", 694))
            node._deadline_fired()
            node._messenger_tick(now[0])
            after = sum(node.drop_counters().values()) + node.received
            try:
                pkt = wire.decode(data, AUTH)
            except wire.Drop:
                assert after == before + 1    # dropped and counted once
                continue
            assert after in (before, before + 1)   # accepted, or dropped once (own packets: ignored)
            if pkt.kind in ("msg", "ack"):    # the message layer alone, with a live stream to it
                messenger.on_packet(pkt, now[0])
                messenger.tick(now[0])
        assert errors.records == []
        assert set(node.nodes_view()) == {"a", "b", "c"}
    finally:
        logging.getLogger("ha-heartbeat").removeHandler(errors)
        node.close()
        loop.close()
