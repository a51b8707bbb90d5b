"""Text forms read without regular expressions (hactl simulate's start-up avoids loading re): each reader
agrees with the regular expression it replaced on ordinary, odd and malformed inputs."""
from __future__ import annotations

import re

from hadaemon.core.cib.loader import parse_interval_ms
from hadaemon.core.cib.validate import schema_version
from hadaemon.core.policy.working import natural_key

_UNITS = {"ms": 1, "msec": 1, "s": 1000, "sec": 1000, "": 1000, "m": 60000, "min": 60000,
          "h": 3600000, "hr": 3600000, "us": 0, "usec": 0}


def interval_by_regex(text):
    if text is None or text == "":
        return 0
    t = text.strip()
    m = re.match(r"^P(?:T)?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$", t, re.I)
    if m and t.upper() not in ("P", "PT"):
        h, mi, s = (int(x or 0) for x in m.groups())
        return ((h * 60 + mi) * 60 + s) * 1000
    m = re.match(r"^(\d+)\s*([a-zA-Z]*)$", t)
    if not m or m.group(2).lower() not in _UNITS:
        return None
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


INTERVALS = [None, "", " ", "0", "10", " 10 ", "10s", "10 s", "10\ts", "10S", "500ms", "500 msec", "1m", "2min",
             "1h", "3hr", "5us", "7usec", "10x", "10 sx", "s", "ms", "-5", "+5", "1.5s", "10s5", "١٢s", "10ſ",
             "P", "PT", "p", "pt", "PT10S", "pt10s", "PT1H30M", "PT1H2S", "P5M", "P1H", "PT1M1M", "PT2S1H", "PTT5S",
             "P5", "PH", "PT5", "PT 5S", "P T5S", "PT5s ", "5PT", "PT١S", "PT10ſ", "P1D", "PT-1S", "PT1H1M1S",
             "PT0S", "PT00000001S", "PTS", "PT1HM"]


def test_intervals_agree_with_the_regular_expressions():
    for text in INTERVALS:
        assert parse_interval_ms(text) == interval_by_regex(text), text


def test_schema_versions_agree_with_the_regular_expression():
    for name in ("pacemaker-3.7", " pacemaker-1.0 ", "pacemaker-10.22", "pacemaker-3", "pacemaker-3.", "pacemaker-.3",
                 "pacemaker-3.7.1", "pacemaker-a.b", "pacemaker-١.٢", "Pacemaker-3.7", "pacemaker-3.7x",
                 "transitional-0.6", "pacemaker-0.7", "none", "", "pacemaker-+3.7"):
        m = re.match(r"^pacemaker-(\d+)\.(\d+)$", name.strip())
        assert schema_version(name) == ((int(m.group(1)), int(m.group(2))) if m else None), name
    assert schema_version("pacemaker-next") == (999, 0) and schema_version(None) is None


def test_natural_key_agrees_with_the_regular_expression():
    for name in ("node1", "node10", "Node2", "n1a22b", "10", "", "abc", "a1b2c3", "x٣y", "node-01", "0007"):
        parts = [p for p in re.split(r"(\d+)", name.lower()) if p]
        assert natural_key(name) == [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts], name
    assert sorted(["node10", "node9", "Node1"], key=natural_key) == ["Node1", "node9", "node10"]
