"""The handoff release frame (hadaemon/io/handoff.py): signed with authkeys, parsed back only when
the digest, the ethertype and the layout are right."""
from __future__ import annotations

from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.core.crm import handoff_frame as handoff

KEYS = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
OTHER = parse_authkeys("auth 1\n1 sha256 fedcba9876543210fedc\n")
MAC = "02:00:00:00:00:01"


def test_a_release_frame_names_node_and_transition_key():
    f = handoff.release_frame(MAC, KEYS, "admin2", "12:4:0:0f3c")
    assert f[:6] == b"\xff" * 6 and f[12:14] == b"\x88\xb5"
    assert handoff.parse_release(f, KEYS) == ("admin2", "12:4:0:0f3c")


def test_another_key_a_changed_byte_or_a_cut_frame_is_refused():
    f = handoff.release_frame(MAC, KEYS, "admin2", "12:4:0:0f3c")
    assert handoff.parse_release(f, OTHER) is None
    for i in range(14, len(f)):
        bad = f[:i] + bytes([f[i] ^ 1]) + f[i + 1:]
        assert handoff.parse_release(bad, KEYS) is None, i
    for n in range(len(f)):
        assert handoff.parse_release(f[:n], KEYS) is None
    assert handoff.parse_release(f[:12] + b"\x08\x06" + f[14:], KEYS) is None   # not our ethertype


def _matches(frame: bytes, tails) -> bool:
    """What hadaemon.io.handoff_helper does with a received frame."""
    return any(frame[12:12 + len(t)] == t for t in tails)


def test_the_helpers_byte_comparison_accepts_exactly_what_parse_release_accepts():
    both = parse_authkeys("auth 2\n1 sha256 0123456789abcdef0123\n2 sha1 another-secret\n")
    first = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")   # the sender signs with key 1
    tails = handoff.release_tails(both, "admin2", "12:4:0:0f3c")
    assert len(tails) == 2
    for sender in (both, first):
        f = handoff.release_frame(MAC, sender, "admin2", "12:4:0:0f3c")
        assert handoff.parse_release(f, both) == ("admin2", "12:4:0:0f3c") and _matches(f, tails)
        assert _matches(f[:6] + b"\x02" * 6 + f[12:], tails)   # from any MAC, as parse_release
        for i in range(12, len(f)):
            bad = f[:i] + bytes([f[i] ^ 1]) + f[i + 1:]
            assert _matches(bad, tails) is (handoff.parse_release(bad, both) == ("admin2", "12:4:0:0f3c")), i
        for n in range(len(f)):
            assert not _matches(f[:n], tails)
    for node, tkey, keys in (("admin1", "12:4:0:0f3c", KEYS), ("admin2", "12:4:0:0f3d", KEYS),
                             ("admin2", "12:4:0:0f3c", OTHER)):
        assert not _matches(handoff.release_frame(MAC, keys, node, tkey), tails)


def test_an_armed_frame_is_never_taken_for_a_release_nor_the_reverse():
    armed = handoff.release_frame(MAC, KEYS, "admin1", "12:4:0:0f3c", magic=handoff.ARMED)
    release = handoff.release_frame(MAC, KEYS, "admin1", "12:4:0:0f3c")
    assert handoff.parse_release(armed, KEYS, magic=handoff.ARMED) == ("admin1", "12:4:0:0f3c")
    assert handoff.parse_release(armed, KEYS) is None and handoff.parse_release(release, KEYS, magic=handoff.ARMED) is None
    assert _matches(armed, handoff.release_tails(KEYS, "admin1", "12:4:0:0f3c", magic=handoff.ARMED))
    assert not _matches(release, handoff.release_tails(KEYS, "admin1", "12:4:0:0f3c", magic=handoff.ARMED))
    assert not _matches(armed, handoff.release_tails(KEYS, "admin1", "12:4:0:0f3c"))
