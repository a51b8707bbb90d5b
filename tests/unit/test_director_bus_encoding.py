"""RealServers is encoded once per refresh by a small encoder for its one signature: byte for byte what
dbus-next marshals (Get and GetAll bodies), and the snapshot is rebuilt at a bounded rate."""
import pytest

from hadaemon.bus.dbusnext import Message, SignalEncoder, Variant, marshal_body
from hadaemon.bus.director import (
    INTERFACE, OBJECT_PATH, REAL_SERVERS_SIGNATURE, RealServersSnapshot, encode_changed, encode_rows, get_all_body,
    get_body,
)


def rows(n, detail="200 OK"):
    return [("tcp:10.0.0.1:80" if i % 3 else "tcp:[2001:db8::1]:443", f"10.0.{i // 250}.{i % 250}:8{i % 7}",
             ("gate", "masq", "ipip")[i % 3], ("up", "down", "flapping", "fallback")[i % 4], -1 if i % 5 == 0 else i,
             i * 7, i % 2 == 0, detail * (i % 4), 1764900000.25 + i, i % 6 == 0) for i in range(n)]


def dbus_next_rows(rs):
    return [[a, b, c, d, int(e), int(f), bool(g), h, float(t), bool(o)] for a, b, c, d, e, f, g, h, t, o in rs]


@pytest.mark.parametrize("rs", [[], rows(1), rows(2, "é€ x"), rows(37), rows(300, "timeout after 3s")])
def test_get_body_is_what_dbus_next_marshals(rs):
    assert get_body(encode_rows(rs)) == marshal_body("v", [Variant(REAL_SERVERS_SIGNATURE, dbus_next_rows(rs))])


@pytest.mark.parametrize("rs", [[], rows(5), rows(64, "x")])
@pytest.mark.parametrize("config", ["/etc/ha.d/ldirectord.cf", "/x"])
def test_get_all_body_is_what_dbus_next_marshals(rs, config):
    others = {"Backend": Variant("s", "nft"), "ConfigFile": Variant("s", config), "Reloads": Variant("u", 3),
              "Status": Variant("s", "1 virtual service(s), 2/2 real server(s) up, backend nft"),
              "VirtualServices": Variant("a(sssqususss)", [["tcp:10.0.0.1:80", "tcp", "10.0.0.1", 80, 0, "wrr", 0,
                                                             "", "negotiate", "http"]])}
    expected = marshal_body("a{sv}", [dict(others, RealServers=Variant(REAL_SERVERS_SIGNATURE,
                                                                        dbus_next_rows(rs)))])
    assert get_all_body(others, encode_rows(rs)) == expected


def test_binary_details_are_escaped_valid_utf8():
    body = get_body(encode_rows([("tcp:10.0.0.1:80", "10.0.0.2:80", "gate", "down", 0, 1, False,
                                  "HTTP/1.1 999 \x00\x1b\udcff", 0.0, False)]))
    assert b"\\x00\\x1b\\xff" in body


class FakeDirector:
    def __init__(self):
        self.calls = 0

    def real_rows(self):
        self.calls += 1
        return rows(3)


def test_snapshot_refreshes_at_a_bounded_rate_unless_forced():
    now = [100.0]
    d = FakeDirector()
    snap = RealServersSnapshot(d, interval=1.0, clock=lambda: now[0])
    snap.get()
    for _ in range(48):              # an event storm: invalidated all the time, read every 125 ms
        snap.invalidate()
        snap.get()
        now[0] += 0.125
    assert d.calls == 1 + 5          # the first read plus one per second
    snap.invalidate(force=True)      # an admin request: the next read sees it
    snap.get()
    assert d.calls == 7
    snap.get()                       # nothing changed: no rebuild
    assert d.calls == 7


@pytest.mark.parametrize("args", [("tcp:10.0.0.1:80", "10.0.0.2:80", "up", 3), ("fwm6:7", "[2001:db8::1]:0", "down", -1),
                                  ("udp:[::1]:53", "x" * 37, "flapping", 0)])
def test_real_server_changed_is_what_dbus_next_sends(args):
    enc = SignalEncoder(OBJECT_PATH, INTERFACE, "RealServerChanged", "sssi")
    msg = Message.new_signal(OBJECT_PATH, INTERFACE, "RealServerChanged", "sssi", list(args))
    msg.serial = 4711
    assert enc.encode(4711, encode_changed(*args)) == bytes(msg._marshall())


def test_a_due_rebuild_runs_in_slices_and_reads_get_the_previous_snapshot():
    now = [0.0]
    queue = []
    d = FakeDirector()
    d.real_rows = lambda: rows(1000)
    snap = RealServersSnapshot(d, interval=1.0, clock=lambda: now[0], schedule=queue.append)
    first = snap.get()                                  # the first read builds at once
    assert first == encode_rows(rows(1000)) and not queue
    d.real_rows = lambda: rows(1000, "changed")
    snap.invalidate()
    now[0] = 1.5
    assert snap.get() == first and len(queue) == 1      # due: started in the background, old one served
    steps = 0
    while queue:
        queue.pop(0)()
        steps += 1
        if queue:
            assert snap.get() == first                  # still the previous one until complete
    assert steps == 1000 // RealServersSnapshot.SLICE + 1
    assert snap.get() == encode_rows(rows(1000, "changed"))
    # a forced rebuild (admin request) is done at once and drops a slice-wise one in progress
    snap.invalidate()
    now[0] = 3.0
    snap.get()
    assert queue
    d.real_rows = lambda: rows(3)
    snap.invalidate(force=True)
    assert snap.get() == encode_rows(rows(3))
    while queue:
        queue.pop(0)()
    assert snap.get() == encode_rows(rows(3))
