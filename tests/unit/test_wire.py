"""Wire format: round trips, authentication, drops by reason, fuzzing (never another exception), replay guard."""
import random
import struct
from dataclasses import replace

import pytest

from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.heartbeat.wire import MAX_DATAGRAM, Drop, Packet, ReplayGuard, decode, encode, fragment_capacity

KEYS = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n2 sha1 rotatedrotatedkey\n3 crc\n")
OTHER = parse_authkeys("auth 1\n1 sha256 a-different-secret-entirely\n")
HB = Packet(kind="hb", src="admin1.tuchao.com", generation=7, seq=42, link="eth0", payload=b"state")
MSG = Packet(kind="msg", src="admin1", dst="admin2", generation=3, seq=9, link="eth1", payload=b"x" * 100,
             channel="crm", msg_id=77, frag=1, nfrags=3, compressed=True, broadcast=True, dst_generation=5,
             stream_id=2, stream_seq=123)
ACK = Packet(kind="ack", src="admin2", dst="admin1", generation=5, seq=10, link="eth1", dst_generation=3,
             stream_id=2, ack_seq=120, sack=((122, 125), (130, 130)))


@pytest.mark.parametrize("pkt", [HB, MSG, ACK, Packet(kind="hb", src="n")], ids=["hb", "msg", "ack", "minimal"])
def test_round_trip(pkt):
    assert decode(encode(pkt, KEYS), KEYS) == pkt


def test_unicode_names_round_trip():
    pkt = replace(MSG, src="nœud-1", dst="ノード2", channel="ccm/membership")
    assert decode(encode(pkt, KEYS), KEYS) == pkt


@pytest.mark.parametrize("active", [1, 2, 3])
def test_every_method_round_trips_and_verifies_with_any_listed_key(active):
    signer = parse_authkeys(f"auth {active}\n1 sha256 0123456789abcdef0123456789abcdef\n2 sha1 rotatedrotatedkey\n"
                            "3 crc\n")
    assert decode(encode(MSG, signer), KEYS) == MSG


def reason(data, auth=KEYS, **kw):
    with pytest.raises(Drop) as ei:
        decode(data, auth, **kw)
    return ei.value.reason


def test_drop_reasons():
    data = encode(MSG, KEYS)
    assert reason(data, OTHER) == "auth"                        # wrong key
    assert reason(data[:-1] + bytes([data[-1] ^ 1])) == "auth"  # tampered payload
    assert reason(data[:5] + bytes([data[5] ^ 1]) + data[6:]) == "auth"   # tampered digest
    assert reason(data[:3] + b"\x09" + data[4:]) == "auth"      # key index not configured
    assert reason(data[:2] + b"\x02" + data[3:]) == "version"
    assert reason(b"XX" + data[2:]) == "malformed"
    assert reason(b"") == "malformed"
    assert reason(b"HD\x01") == "malformed"
    assert reason(data[:40]) == "malformed"                     # truncated inside the fixed header
    assert reason(data, max_size=len(data) - 1) == "oversized"
    assert reason(b"\0" * 70000) == "oversized"


def forge(body: bytes, auth=KEYS) -> bytes:
    head = wire.MAGIC + bytes([wire.VERSION, auth.active_index])
    return head + auth.sign(head + body) + body


def fixed(**kw):
    f = dict(code=1, flags=0, generation=1, seq=1, dst_generation=0, stream_id=0, stream_seq=0, msg_id=0, ack_seq=0,
             frag=0, nfrags=0)
    f.update(kw)
    return wire._FIXED.pack(*f.values())


NAMES = b"\x01a\x01b\x00\x00"


@pytest.mark.parametrize("body", [
    fixed(code=9) + NAMES + b"\0",                              # unknown kind
    fixed(flags=0x80) + NAMES + b"\0",                          # unknown flag
    fixed() + b"\x05ab",                                        # name longer than the packet
    fixed() + b"\x41" + b"a" * 65 + b"\0\0\0\0",               # name longer than MAX_NAME
    fixed() + b"\x02\xff\xfe\x00\x00\x00\x00",                 # name not UTF-8
    fixed() + b"\x00\x00\x00\x00\x00",                          # empty source
    fixed() + NAMES + b"\x21" + b"\0" * 16 * 33,                # too many sack ranges
    fixed() + NAMES + b"\x02" + b"\0" * 16,                     # sack count beyond the packet
    fixed() + NAMES + b"\x01" + struct.pack("!QQ", 5, 4),       # inverted sack range
    fixed(code=2, nfrags=0, stream_seq=1) + b"\x01a\x01b\x00\x01c\x00",   # msg with nfrags 0
    fixed(code=2, frag=2, nfrags=2, stream_seq=1) + b"\x01a\x01b\x00\x01c\x00",
    fixed(code=2, frag=0, nfrags=1, stream_seq=0) + b"\x01a\x01b\x00\x01c\x00",
    fixed(code=2, frag=0, nfrags=1, stream_seq=1) + b"\x01a\x01b\x00\x00\x00",   # msg without channel
    fixed()[:-3],                                               # truncated fixed part
])
def test_authenticated_but_malformed(body):
    assert reason(forge(body)) == "malformed"


def test_encode_refuses_unsendable_packets():
    with pytest.raises(ValueError):
        encode(replace(HB, kind="bogus"), KEYS)
    with pytest.raises(ValueError):
        encode(replace(HB, src=""), KEYS)
    with pytest.raises(ValueError):
        encode(replace(HB, src="n" * 65), KEYS)
    with pytest.raises(ValueError):
        encode(replace(HB, seq=-1), KEYS)
    with pytest.raises(ValueError):
        encode(replace(ACK, sack=((1, 2),) * 33), KEYS)
    with pytest.raises(ValueError):
        encode(replace(HB, payload=b"x" * 2000), KEYS, max_size=MAX_DATAGRAM)


def test_fragment_capacity_fits_datagram_for_longest_link_and_digest():
    src, dst, ch = "a" * 64, "b" * 64, "c" * 64
    cap = fragment_capacity(src, dst, ch)
    pkt = replace(MSG, src=src, dst=dst, channel=ch, link="x" * 15, payload=b"p" * cap)
    assert len(encode(pkt, KEYS)) <= MAX_DATAGRAM
    assert 900 < cap < MAX_DATAGRAM
    assert len(encode(replace(pkt, payload=b"p" * (cap + 1)), KEYS)) > MAX_DATAGRAM


def test_fuzz_random_and_mutated_inputs_only_ever_drop():
    rng = random.Random(1234)
    seeds = [encode(p, KEYS) for p in (HB, MSG, ACK)]
    reasons = {}
    accepted = 0
    for i in range(30000):
        mode = i % 4
        if mode == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        elif mode == 1:      # bit flips in a valid packet
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif mode == 2:      # truncation / extension
            s = rng.choice(seeds)
            data = s[:rng.randrange(len(s))] if rng.random() < 0.5 else s + bytes(rng.randrange(1, 50))
        else:                # authenticated random bodies: exercises the parser behind a valid digest
            body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 150)))
            r = rng.random()
            if r < 0.3:
                body = fixed(code=rng.randrange(0, 5), flags=rng.randrange(0, 4)) + body
            elif r < 0.6:   # a well-formed hb/ack prefix with random sack count and payload
                body = fixed(code=rng.choice((1, 3))) + NAMES + bytes([rng.randrange(0, 3)]) + body
            data = forge(body)
        try:
            pkt = decode(bytes(data), KEYS)
            accepted += 1
            assert isinstance(pkt, Packet)
        except Drop as d:
            assert d.reason in ("oversized", "malformed", "auth", "version")
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
    assert reasons["auth"] > 1000 and reasons["malformed"] > 1000 and reasons["version"] > 0
    assert accepted > 0   # some forged-with-the-key random bodies happen to parse; that's fine


def test_fuzz_with_hypothesis():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(st.binary(max_size=300), st.booleans())
    def check(blob, sign):
        data = forge(blob) if sign else blob
        try:
            decode(data, KEYS)
        except Drop as d:
            assert d.reason in ("oversized", "malformed", "auth", "version")

    check()


def hb(seq, gen=1, src="a", link="eth0", kind="hb"):
    return Packet(kind=kind, src=src, generation=gen, seq=seq, link=link)


def test_replay_guard_rejects_repeats_and_old():
    g = ReplayGuard(window=8)
    assert g.check(hb(5)) is None
    assert g.check(hb(5)) == "replay"
    assert g.check(hb(6)) is None
    assert g.check(hb(4)) is None            # reordered, within window, unseen
    assert g.check(hb(4)) == "replay"
    assert g.check(hb(12)) is None
    assert g.check(hb(3)) == "replay"        # beyond the window: too old to tell
    assert g.check(hb(7)) is None
    assert g.check(hb(7)) == "replay"
    assert g.check(hb(1000)) is None         # a jump: the window it left (top 12) stays beside it
    assert g.check(hb(2)) == "replay"        # too old for both
    assert g.check(hb(998)) is None and g.check(hb(998)) == "replay"


def test_replay_guard_keys_by_kind_and_link():
    g = ReplayGuard()
    assert g.check(hb(5)) is None
    assert g.check(hb(5, link="eth1")) is None
    assert g.check(hb(5, kind="msg")) is None
    assert g.check(hb(5, src="b")) is None
    assert g.check(hb(5, link="eth1")) == "replay"


def test_replay_guard_generations():
    g = ReplayGuard()
    assert g.check(hb(100, gen=3)) is None
    g.pin("a", 3)                             # which generation is believed is the membership's call
    assert g.check(hb(1, gen=4)) is None      # restarted node: sequence starts again, own windows
    assert g.check(hb(101, gen=3)) is None
    assert g.check(hb(101, gen=3)) == "replay"
    g.pin("a", 4)                             # ... it believes 4: older generations' windows go
    assert g.generation("a") == 4
    assert g.check(hb(1, gen=4)) == "replay"
    assert g.check(hb(2, gen=4)) is None
    g.forget("a")
    assert g.check(hb(1, gen=4)) is None


def test_replay_guard_floor_rejects_what_was_sent_before_the_peer_proved_freshness():
    g = ReplayGuard()
    assert g.check(hb(50)) is None            # a replayed old packet arrives first
    g.pin("a", 1, floor=60)                   # the peer's packet 60 proved it hears us
    assert g.check(hb(45)) == "replay"        # within the window and unseen, but older than the proof
    assert g.check(hb(59, kind="msg", link="eth1")) == "replay"
    assert g.check(hb(61)) is None


def test_replay_guard_memory_is_bounded_per_source_and_in_sources():
    g = ReplayGuard(max_sources=10)
    g.pin("a", 5)
    for gen in range(6, 500):                 # ever new candidate generations: one kept at a time
        assert g.check(hb(1, gen=gen)) is None
    assert len(g._gens["a"]) == 2 and 5 in g._gens["a"]
    assert all(g.check(hb(1, src=f"n{i}")) is None for i in range(9))
    assert g.check(hb(1, src="one-too-many")) == "unknown-node"
    assert g.sources() == 10


def test_replay_guard_windows_per_generation_are_bounded():
    """The link is the sender's label: a key holder inventing link names gets no window beyond the bound,
    while the windows it already has keep working."""
    g = ReplayGuard(max_windows=6)
    assert g.check(hb(1)) is None
    for i in range(5):
        assert g.check(hb(1, link=f"forged{i}")) is None
    for i in range(5, 2000):
        assert g.check(hb(1, link=f"forged{i}")) == "malformed"
    assert len(g._gens["a"][1].windows) == 6
    assert g.check(hb(2)) is None and g.check(hb(2)) == "replay"
    assert g.check(hb(1, gen=2, link="forged-new")) is None     # another generation: windows of its own


def test_replay_guard_forged_huge_seqs_do_not_push_the_real_sender_out():
    """A holder of the key signs seqs far ahead of the sender's (as many as it likes): the sender's own
    packets keep counting, once each, as long as it keeps sending; a third window is refused while two
    are active; a jump nobody continues is dropped once stale."""
    g = ReplayGuard(window=8, stale_after=1.0)
    t = 100.0
    for seq in range(1, 6):
        assert g.check(hb(seq), now=t) is None
    assert g.check(hb(2**63), now=t) is None          # forged: a second window
    assert g.check(hb(2**63 + 1), now=t) is None      # forged, continued
    for seq in range(6, 40):                          # the sender's packets, every 0.1 s
        t += 0.1
        assert g.seen("a", 1, "hb", "eth0", seq, t) is False
        assert g.check(hb(seq), now=t) is None
        assert g.check(hb(2**63 + 2 + seq), now=t) is None     # the forger keeps its window going
        assert g.check(hb(2**64 - seq), now=t) == "replay"     # a third window: refused
    assert g.check(hb(20), now=t) == "replay" and g.seen("a", 1, "hb", "eth0", 20, t)
    t += 1.5                                          # the forger stops; the sender goes on
    assert g.check(hb(40), now=t) is None
    assert g.check(hb(41), now=t) is None
    assert len(g._gens["a"][1].windows[("hb", "eth0")]) == 1        # the forged window was dropped
    assert g.check(hb(2**63 + 60), now=t) is None     # a new forged jump: a second window again ...
    assert g.check(hb(42), now=t) is None             # ... which costs the sender nothing


def test_replay_guard_a_sender_silent_here_finds_its_window_again():
    g = ReplayGuard(window=8, stale_after=1.0)
    for seq in (1, 2, 3):
        assert g.check(hb(seq), now=100.0) is None
    assert g.check(hb(2**63), now=100.5) is None      # forged while the sender is silent here
    for k in range(20):                               # the forger keeps it going; the sender is away
        assert g.check(hb(2**63 + 1 + k), now=101 + k) is None
    assert g.check(hb(4), now=121.0) is None          # the sender comes back: its window is still there
    assert g.check(hb(3), now=121.0) == "replay"


def test_replay_guard_a_real_jump_is_believed_at_once_or_after_stale_after():
    g = ReplayGuard(window=8, stale_after=1.0)
    for seq in (1, 2, 3):
        assert g.check(hb(seq), now=100.0) is None
    assert g.check(hb(5000), now=100.1) is None       # many packets to others meanwhile: a jump, believed
    assert g.check(hb(5001), now=100.2) is None
    assert g.check(hb(4), now=100.3) is None          # the gap below it still counts (once)
    assert g.check(hb(4), now=100.3) == "replay"
    assert g.check(hb(9000), now=100.4) == "replay"   # a third window while both are active
    assert g.check(hb(9000), now=101.4) is None       # the lower one is stale now: believed
    assert g.check(hb(5002), now=101.5) is None


def test_replay_guard_seen_agrees_with_check_around_jumps():
    import random

    rnd = random.Random(13)
    for _ in range(300):
        g = ReplayGuard(window=8, stale_after=1.0)
        base, now = 0, 100.0
        for _ in range(60):
            now += rnd.choice([0.0, 0.1, 0.6, 1.5])
            r = rnd.random()
            if r < 0.1:
                base += rnd.choice([9, 50, 2**40])           # jumps (the sender's, or a forged one)
            seq = max(1, base + rnd.randint(-12, 12))
            if rnd.random() < 0.05:
                seq = 2**64 - rnd.randint(1, 20)
            predicted = g.seen("a", 1, "hb", "eth0", seq, now)
            got = g.check(hb(seq), now=now)
            assert not predicted or got == "replay", (seq, got)   # seen() never drops what check() takes
            if got is None:
                assert g.check(hb(seq), now=now) == "replay"      # and everything is taken once
            base = max(base, seq) if seq < 2**63 else base


def test_replay_guard_seen_matches_check_without_recording():
    g = ReplayGuard(window=8)
    for seq in (5, 7):
        g.check(hb(seq))
    assert [g.seen("a", 1, "hb", "eth0", s) for s in (4, 5, 6, 7, 8)] == [False, True, False, True, False]
    assert g.seen("a", 1, "hb", "eth0", 7 - 8) is True      # beyond the window: too old, as check() says
    assert g.seen("b", 1, "hb", "eth0", 5) is False
    assert g.check(hb(6)) is None             # seen() recorded nothing


def test_peek_reads_the_header_without_authenticating():
    data = encode(MSG, KEYS)
    assert wire.peek(data, KEYS) == ("admin1", 3, "msg", "eth1", 9)
    forged = data[:-1] + bytes([data[-1] ^ 1])
    assert wire.peek(forged, KEYS) == ("admin1", 3, "msg", "eth1", 9)      # not authenticated: only a hint
    for bad in (b"", b"HD", b"HD\x01\x09" + data[4:], data[:30], b"XX" + data[2:], data[:2] + b"\x07" + data[3:]):
        assert wire.peek(bad, KEYS) is None


def test_echo_payload_round_trip_and_garbage():
    payload = wire.encode_echo([("a", 3), ("nœud", 2**64 - 1), ("b", 0)])
    assert wire.echoed_generation(payload, "nœud") == 2**64 - 1
    assert wire.echoed_generation(payload, "b") == 0
    assert wire.echoed_generation(payload, "c") is None
    assert wire.echoed_generation(b"", "a") is None
    rnd = random.Random(5)
    for _ in range(2000):
        junk = rnd.randbytes(rnd.randint(0, 40))
        assert wire.echoed_generation(junk, "a") is None or isinstance(wire.echoed_generation(junk, "a"), int)


def test_replay_guard_captured_traffic_replayed():
    g = ReplayGuard()
    captured = [encode(hb(s, link="eth0"), KEYS) for s in range(1, 200)]
    assert all(g.check(decode(d, KEYS)) is None for d in captured)
    assert all(g.check(decode(d, KEYS)) == "replay" for d in captured)
