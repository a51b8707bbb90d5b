"""ha-heartbeat's sender thread (HeartbeatNode._beat_loop), in-process with a transport that records sends:
heartbeats go out every keepalive while the event loop is busy (here: not running at all), they stop once
the loop has been stuck for LOOP_STUCK x deadtime (at least LOOP_STUCK_MIN s), and a timer that would
change a state reads every socket first (Transport.drain). No sockets, no root."""
import asyncio
import time

from hadaemon.core.heartbeat import membership as mb
from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.heartbeat.hacf import parse_hacf
from hadaemon.daemons import heartbeat_node
from hadaemon.daemons.heartbeat_node import HeartbeatNode

HACF = parse_hacf("keepalive 50ms\ndeadtime 200ms\ninitdead 1\nbcast eth0\nnode a\nnode b\n", "ha.cf")
AUTH = parse_authkeys("auth 1\n1 sha256 sender-test-key-0123456789abcdef\n")


class Recorder:
    """Stands for io.udp.Transport: records (monotonic time, datagram) per send; drain() feeds `queued`."""

    def __init__(self):
        self.sent = []
        self.queued = []
        self.drains = 0
        self.node = None

    def send(self, link, data, bulk=False):
        self.sent.append((time.monotonic(), data))
        return 1

    def send_to(self, link, data, addr, bulk=False):
        return self.send(link, data, bulk)

    def add_peer(self, link, addr):
        return True

    def drain(self):
        self.drains += 1
        queued, self.queued = self.queued, []
        for data in queued:
            self.node.on_datagram("eth0", data, ("10.0.0.2", 694))
        return len(queued)

    def close(self):
        pass


def started_node():
    loop = asyncio.new_event_loop()
    n = HeartbeatNode(HACF, AUTH, "a", 1, loop=loop)
    n.transport = rec = Recorder()
    rec.node = n
    n.start()
    return n, rec, loop


def beats(rec, since=0.0):
    return [t for t, data in rec.sent if t >= since and wire.decode(data, AUTH, wire.MAX_PACKET).kind == "hb"]


def test_heartbeats_go_out_while_the_event_loop_does_not_run_then_stop_when_it_is_stuck():
    n, rec, loop = started_node()   # the loop never runs: as if busy with one long callback
    try:
        t0 = time.monotonic()
        guard = max(heartbeat_node.LOOP_STUCK * HACF.deadtime, heartbeat_node.LOOP_STUCK_MIN)
        time.sleep(guard + 0.5)
        during = [t for t in beats(rec, t0 + 0.1) if t < n._loop_seen + guard]
        assert len(during) >= 2, "the sender thread keeps the keepalive without the loop (18 expected)"
        # each beat is sent only after checking the loop's last turn: once loop_seen + guard has passed, at
        # most the one beat (one link) already decided just before can still go out, however late the
        # thread runs; then none
        assert len(beats(rec, n._loop_seen + guard)) <= 1
        seqs = [wire.decode(d, AUTH, wire.MAX_PACKET).seq for _, d in rec.sent]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)   # one sequence, no repeats
    finally:
        n.close()
        loop.close()
    assert n._beat_thread is None


def test_a_timer_reads_the_queued_packets_before_judging():
    """b's packet sits in a queue while the loop was away past deadtime: the Tick drains it, b stays up."""
    now = [100.0]
    loop = asyncio.new_event_loop()
    n = HeartbeatNode(HACF, AUTH, "a", 1, loop=loop, clock=lambda: now[0])
    n.transport = rec = Recorder()
    rec.node = n
    n.start()
    try:
        hb = wire.encode(wire.Packet(kind="hb", src="b", generation=1, seq=1, link="eth0",
                                     payload=wire.encode_echo([("a", 1)])), AUTH)
        n.on_datagram("eth0", hb, ("10.0.0.2", 694))
        assert n.nodes_view()["b"][0] == mb.UP
        now[0] += 0.25    # past deadtime; b's next heartbeat is queued, unread
        rec.queued.append(wire.encode(wire.Packet(kind="hb", src="b", generation=1, seq=2, link="eth0",
                                                  payload=wire.encode_echo([("a", 1)])), AUTH))
        n._deadline_fired()
        assert rec.drains == 1 and n.nodes_view()["b"][0] == mb.UP and n.members() == ("a", "b")
        now[0] += 0.25    # nothing queued this time: dead
        n._deadline_fired()
        assert rec.drains == 2 and n.nodes_view()["b"][0] == mb.DEAD and n.members() == ("a",)
    finally:
        n.close()
        loop.close()
