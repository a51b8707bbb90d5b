"""Configurations the table cannot take are refused with file:line (one weight limit, no virtual service),
and text from a bad file is escaped before it reaches a log or D-Bus (pure)."""
import pytest

from hadaemon.core.director.config import parse_config
from hadaemon.core.director.lvs_table import MAX_WEIGHT, Destination, TableError
from hadaemon.core.director.model import printable
from hadaemon.core.director.table import check_table
from hadaemon.core.errors import ConfigError


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        check_table(parse_config(text, "/etc/ha.d/x.cf"))
    return e.value


def test_one_weight_limit_for_config_and_table():
    assert MAX_WEIGHT == 65535
    check_table(parse_config("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 65535\n", "x.cf"))
    e = refused("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 1\n\treal=10.0.0.3:80 gate 65536\n")
    assert e.line == 3 and "weight must be 0..65535" in str(e) and str(e).startswith("/etc/ha.d/x.cf:3:")
    with pytest.raises(TableError):
        Destination("10.0.0.2", 80, "gate", 65536)


def test_the_reported_case_three_reals_of_2147483647():
    text = "virtual=10.0.0.1:80\n" + "".join(f"\treal=10.0.0.{i}:80 gate 2147483647\n" for i in (2, 3, 4))
    e = refused(text)
    assert e.line == 2 and "65535" in e.message


def test_sum_of_weights_fits_the_nft_modulus():
    # 65,537 reals of weight 65535 (two ranges) exceed 2^32 - 1: refused on the real that crosses it
    text = ("virtual=10.0.0.1:80\n\treal=10.1.0.0->10.1.255.255:80 gate 65535\n"
            "\treal=10.2.0.0->10.2.0.1:80 gate 65535\n")
    e = refused(text)
    assert e.line == 3 and "add up to more than 4294967295" in e.message


@pytest.mark.parametrize("text, line, what", [
    ("", 1, "the file is empty"),
    ("\n\n", 2, "no virtual service"),
    ("checktimeout=3\nquiescent=yes\n# no virtual\n", 3, "no virtual service"),
])
def test_a_file_without_virtual_service_is_refused(text, line, what):
    e = refused(text)
    assert e.line == line and what in e.message and "remove every virtual service" in e.message


def test_binary_bytes_in_a_bad_file_are_escaped():
    raw = b"virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tbad\x00\x1b[31m\xff\xfe=1\n"
    with pytest.raises(ConfigError) as e:
        parse_config(raw.decode("utf-8", "surrogateescape"), "x.cf")
    msg = str(e.value)
    assert msg.isprintable() and "\\x00" in msg and "\\x1b" in msg and "\\xff\\xfe" in msg
    msg.encode("utf-8")          # valid UTF-8 (a D-Bus string): no lone surrogates left


def test_printable_keeps_ordinary_text_and_bounds_length():
    assert printable("200 OK, receive 'é' not found") == "200 OK, receive 'é' not found"
    assert printable("a\tb\nc") == "a\\x09b\\x0ac"
    assert printable("x" * 50, limit=10) == "x" * 10 + "..."
