"""ha-web's pure parts: the login throttle, sessions and CSRF tokens, --listen, meta-data parsing, the
field an error names."""
from __future__ import annotations

import argparse

import pytest

from hadaemon.daemons.web import parse_listen
from hadaemon.web.agents import parse_meta_data
from hadaemon.web.actions import _field_of
from hadaemon.web.auth import Sessions, Throttle


def test_throttle_doubles_and_forgets():
    t = Throttle(base=1.0, max_delay=8.0, forget_after=100.0)
    keys = ["user:a", "addr:1"]
    assert t.wait(keys, 0.0) == 0
    t.failed(keys, 10.0)
    assert t.wait(keys, 10.0) == pytest.approx(1.0)
    assert t.wait(keys, 11.0) == 0
    t.failed(keys, 11.0)
    assert t.wait(keys, 11.0) == pytest.approx(2.0)
    for now in (13.0, 17.0, 25.0, 33.0):
        t.failed(keys, now)
    assert t.wait(keys, 33.0) == pytest.approx(8.0)  # capped
    assert t.wait(["user:a"], 200.0) == 0             # forgotten after a quiet hour
    t.failed(["user:b", "addr:2"], 0.0)
    assert t.wait(["user:c", "addr:2"], 0.5) == pytest.approx(0.5)  # the address alone slows another user
    t.succeeded(["user:b", "addr:2"])
    assert t.wait(["user:c", "addr:2"], 0.5) == 0


def test_sessions_expire_when_idle_and_tokens_differ():
    s = Sessions(idle_timeout=10.0)
    a = s.create("alice", True, 0.0)
    b = s.create("bob", False, 0.0)
    assert a.token != b.token and a.csrf != b.csrf and len(a.token) >= 40
    assert s.get(a.token, 9.0) is a           # use renews it
    assert s.get(a.token, 18.0) is a
    assert s.get(b.token, 18.0) is None       # idle too long
    assert s.get("forged", 1.0) is None and s.get(None, 1.0) is None
    assert a.csrf_ok(a.csrf) and not a.csrf_ok(b.csrf) and not a.csrf_ok("") and not a.csrf_ok(None)
    s.drop(a.token)
    assert s.get(a.token, 19.0) is None


def test_sessions_are_bounded():
    s = Sessions(idle_timeout=100.0, limit=3)
    tokens = [s.create(f"u{i}", False, float(i)).token for i in range(5)]
    assert len(s) == 3 and s.get(tokens[0], 5.0) is None and s.get(tokens[4], 5.0) is not None


def test_parse_listen():
    assert parse_listen("127.0.0.1:7631") == ("127.0.0.1", 7631)
    assert parse_listen(":7630") == ("", 7630)
    assert parse_listen("7630") == ("", 7630)
    assert parse_listen("[::1]:7630") == ("::1", 7630)
    for bad in ("host:http", "1.2.3.4:0", ":70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_listen(bad)


def test_parse_meta_data():
    md = parse_meta_data("""<?xml version="1.0"?><resource-agent name="X"><shortdesc>An  agent</shortdesc>
      <parameters><parameter name="ip" required="1" unique="1"><shortdesc>The
      address</shortdesc><content type="string"/></parameter>
      <parameter name="count"><content type="integer" default="3"/></parameter></parameters>
      <actions><action name="start" timeout="20s"/><action name="validate-all" timeout="20s"/></actions>
      </resource-agent>""")
    assert md["shortdesc"] == "An agent"
    assert md["parameters"][0] == {"name": "ip", "required": True, "unique": True, "type": "string", "default": "",
                                   "shortdesc": "The address", "longdesc": ""}
    assert md["parameters"][1]["type"] == "integer" and md["parameters"][1]["default"] == "3"
    assert [a["name"] for a in md["actions"]] == ["start", "validate-all"]


def test_field_of_an_error():
    payload = {"resource": "webserver", "node": "admin9", "params": {"ip": "1.2.3.4"}, "meta": {}}
    assert _field_of("no node 'admin9' (nodes: admin1, admin2)", payload) == "node"
    assert _field_of("ip: not an address", payload) == "params.ip"
    assert _field_of("something else went wrong", payload) == ""


def test_sessions_end_at_max_age_even_when_used():
    s = Sessions(idle_timeout=10.0, max_age=25.0)
    a = s.create("alice", True, 100.0)
    for now in (108.0, 116.0, 124.0):
        assert s.get(a.token, now) is a
    assert a.expires == 125.0
    assert s.get(a.token, 125.0) is None


def test_sessions_survive_a_restart_through_the_file(tmp_path):
    path = tmp_path / "sessions.json"
    s = Sessions(idle_timeout=600.0, path=str(path))
    a = s.create("alice", True, 1000.0, ["alice", "haclient"])
    b = s.create("bob", False, 1000.0, ["bob"])
    gone = s.create("carol", True, 1000.0, ["haclient"])
    ended = s.create("dave", True, 1000.0, ["haclient"])
    s.drop(ended.token)
    assert path.stat().st_mode & 0o077 == 0
    text = path.read_text()
    for x in (a, b, gone, ended):
        assert x.token not in text  # only the tokens' SHA-256 is written
    assert not list(tmp_path.glob("*.new"))

    # the next run: bob has joined haclient since, carol's account is gone, dave had logged out
    rights = {"alice": (True, ["alice", "haclient"]), "bob": (True, ["bob", "haclient"])}
    t = Sessions(idle_timeout=600.0, path=str(path))
    assert t.load(1300.0, rights.get) == ""
    a2, b2 = t.get(a.token, 1300.0), t.get(b.token, 1300.0)
    assert a2 is not None and a2.user == "alice" and a2.csrf_ok(a.csrf) and a2.can_change
    assert b2 is not None and b2.can_change and b2.groups == ["bob", "haclient"]
    assert t.get(gone.token, 1300.0) is None and t.get(ended.token, 1300.0) is None
    assert "carol" not in path.read_text()  # dropped ones are written out
    # a session idle past its timeout does not come back
    u = Sessions(idle_timeout=600.0, path=str(path))
    assert u.load(1300.0 + 601.0, rights.get) == "" and len(u) == 0


def test_sessions_file_missing_or_damaged(tmp_path):
    path = tmp_path / "sessions.json"
    s = Sessions(path=str(path))
    assert s.load(0.0) == "" and len(s) == 0
    for bad in ("{not json", '{"sessions": [{"user": "x"}]}', '{"sessions": [{"key": "short", "user": "x", '
                '"can_change": true, "csrf": "c", "created": 0, "expires": 99}]}'):
        path.write_text(bad)
        s = Sessions(path=str(path))
        problem = s.load(0.0)
        assert str(path) in problem and "not a sessions file" in problem and len(s) == 0
    # a directory that cannot be written: the session still works, in memory
    s = Sessions(path=str(tmp_path / "no-such-dir" / "sessions.json"))
    a = s.create("alice", True, 0.0)
    assert s.save_error and s.get(a.token, 1.0) is a


def test_throttle_survives_a_restart_through_the_file(tmp_path):
    path = tmp_path / "throttle.json"
    t = Throttle(base=1.0, max_delay=60.0, forget_after=100.0, path=str(path))
    guesser, other = ["user:root", "addr:10.0.0.9"], ["user:bob", "addr:10.0.0.7"]
    for now in (1000.0, 1001.0, 1003.0):
        t.failed(guesser, now)
    t.failed(other, 1003.0)
    t.succeeded(["user:bob", "addr:10.0.0.7"])  # a success clears, and is written too
    assert path.stat().st_mode & 0o077 == 0 and not list(tmp_path.glob("*.new"))

    # the next run (a restart, or a crash after the last failure) goes on counting
    t2 = Throttle(base=1.0, max_delay=60.0, forget_after=100.0, path=str(path))
    assert t2.load(1004.0) == "" and len(t2) == 2
    assert t2.wait(guesser, 1004.0) == pytest.approx(3.0)          # 3 failures: 4 s from 1003
    assert t2.wait(["user:root", "addr:10.0.0.1"], 1004.0) == pytest.approx(3.0)  # the user alone
    assert t2.wait(other, 1004.0) == 0
    t2.failed(guesser, 1007.0)
    assert t2.wait(guesser, 1007.0) == pytest.approx(8.0)          # the 4th doubles again
    # counts older than forget_after are not read back
    t3 = Throttle(base=1.0, max_delay=60.0, forget_after=100.0, path=str(path))
    assert t3.load(1007.0 + 101.0) == "" and len(t3) == 0
    # a clock that went back since a failure never makes the wait longer than max_delay
    t4 = Throttle(base=1.0, max_delay=5.0, forget_after=100.0)
    t4.failed(guesser, 1000.0)
    assert t4.wait(guesser, 500.0) == 5.0


def test_throttle_file_missing_damaged_or_unwritable(tmp_path):
    path = tmp_path / "throttle.json"
    t = Throttle(path=str(path))
    assert t.load(0.0) == "" and len(t) == 0
    for bad in ("{not json", '{"fails": [{"key": "user:x"}]}', '{"fails": [{"key": "user:x", "failures": 0, '
                '"last": 5}]}', '{"fails": {"user:x": 1}}'):
        path.write_text(bad)
        t = Throttle(path=str(path))
        problem = t.load(0.0)
        assert str(path) in problem and "not a login throttle file" in problem and len(t) == 0
    # a directory that cannot be written: the throttle still works, in memory
    t = Throttle(path=str(tmp_path / "no-such-dir" / "throttle.json"))
    t.failed(["user:x"], 10.0)
    assert t.save_error and t.wait(["user:x"], 10.0) == pytest.approx(1.0)


def test_throttle_is_bounded_the_oldest_go_first():
    t = Throttle(base=1.0, max_delay=60.0, forget_after=1000.0, limit=4)
    for i in range(4):
        t.failed([f"user:u{i}"], float(i))
    t.failed(["user:new", "addr:x"], 10.0)
    assert len(t) == 4
    assert t.wait(["user:u0"], 10.0) == 0 and t.wait(["user:u1"], 10.0) == 0   # the oldest went
    assert t.wait(["user:new"], 10.0) == pytest.approx(1.0) and t.wait(["user:u3"], 3.5) == pytest.approx(0.5)


def test_throttle_after_very_many_failures_waits_max_delay():
    # 2 ** (n - 1) seconds overflows a float past 1024 failures in a row (a guesser patient enough, or a
    # count read back from the file): the wait stays max_delay, the login page answers 429, not 500
    t = Throttle(base=1.0, max_delay=60.0, forget_after=1e9)
    for i in range(1100):
        t.failed(["user:root"], 100.0 * i)
    assert t.wait(["user:root"], 100.0 * 1099) == 60.0
    assert t.wait(["user:root"], 100.0 * 1099 + 61) == 0


def test_throttle_file_with_numbers_out_of_range(tmp_path):
    path = tmp_path / "throttle.json"
    for bad in ('{"fails": [{"key": "user:x", "failures": 1e400, "last": 5}]}',
                '{"fails": [{"key": "user:x", "failures": 2, "last": 1e400}]}',
                '{"fails": [{"key": "user:x", "failures": 2, "last": -1e400}]}'):
        path.write_text(bad)
        t = Throttle(path=str(path))
        problem = t.load(10.0)
        assert str(path) in problem and "not a login throttle file" in problem and len(t) == 0
    path.write_text('{"fails": [{"key": "user:x", "failures": 5000, "last": 5}]}')
    t = Throttle(base=1.0, max_delay=60.0, path=str(path))
    assert t.load(10.0) == "" and t.wait(["user:x"], 10.0) == pytest.approx(55.0)


def test_state_files_in_the_state_dir_or_in_memory(tmp_path, caplog):
    from hadaemon.daemons.web import load_sessions, load_throttle
    sessions, throttle = load_sessions(str(tmp_path)), load_throttle(str(tmp_path))
    assert sessions.path == str(tmp_path / "web" / "sessions.json")
    assert throttle.path == str(tmp_path / "web" / "throttle.json")
    assert (tmp_path / "web").stat().st_mode & 0o777 == 0o700
    blocked = tmp_path / "a-file"
    blocked.write_text("")   # the state dir is a file: nothing kept across restarts, both still work
    with caplog.at_level("WARNING", logger="hadaemon.web"):
        sessions, throttle = load_sessions(str(blocked)), load_throttle(str(blocked))
    assert not sessions.path and not throttle.path
    assert "sessions are not kept across restarts" in caplog.text
    assert "failed-login counts are not kept across restarts" in caplog.text
