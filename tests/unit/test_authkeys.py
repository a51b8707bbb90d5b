"""authkeys: methods, active key, file mode refusal, every error message, signing and verifying."""
import hashlib
import hmac
import os
import zlib

import pytest

from hadaemon.core.heartbeat.authkeys import AuthKeys, load_authkeys, parse_authkeys
from hadaemon.core.errors import ConfigError

SCENARIO = "auth 1\n1 sha1 9f2b4c6d8e0a1b3c\n"


def error(text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        parse_authkeys(text, "authkeys")
    return str(ei.value)


def test_scenario_sha1():
    k = parse_authkeys(SCENARIO)
    assert k.active == k.active_index == 1 and k.active_method == "sha1"
    assert k.keys[1].secret == b"9f2b4c6d8e0a1b3c"
    assert k.warnings == []
    data = b"hello cluster"
    assert k.sign(data) == hmac.new(b"9f2b4c6d8e0a1b3c", data, hashlib.sha1).digest()
    assert k.digest_size(1) == 20


@pytest.mark.parametrize("method,size,algo", [("sha256", 32, hashlib.sha256), ("sha1", 20, hashlib.sha1),
                                              ("md5", 16, hashlib.md5)])
def test_hmac_methods(method, size, algo):
    k = parse_authkeys(f"# comment\n\nauth 3   # active\n3 {method} 4f1d0c8e2b7a9d6e5c3b1a0f  # rotated in May\n")
    assert k.keys[3].secret == b"4f1d0c8e2b7a9d6e5c3b1a0f" and k.warnings == []
    d = k.sign(b"x")
    assert len(d) == size == k.digest_size(3)
    assert d == hmac.new(b"4f1d0c8e2b7a9d6e5c3b1a0f", b"x", algo).digest()
    assert k.verify(3, b"x", d)
    assert not k.verify(3, b"y", d)
    assert not k.verify(3, b"x", d[:-1] + bytes([d[-1] ^ 1]))
    assert not k.verify(3, b"x", d[:-1])
    assert not k.verify(4, b"x", d)
    assert k.digest_size(4) is None


def test_crc_loads_with_loud_warning_and_is_not_keyed():
    k = parse_authkeys("auth 2\n2 crc\n", "/etc/ha.d/authkeys")
    assert k.sign(b"abc") == zlib.crc32(b"abc").to_bytes(4, "big")
    assert k.warnings == ["/etc/ha.d/authkeys:2: warning: key 2 uses crc, which authenticates NOTHING: anyone on "
                          "the network can forge cluster packets with key 2; use sha256"]
    k2 = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n2 crc ignored\n")
    assert len(k2.warnings) == 2 and "crc takes no secret" in k2.warnings[1]


def test_any_listed_key_verifies_active_one_signs():
    k = parse_authkeys("auth 2\n1 sha1 oldoldoldoldoldold\n2 sha256 newnewnewnewnewnew\n")
    old = parse_authkeys("auth 1\n1 sha1 oldoldoldoldoldold\n")
    assert k.verify(1, b"m", old.sign(b"m"))
    assert k.sign(b"m") != old.sign(b"m") and k.verify(2, b"m", k.sign(b"m"))
    assert k.sign_with(1, b"m") == old.sign(b"m")


def test_secret_is_one_word_as_in_heartbeat():
    k = parse_authkeys("auth 1\n1 sha1 correcthorse battery staple\n", "ak")
    assert k.keys[1].secret == b"correcthorse"
    assert k.warnings == ["ak:2: warning: key 1: only the first word is the secret (as in Heartbeat); the rest "
                          "of the line is ignored",
                          "ak:2: warning: key 1 is short (12 characters); use at least 16, e.g. from "
                          "`openssl rand -hex 16`"]


def test_short_key_warning():
    k = parse_authkeys("auth 1\n1 sha256 short\n", "ak")
    assert k.warnings == ["ak:2: warning: key 1 is short (5 characters); use at least 16, e.g. from "
                          "`openssl rand -hex 16`"]


def test_method_case_insensitive_and_index_zero_and_fifteen():
    k = parse_authkeys("auth 0\n0 SHA1 0123456789abcdef\n15 md5 0123456789abcdef\n")
    assert k.keys[0].method == "sha1" and k.keys[15].method == "md5"


ERRORS = [
    ("", "authkeys: no 'auth N' line selecting the active key"),
    ("1 sha1 0123456789abcdef\n", "authkeys: no 'auth N' line selecting the active key"),
    ("auth 2\n1 sha1 0123456789abcdef\n", "authkeys:1: auth 2: no key 2 defined in this file"),
    ("auth\n", "authkeys:1: auth takes one key number: auth N"),
    ("auth 1 2\n", "authkeys:1: auth takes one key number: auth N"),
    ("auth x\n", "authkeys:1: auth: invalid key number 'x' (use 0 to 15)"),
    ("auth 16\n", "authkeys:1: auth: invalid key number '16' (use 0 to 15)"),
    ("auth 1\nauth 1\n", "authkeys:2: auth given twice (first on line 1)"),
    ("auth 1\n16 sha1 0123456789abcdef\n", "authkeys:2: invalid key number '16' (use 0 to 15)"),
    ("auth 1\nsha1 0123456789abcdef\n",
     "authkeys:2: expected 'auth N' or 'N METHOD SECRET', got 'sha1' (methods: sha256, sha1, md5, crc)"),
    ("auth 1\n1\n", "authkeys:2: key 1: missing method (use sha256, sha1, md5, crc)"),
    ("auth 1\n1 sha512 0123456789abcdef\n", "authkeys:2: key 1: unknown method 'sha512' (use sha256, sha1, md5, crc)"),
    ("auth 1\n1 sha1\n", "authkeys:2: key 1: method sha1 needs a secret: 1 sha1 SECRET"),
    ("auth 1\n1 sha1 0123456789abcdef\n1 md5 0123456789abcdef\n", "authkeys:3: key 1 defined twice (first on line 2)"),
]


@pytest.mark.parametrize("text,message", ERRORS)
def test_error_messages(text, message):
    assert error(text) == message


def test_errors_never_echo_the_secret():
    assert "supersecret" not in error("auth 1\n99 sha1 supersecretsupersecret\n")
    assert "supersecret" not in error("auth 1\n1 sha9 supersecretsupersecret\n")


def test_load_refuses_group_or_other_access(tmp_path):
    p = tmp_path / "authkeys"
    p.write_text(SCENARIO)
    for mode in (0o644, 0o640, 0o604, 0o660, 0o601, 0o610):
        os.chmod(p, mode)
        with pytest.raises(ConfigError) as ei:
            load_authkeys(str(p))
        assert str(ei.value) == (f"{p}: mode {mode:04o} lets group or others access the keys; run: chmod 600 {p}")
        assert isinstance(load_authkeys(str(p), check_mode=False), AuthKeys)
    for mode in (0o600, 0o400):
        os.chmod(p, mode)
        assert load_authkeys(str(p)).active == 1


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_authkeys(str(tmp_path / "missing"))
    assert str(ei.value) == f"{tmp_path / 'missing'}: cannot read: No such file or directory"
    with pytest.raises(ConfigError) as ei:
        load_authkeys(str(tmp_path))
    assert str(ei.value).startswith(f"{tmp_path}: ")
    p = tmp_path / "authkeys"
    p.write_bytes(b"auth 1\n1 sha1 \xff\xfe0123456789abcdef\n")
    os.chmod(p, 0o600)
    with pytest.raises(ConfigError) as ei:
        load_authkeys(str(p))
    assert str(ei.value) == f"{p}:2: not valid UTF-8 text"


def test_unicode_digits_are_not_key_numbers():
    assert error("auth ²\n") == "authkeys:1: auth: invalid key number '²' (use 0 to 15)"
    assert error("auth 1\n١ sha1 0123456789abcdef\n").startswith("authkeys:2: expected 'auth N'")


def test_fuzzed_text_only_ever_raises_config_error():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    words = st.sampled_from(["auth", "1", "2", "16", "sha1", "sha256", "md5", "crc", "#", "²", "0123456789abcdef"])
    line = st.lists(st.one_of(words, st.text(max_size=6)), max_size=4).map(" ".join)

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(st.lists(line, max_size=6))
    def check(lines):
        try:
            k = parse_authkeys("\n".join(lines), "f")
        except ConfigError as e:
            assert str(e).startswith("f")
        else:
            assert k.active in k.keys and k.verify(k.active, b"x", k.sign(b"x"))

    check()
