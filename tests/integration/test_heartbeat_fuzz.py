"""Fuzz the heartbeat node's receive path in-process (no sockets): random datagrams and authenticated
packets with random fields never raise, every unsigned datagram is counted as a drop, and the node keeps
its membership working afterwards."""
import asyncio
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.heartbeat.hacf import parse_hacf
from hadaemon.daemons.heartbeat_node import HeartbeatNode

HACF = "keepalive 100ms\ndeadtime 500ms\ninitdead 1\nbcast eth0\nnode a\nnode b\nnode c\n"
AUTH = parse_authkeys("auth 1\n1 sha256 fuzz-key-0123456789abcdef\n")


class Errors(logging.Handler):
    """Collects ERROR records of the ha-heartbeat logger (e.g. 'messenger failed ...')."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


ERRORS = Errors()
logging.getLogger("ha-heartbeat").addHandler(ERRORS)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make_node():
    loop = asyncio.new_event_loop()
    clock = Clock()
    node = HeartbeatNode(parse_hacf(HACF, "ha.cf"), AUTH, "a", 1, loop=loop, clock=clock)
    node.start()  # no sockets: transport is None, sends are no-ops
    return node, clock, loop


pytestmark = [pytest.mark.slow]

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_random_datagrams_are_dropped_and_counted(datagrams):
    node, clock, loop = make_node()
    try:
        for d in datagrams:
            node.on_datagram("eth0", d, ("10.0.0.9", 694))
        assert sum(node.drop_counters().values()) == len(datagrams)
        assert node.members() == ("a",)
    finally:
        node.close()
        loop.close()


names = st.sampled_from(["a", "b", "c", "mallory", ""])
packets = st.builds(
    wire.Packet,
    kind=st.sampled_from(["hb", "msg", "ack"]),
    src=st.sampled_from(["b", "c", "mallory", "a"]),
    dst=names,
    generation=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    link=st.sampled_from(["eth0", "eth1", ""]),
    payload=st.binary(max_size=200),
    channel=st.sampled_from(["", "crm", "x" * 64]),
    msg_id=st.integers(0, 2**64 - 1),
    frag=st.integers(0, 5),
    nfrags=st.integers(0, 5),
    compressed=st.booleans(),
    broadcast=st.booleans(),
    dst_generation=st.integers(0, 3),
    stream_id=st.integers(0, 3),
    stream_seq=st.integers(0, 2**64 - 1),
    ack_seq=st.integers(0, 2**64 - 1),
    sack=st.lists(st.tuples(st.integers(0, 2**32), st.integers(0, 2**32)), max_size=4).map(tuple),
)


@SETTINGS
@given(st.lists(st.tuples(packets, st.floats(0, 2)), min_size=1, max_size=30))
def test_authenticated_packets_with_random_fields_never_break_the_node(items):
    node, clock, loop = make_node()
    ERRORS.records.clear()
    try:
        for pkt, dt in items:
            clock.now += dt
            try:
                data = wire.encode(pkt, AUTH)
            except ValueError:
                continue  # not even encodable: nothing to send
            node.on_datagram("eth0", data, ("10.0.0.9", 694))
            node._deadline_fired()
            node._messenger_tick(clock.now)
        # whatever happened, a genuine peer is admitted and the view is consistent
        clock.now += 10
        node._deadline_fired()
        known = node.state.peers["b"].generation
        if known is None or known < 2**64 - 1:  # (a peer restarting past 2**64 generations: not a case)
            gen = 1 if known is None else known + 1
            seq = next(s for s in (2**64 - 1, 2**63, 12345) if not node.guard.seen("b", gen, "hb", "eth0", s))
            hb = wire.Packet(kind="hb", src="b", generation=gen, seq=seq, link="eth0",
                             payload=wire.encode_echo([("a", 1)]))   # b hears this incarnation of a
            node.on_datagram("eth0", wire.encode(hb, AUTH), ("10.0.0.2", 694))
            assert "b" in node.members()
        assert set(node.nodes_view()) == {"a", "b", "c"}
        assert node.status_line().startswith(f"epoch {node.epoch}: ")
        assert ERRORS.records == []  # no exception was contained on the way
    finally:
        node.close()
        loop.close()
