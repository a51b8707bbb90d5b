"""RealServers is encoded by a small encoder for its one signature: byte for byte what dbus-next marshals
(Get and GetAll bodies); the encoding is kept row by row and a read re-encodes only the rows that changed."""
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


class RowsDirector:
    """A director with rows addressed by key (as ha-ldirectord's): row(key), row_keys()."""

    def __init__(self, rs):
        self.set(rs)
        self.row_calls = 0

    def set(self, rs):
        self.table = {(r[0], r[1]): r for r in rs}
        self.keys = [(r[0], r[1]) for r in rs]

    def row_keys(self):
        return self.keys

    def row(self, key):
        self.row_calls += 1
        return self.table.get(key)

    def real_rows(self):
        return [self.table[k] for k in self.keys]

    def row_keys_of(self, pairs):
        return [p for p in pairs if p in self.table]      # here a pair is its row's key


class Checked:
    def __init__(self, pair):
        self.pair = pair


def test_check_results_are_looked_at_only_when_read():
    rs = rows(300)
    d = RowsDirector(rs)
    snap = RealServersSnapshot(d)
    snap.get()
    calls = d.row_calls
    for batch in range(200):                     # no reader: batches are kept, then folded, never encoded
        i = batch % 300
        r = list(rs[i])
        r[8] += 1
        rs[i] = tuple(r)
        d.set(rs)
        snap.mark_checked([Checked((rs[i][0], rs[i][1]))], ())
    assert d.row_calls == calls and snap.encoded == 300 and len(snap._checked) <= 65
    assert snap.get() == encode_rows(rs) and snap.encoded == 500 and d.row_calls - calls == 200


def test_snapshot_reencodes_only_the_rows_that_changed():
    rs = rows(1000)
    d = RowsDirector(rs)
    snap = RealServersSnapshot(d)
    assert snap.get() == encode_rows(rs) and snap.encoded == 1000
    assert snap.get() == encode_rows(rs) and snap.encoded == 1000         # nothing changed: nothing done
    calls = d.row_calls
    for step in range(50):                                                # a storm: a few rows per batch
        changed = [(i * 37 + step) % 1000 for i in range(5)]
        for i in changed:
            r = list(rs[i])
            r[3], r[8] = ("down" if r[3] == "up" else "up"), r[8] + 1
            rs[i] = tuple(r)
        d.set(rs)
        snap.mark([(rs[i][0], rs[i][1]) for i in changed])
        assert snap.get() == encode_rows(rs)
    assert snap.encoded == 1000 + 50 * 5 and d.row_calls - calls == 50 * 5   # O(changed), not O(rows)
    # a mark for a row whose content did not change costs a look, no encoding
    snap.mark([(rs[0][0], rs[0][1])])
    assert snap.get() == encode_rows(rs) and snap.encoded == 1250
    # a reload (invalidate): every row is looked at, only the changed ones are encoded, the order follows
    rs = rs[500:] + [rows(1001)[1000]] + rs[:499]
    d.set(rs)
    snap.invalidate()
    assert snap.get() == encode_rows(rs) and snap.encoded == 1251
    d.set([])
    snap.invalidate()
    assert snap.get() == b""


def test_the_walk_after_a_reload_is_spread_and_misses_no_change():
    """After invalidate(), walk_some(n) looks at n rows per call (a turn of the event loop each); a row changed
    behind the walk (already walked) or ahead of it is read as it is now; a read mid-walk finishes the walk."""
    rs = rows(1000)
    d = RowsDirector(rs)
    snap = RealServersSnapshot(d)
    snap.get()
    rs = rs[1:] + [rows(1001)[1000]]              # a reload: one row gone, one new
    d.set(rs)
    snap.invalidate()
    calls = d.row_calls
    assert snap.walk_some(300) is False and d.row_calls - calls == 300
    for i in (10, 900):                           # one row already walked, one not yet
        r = list(rs[i])
        r[3], r[8] = "flapping", r[8] + 5
        rs[i] = tuple(r)
    d.set(rs)
    snap.mark([(rs[i][0], rs[i][1]) for i in (10, 900)])
    snap.mark_checked([Checked((rs[20][0], rs[20][1]))], ())
    assert snap.walk_some(300) is False and d.row_calls - calls == 600
    assert snap.get() == encode_rows(rs)          # the read walks the last 400 and re-reads the changed ones
    assert d.row_calls - calls <= 1000 + 3 and snap.walk_some(300) is True
    snap.invalidate()
    while not snap.walk_some(250):
        pass
    assert snap.get() == encode_rows(rs)


class StandIn:
    """A director with real_rows() only (the web tests' stand-in): every read after a change walks them."""

    def __init__(self):
        self.calls = 0
        self.rs = rows(3)

    def real_rows(self):
        self.calls += 1
        return self.rs


def test_snapshot_of_a_director_without_row_keys():
    d = StandIn()
    snap = RealServersSnapshot(d)
    assert snap.get() == encode_rows(d.rs) and d.calls == 1
    snap.get()
    assert d.calls == 1
    d.rs = rows(5, "x")
    snap.mark([("tcp:10.0.0.1:80", "10.0.0.1:81")])
    assert snap.get() == encode_rows(d.rs) and d.calls == 2
    # nothing to walk ahead of a read (the export's background walk must stop at once, not spin)
    snap.invalidate()
    assert snap.walk_some(500) is True and d.calls == 2
    assert snap.get() == encode_rows(d.rs) and d.calls == 3


@pytest.mark.parametrize("args", [("tcp:10.0.0.1:80", "10.0.0.2:80", "up", 3), ("fwm6:7", "[2001:db8::1]:0", "down", -1),
                                  ("udp:[::1]:53", "x" * 37, "flapping", 0)])
def test_real_server_changed_is_what_dbus_next_sends(args):
    enc = SignalEncoder(OBJECT_PATH, INTERFACE, "RealServerChanged", "sssi")
    msg = Message.new_signal(OBJECT_PATH, INTERFACE, "RealServerChanged", "sssi", list(args))
    msg.serial = 4711
    assert enc.encode(4711, encode_changed(*args)) == bytes(msg._marshall())
