"""ha-heartbeat's persisted peer generations (state_dir/peers) and echo, in-process (no sockets)."""
import asyncio

from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.heartbeat.hacf import parse_hacf
from hadaemon.daemons.heartbeat_node import HeartbeatNode, load_peer_generations

HACF = parse_hacf("keepalive 100ms\ndeadtime 500ms\ninitdead 1\nbcast eth0\nnode a\nnode b\nnode c\n", "ha.cf")
AUTH = parse_authkeys("auth 1\n1 sha256 state-test-key-0123456789abcdef\n")


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def node(state_dir, generation=1):
    loop = asyncio.new_event_loop()
    clock = Clock()
    n = HeartbeatNode(HACF, AUTH, "a", generation, loop=loop, clock=clock, state_dir=str(state_dir))
    n.start()
    return n, clock, loop


def hb(src, gen, seq, echo):
    return wire.encode(wire.Packet(kind="hb", src=src, generation=gen, seq=seq, link="eth0",
                                   payload=wire.encode_echo(echo)), AUTH)


def test_believed_generations_are_persisted_and_older_ones_refused_after_a_restart(tmp_path):
    n, clock, loop = node(tmp_path, generation=1)
    n.on_datagram("eth0", hb("b", 3, 1, [("a", 1)]), ("10.0.0.2", 694))
    assert "b" in n.members()
    assert (tmp_path / "peers").read_text() == "b 3\n"
    old = hb("b", 2, 50, [("a", 1)])      # node b's previous incarnation, recorded while a was generation 1
    n.close()
    loop.close()
    n, clock, loop = node(tmp_path, generation=2)   # a restarted
    assert n.state.peers["b"].generation == 3 and n.members() == ("a",)
    n.on_datagram("eth0", old, ("10.0.0.2", 694))
    n.on_datagram("eth0", hb("b", 3, 2, [("a", 1)]), ("10.0.0.2", 694))   # b's generation, echoing a's old one
    assert n.drop_counters()["replay"] == 1 and n.drop_counters()["stale"] == 1 and n.members() == ("a",)
    assert wire.echoed_generation(n._echo(), "b") == 3     # a echoes b's generation back
    n.on_datagram("eth0", hb("b", 3, 3, [("a", 2)]), ("10.0.0.2", 694))
    assert n.members() == ("a", "b")
    n.close()
    loop.close()


def test_the_peers_file_keeps_configured_nodes_only_and_bad_lines_are_skipped(tmp_path, caplog):
    (tmp_path / "peers").write_text("b 4\nc x\nmallory 9\n\nc 7 extra\nc 2\nb 99999999999999999999999\n")
    assert load_peer_generations(str(tmp_path), ("a", "b", "c")) == {"b": 4, "c": 2}
    assert sum("ignored" in r.getMessage() for r in caplog.records) == 4
    assert load_peer_generations(str(tmp_path / "missing"), ("b",)) == {}


def test_unknown_names_keep_no_state(tmp_path):
    n, clock, loop = node(tmp_path)
    for i in range(5000):
        n.on_datagram("eth0", hb(f"intruder-{i}", 1, 1, [("a", 1)]), ("10.0.0.9", 694))
    assert n.drop_counters()["unknown-node"] == 5000
    assert n.guard.sources() == 0 and set(n.state.peers) == {"b", "c"}
    assert len(n._unknown_logged) == 64
    n.close()
    loop.close()


def test_a_broadcast_queued_twice_is_not_counted_as_a_replay_but_a_replay_is(tmp_path):
    n, clock, loop = node(tmp_path)
    data = hb("b", 3, 1, [("a", 1)])
    n.on_datagram("eth0", data, ("10.0.0.2", 694), True)    # the peer filter's copy
    n.on_datagram("eth0", data, ("10.0.0.2", 694), True)    # the medium socket's copy
    assert n.received == 1 and sum(n.drop_counters().values()) == 0
    n.on_datagram("eth0", data, ("10.0.0.9", 694))           # the same bytes from anyone else
    assert n.drop_counters()["replay"] == 1
    n.close()
    loop.close()


def test_one_signed_packet_with_a_huge_seq_locks_no_peer_out(tmp_path):
    """A holder of the key signs a heartbeat of b with b's generation and seq 2^64-1: as the proof of b's
    freshness right after a started (the floor of b's seqs) and again once b is up (b's replay window).
    b's real heartbeats still count."""
    n, clock, loop = node(tmp_path, generation=1)
    n.on_datagram("eth0", hb("b", 3, 10, []), ("10.0.0.2", 694))             # b has not heard a yet: stale
    n.on_datagram("eth0", hb("b", 3, 2**64 - 1, [("a", 1)]), ("10.0.0.9", 694))   # forged proof
    assert "b" in n.members()
    for seq in range(11, 30):                                                  # b's real heartbeats
        clock.now += 0.1
        n.on_datagram("eth0", hb("b", 3, seq, [("a", 1)]), ("10.0.0.2", 694))
        n._deadline_fired()
    assert n.drop_counters()["replay"] == 0 and n.state.peers["b"].state == "up"
    n.on_datagram("eth0", hb("b", 3, 2**64 - 2, [("a", 1)]), ("10.0.0.9", 694))   # forged again, b is up
    for seq in range(30, 50):
        clock.now += 0.1
        n.on_datagram("eth0", hb("b", 3, seq, [("a", 1)]), ("10.0.0.2", 694))
        n._deadline_fired()
    assert n.drop_counters()["replay"] == 0 and n.state.peers["b"].state == "up"
    n.on_datagram("eth0", hb("b", 3, 25, [("a", 1)]), ("10.0.0.2", 694))     # a real replay is still one
    assert n.drop_counters()["replay"] == 1
    n.close()
    loop.close()


def test_a_forged_seq_window_kept_going_does_not_push_the_real_peer_out(tmp_path):
    n, clock, loop = node(tmp_path, generation=1)
    n.on_datagram("eth0", hb("b", 3, 1, [("a", 1)]), ("10.0.0.2", 694))
    for k in range(40):                        # b's heartbeats, and a forger's far ahead, continued
        clock.now += 0.1
        n.on_datagram("eth0", hb("b", 3, 2**63 + k, [("a", 1)]), ("10.0.0.9", 694))
        n.on_datagram("eth0", hb("b", 3, 2**64 - 1 - k, [("a", 1)]), ("10.0.0.9", 694))   # a third window
        n.on_datagram("eth0", hb("b", 3, 2 + k, [("a", 1)]), ("10.0.0.2", 694))
        n._deadline_fired()
    assert n.state.peers["b"].state == "up"
    assert n.drop_counters()["replay"] == 40    # the third windows only; every real heartbeat counted
    n.close()
    loop.close()
