"""core/inet: numeric addresses parsed and printed exactly as the C library does (socket is the oracle)."""

import random
import socket

import pytest

from hadaemon.core.inet import canonical_ipv6, inet_aton, inet_ntop6, inet_pton6, ipv4_text


def libc_aton(s):
    try:
        return socket.inet_ntoa(socket.inet_aton(s))
    except (OSError, ValueError):
        return None


def libc_pton6(s):
    try:
        return socket.inet_pton(socket.AF_INET6, s)
    except (OSError, ValueError):
        return None


def ours_aton(s):
    n = inet_aton(s)
    return None if n is None else ipv4_text(n)


@pytest.mark.parametrize("text, want", [
    ("192.168.18.100", "192.168.18.100"), ("127.1", "127.0.0.1"), ("10", "0.0.0.10"),
    ("0x7f.1", "127.0.0.1"), ("010.0.0.1", "8.0.0.1"), ("4294967295", "255.255.255.255"),
    ("1.2.3.4 anything", "1.2.3.4"), ("08.1.1.1", None), ("1.2.3.256", None), ("1..2", None),
    ("1.2.3.4.", None), ("", None), ("0x", None), ("4294967296", None), ("1.16777216", None),
])
def test_inet_aton_cases(text, want):
    assert ours_aton(text) == want == libc_aton(text)


@pytest.mark.parametrize("text, want", [
    ("::", "::"), ("::1", "::1"), ("::2", "::2"), ("2001:DB8::5", "2001:db8::5"), ("1::", "1::"),
    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"), ("::1.2.3.4", "::1.2.3.4"), ("::ffff:0:1", "::ffff:0.0.0.1"),
    ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
    ("fe80::1%eth0", None), (":::", None), ("1:", None), (":1::", None), ("12345::", None),
    ("::ffff:01.2.3.4", None), ("1:2:3:4:5:6:7:8:9", None), ("1:2:3:4:5:6:7:8::", None),
])
def test_ipv6_cases(text, want):
    assert canonical_ipv6(text) == want
    b = libc_pton6(text)
    assert want == (None if b is None else socket.inet_ntop(socket.AF_INET6, b))


def test_agrees_with_the_c_library_on_random_text():
    r = random.Random(8)
    for _ in range(20000):
        s = "".join(r.choice("0123456789xXaAfF. \t") for _ in range(r.randint(0, 14)))
        assert ours_aton(s) == libc_aton(s), repr(s)
    for _ in range(20000):
        words = [format(r.choice([0, 0, 1, 0xFFFF, r.randrange(65536)]), r.choice(["x", "X", "04x"]))
                 for _ in range(8)]
        k = r.randint(0, 8)
        j = r.randint(k, 8)
        s = ":".join(words[:k]) + r.choice(["::", ":", "::", ":::"]) + ":".join(words[j:])
        if r.random() < .3:
            s = s.rsplit(":", 1)[0] + ":" + ".".join(r.choice(["0", "1", "255", "256", "01"])
                                                     for _ in range(r.choice([3, 4, 4, 5])))
        assert inet_pton6(s) == libc_pton6(s), repr(s)
    for _ in range(20000):
        b = b"".join(r.choice([0, 0, 0, 1, 0xFFFF, r.randrange(65536)]).to_bytes(2, "big") for _ in range(8))
        assert inet_ntop6(b) == socket.inet_ntop(socket.AF_INET6, b), b.hex()
