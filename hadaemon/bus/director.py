"""org.hadaemon.Director1 on D-Bus: virtual services, real servers with health, weight methods, reload (thin).

Built for event storms (thousands of reals changing state each second): health changes are coalesced
and sent every FLUSH_INTERVAL seconds, one RealServerChanged per real that changed (its latest state)
plus one PropertiesChanged carrying Status and naming RealServers as invalidated; the RealServers
value is never sent per event. Reading RealServers returns an encoding kept up to date row by row
(RealServersSnapshot: a row is re-encoded, by a small encoder for its one signature, only when its
content changed; a read joins the encoded rows), so a read costs what changed since the previous one
plus one copy, whatever the number of readers.
"""
# No `from __future__ import annotations` here: dbus-next reads the signature strings from annotations.
import functools
import operator
import struct

from hadaemon.bus.dbusnext import (
    DBusError, MessageType, PropertyAccess, ServiceInterface, SignalEncoder, Variant, dbus_property, marshal_body,
    method, reply_with_body, send_now, send_raw, set_send_buffer, signal,
)
from hadaemon.core.errors import BadRequest

__all__ = ["BUS_NAME", "OBJECT_PATH", "INTERFACE", "ERROR_PREFIX", "DirectorInterface", "export"]

BUS_NAME = "org.hadaemon.Director1"
OBJECT_PATH = "/org/hadaemon/Director1"
INTERFACE = "org.hadaemon.Director1"
ERROR_PREFIX = "org.hadaemon.Director1.Error."
MAX_ARG = 256
REAL_SERVERS_SIGNATURE = "a(ssssiibsdb)"
FLUSH_INTERVAL = 0.1         # coalesce health changes this long before signalling them
WALK_SLICE = 500             # rows of RealServers looked at per turn of the event loop after a reload
SEND_BUFFER = 8 << 20        # the bus socket's send buffer: a RealServers reply (~0.5 MB at 5,000 reals) in one write


def _check_arg(name: str, value: str) -> None:
    if not value or len(value) > MAX_ARG or not value.isprintable():
        raise DBusError(ERROR_PREFIX + "InvalidArgument",
                        f"{name} must be 1..{MAX_ARG} printable characters, got {value[:MAX_ARG]!r}")


class DirectorInterface(ServiceInterface):
    """Exports a hadaemon.daemons.director_runtime.Director."""

    def __init__(self, director):
        super().__init__(INTERFACE)
        self.director = director

    # -- properties ---------------------------------------------------------------------------------
    @dbus_property(access=PropertyAccess.READ)
    def Backend(self) -> "s":  # noqa: F821
        return self.director.backend.name

    @dbus_property(access=PropertyAccess.READ)
    def ConfigFile(self) -> "s":  # noqa: F821
        return self.director.config_path

    @dbus_property(access=PropertyAccess.READ)
    def Reloads(self) -> "u":  # noqa: F821
        return int(self.director.reloads)

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":  # noqa: F821
        return self.director.status_line()

    @dbus_property(access=PropertyAccess.READ)
    def VirtualServices(self) -> "a(sssqususss)":  # noqa: F722, F821
        return [list(r) for r in self.director.virtual_rows()]

    @dbus_property(access=PropertyAccess.READ)
    def RealServers(self) -> "a(ssssiibsdb)":  # noqa: F722, F821
        """(virtual, real, method, health, weight in the table (-1: absent), configured weight,
        last check ok, last check detail, last check time (unix seconds, 0: never), admin override).
        (Get and GetAll are answered from RealServersSnapshot by export's message handler; this
        getter serves introspection-driven paths only.)"""
        return [_real_row(r) for r in self.director.real_rows()]

    # -- methods ------------------------------------------------------------------------------------
    @method()
    async def SetWeight(self, virtual: "s", real: "s", weight: "u"):  # noqa: F821
        _check_arg("virtual", virtual)
        _check_arg("real", real)
        await self._call(self.director.set_weight(virtual, real, int(weight)))

    @method()
    async def Drain(self, virtual: "s", real: "s"):  # noqa: F821
        _check_arg("virtual", virtual)
        _check_arg("real", real)
        await self._call(self.director.set_weight(virtual, real, 0))

    @method()
    async def Restore(self, virtual: "s", real: "s"):  # noqa: F821
        _check_arg("virtual", virtual)
        _check_arg("real", real)
        await self._call(self.director.restore(virtual, real))

    @method()
    async def Reload(self):
        await self._call(self.director.reload())

    @method()
    def Listing(self) -> "s":  # noqa: F821
        return self.director.listing()

    async def _call(self, coro):
        try:
            await coro
        except BadRequest as exc:
            raise DBusError(ERROR_PREFIX + exc.kind, str(exc)) from None

    # -- signals ------------------------------------------------------------------------------------
    @signal()
    def RealServerChanged(self, virtual: str, real: str, state: str, weight: int) -> "sssi":  # noqa: F821
        return [virtual, real, state, weight]

    @signal()
    def Reloaded(self, config: str) -> "s":  # noqa: F821
        return config


def _real_row(r):
    skey, dkey, method_, health, weight, configured, last_ok, detail, last_time, overridden = r
    return [skey, dkey, method_, health, int(weight), int(configured), bool(last_ok), _text(detail),
            float(last_time), bool(overridden)]


@functools.lru_cache(maxsize=4096)
def _text(detail) -> str:
    """Check details escaped to printable text (memoized: most details repeat, e.g. `200 OK`)."""
    from hadaemon.core.director.model import printable

    return printable(str(detail), 512)


# ---- RealServers: encoded once per refresh ----------------------------------------------------------

_U32 = struct.Struct("<I").pack
_D = struct.Struct("<d").pack
_PAD = (b"", b"\0", b"\0\0", b"\0\0\0", b"\0\0\0\0", b"\0\0\0\0\0", b"\0\0\0\0\0\0",
        b"\0\0\0\0\0\0\0")


class _RowEncoder:
    """Encodes (ssssiibsdb) rows with the parts that rarely change kept encoded: the head (the four strings,
    weight and configured weight) by its values, the last check's ok flag and detail by their values and
    alignment; only the time is packed per row. In a storm a row changes mostly by its last check time."""

    LIMIT = 1 << 18                      # cached heads or tails at most (then the cache starts again)

    def __init__(self):
        self.heads: dict = {}
        self.tails: dict = {}

    def __call__(self, r) -> bytes:
        skey, dkey, method_, health, weight, configured, last_ok, detail, last_time, overridden = r
        hk = (skey, dkey, method_, health, weight, configured)
        head = self.heads.get(hk)
        if head is None:
            out = bytearray()
            for text in (skey, dkey, method_, health):
                out += _PAD[-len(out) % 4]
                b = text.encode()
                out += _U32(len(b))
                out += b
                out += b"\0"
            out += _PAD[-len(out) % 4]
            out += _II(int(weight), int(configured))
            if len(self.heads) >= self.LIMIT:
                self.heads.clear()
            head = self.heads[hk] = bytes(out)
        tk = (len(head) % 8, bool(last_ok), detail)
        tail = self.tails.get(tk)
        if tail is None:
            b = _text(detail).encode()
            size = len(head) % 8 + 8 + len(b) + 1
            if len(self.tails) >= self.LIMIT:
                self.tails.clear()
            tail = self.tails[tk] = _U32(1 if last_ok else 0) + _U32(len(b)) + b + b"\0" + _PAD[-size % 8]
        return head + tail + _D(float(last_time)) + (_ONE if overridden else _ZERO)


_ONE, _ZERO = struct.pack("<I", 1), struct.pack("<I", 0)
_II = struct.Struct("<ii").pack
encode_row = _RowEncoder()
encode_row.__doc__ = """One (ssssiibsdb) struct in D-Bus wire form (little-endian), for a struct starting at an
8-aligned offset (every struct in an array does), so rows can be encoded once and concatenated."""


def encode_changed(skey: str, dkey: str, health: str, weight: int) -> bytes:
    """The body of RealServerChanged (sssi)."""
    out = bytearray()
    for text in (skey, dkey, health):
        out += _PAD[-len(out) % 4]
        b = text.encode()
        out += _U32(len(b))
        out += b
        out += b"\0"
    out += _PAD[-len(out) % 4]
    out += struct.pack("<i", int(weight))
    return bytes(out)


def encode_rows(rows) -> bytes:
    """The elements of an a(ssssiibsdb): structs, each padded to 8 bytes from the first one."""
    parts = []
    size = 0
    for r in rows:
        pad = -size % 8
        if pad:
            parts.append(_PAD[pad])
        row = encode_row(r)
        parts.append(row)
        size += pad + len(row)
    return b"".join(parts)


def get_body(elements: bytes) -> bytes:
    """The body of a Properties.Get reply (signature v) whose value is an a(ssssiibsdb)."""
    sig = REAL_SERVERS_SIGNATURE.encode()
    head = bytes([len(sig)]) + sig + b"\0"                  # the variant's signature
    head += _PAD[-len(head) % 4] + _U32(len(elements))
    return head + _PAD[-len(head) % 8] + elements


def get_all_body(others: dict, elements: bytes) -> bytes:
    """The body of a Properties.GetAll reply (a{sv}): `others` ({name: Variant}) marshalled by dbus-next,
    then the RealServers entry spliced in as the last dict entry."""
    body = bytearray(marshal_body("a{sv}", [others]))
    body += _PAD[-len(body) % 8]                              # dict entries are 8-aligned
    name = b"RealServers"
    body += _U32(len(name)) + name + b"\0"
    sig = REAL_SERVERS_SIGNATURE.encode()
    body += bytes([len(sig)]) + sig + b"\0"
    body += _PAD[-len(body) % 4] + _U32(len(elements))
    body += _PAD[-len(body) % 8]
    body += elements
    body[0:4] = _U32(len(body) - 8)                           # the array's length: entries from offset 8
    return bytes(body)


_PAIR = operator.attrgetter("pair")


class RealServersSnapshot:
    """The encoded RealServers value, kept up to date row by row: each row is encoded once and kept
    (padded to 8 bytes, so rows concatenate), `mark(keys)` says which rows changed (a health change, a
    check result, a weight in the table) and a read re-encodes only those, then joins the rows. The cost
    of a read is proportional to what changed since the previous one (the join of the encoded rows is
    one C-level copy); nothing is rebuilt per event. `invalidate()` (a reload, an admin request) makes
    the next read walk every row, re-encoding those whose content changed.

    With a director without `row(key)` (a stand-in), every read after a change walks `real_rows()`."""

    def __init__(self, director):
        self.director = director
        self.order: list = []            # row keys, in the order of real_rows()
        self.rows: dict = {}             # key -> (row tuple, its encoding padded to 8)
        self.dirty: set = set()
        self.all = True                  # walk every row at the next read
        self.elements = b""
        self.fresh = False               # elements are up to date
        self.encoded = 0                 # rows encoded so far (a measure for tests)
        self._checked: list = []         # check result batches not looked at yet
        self._walk = None                # a walk of every row under way: (order, next index, rows so far)
        self._incremental = callable(getattr(director, "row", None)) and callable(getattr(director, "row_keys", None))

    def mark_checked(self, results, pairs=()) -> None:
        """A batch of check results (objects with .pair) and pairs whose maintenance flag changed: kept as
        they are (O(1) per batch) and turned into rows only when someone reads."""
        if not self._incremental:
            self.all, self.fresh = True, False
            return
        self._checked.append((results, pairs))
        self.fresh = False
        if len(self._checked) > 64:              # nobody reads: fold them into the rows to re-encode
            self._fold()

    def _fold(self) -> None:
        checked, self._checked = self._checked, []
        pairs = set()
        for results, more in checked:
            pairs.update(map(_PAIR, results))
            pairs.update(more)
        self.dirty.update(self.director.row_keys_of(pairs))

    def mark(self, keys) -> None:
        """Rows (service key, dest key) whose content changed."""
        if self._incremental:
            self.dirty.update(keys)      # (during a walk too: rows already walked may change again)
        else:
            self.all = True
        self.fresh = False

    def invalidate(self, force: bool = False) -> None:
        """Every row may have changed (and the set of rows with them): the next read, or walk_some() calls
        before it, look at every row."""
        self.all = True
        self.fresh = False
        self._walk = None

    def walk_some(self, limit: int) -> bool:
        """After invalidate(): look at up to `limit` more rows of the walk every row needs (re-encoding those
        that changed), so that the walk can be spread over turns of the event loop instead of falling on one
        read (5,000 rows: ~15 ms). True when no walk is pending (always with a stand-in director without row():
        its reads walk real_rows() themselves)."""
        if not self.all:
            return True
        if not self._incremental:
            return True                  # a stand-in director: nothing to do ahead, the read walks real_rows()
        if self._walk is None:
            # rows changed from now on are marked dirty again: what was marked before is covered by the walk
            self.dirty = set()
            self._checked = []
            self._walk = (list(self.director.row_keys()), 0, {})
        order, i, new = self._walk
        end = len(order) if limit is None else min(len(order), i + limit)
        rows, row_of = self.rows, self.director.row
        for k in order[i:end]:
            row = row_of(k)
            old = rows.get(k)
            new[k] = old if old is not None and old[0] == row else self._encode(row)
        if end < len(order):
            self._walk = (order, end, new)
            return False
        self._walk = None
        self.rows, self.order, self.all = new, order, False
        return True

    def _encode(self, row) -> tuple:
        self.encoded += 1
        enc = encode_row(row)
        pad = -len(enc) % 8
        return row, enc + _PAD[pad], pad

    def get(self) -> bytes:
        if self.fresh:
            return self.elements
        if self.all and not self._incremental:
            self.all = False
            fresh = list(self.director.real_rows())
            order = [(r[0], r[1]) for r in fresh]
            rows = self.rows
            self.rows, self.order = {k: (rows[k] if k in rows and rows[k][0] == row else self._encode(row))
                                     for k, row in zip(order, fresh)}, order
        elif self.all:
            self.walk_some(None)         # the rest of the walk (all of it when none was started)
        if self._incremental:
            rows = self.rows
            if self._checked:
                self._fold()
            dirty, self.dirty = self.dirty, set()
            row_of = self.director.row
            for k in dirty:
                old = rows.get(k)
                if old is None:
                    continue
                row = row_of(k)
                if row is not None and row != old[0]:
                    rows[k] = self._encode(row)
        rows = self.rows
        if self.order:
            joined = b"".join([rows[k][1] for k in self.order])
            pad = rows[self.order[-1]][2]          # no padding after the last element
            self.elements = joined[:len(joined) - pad] if pad else joined
        else:
            self.elements = b""
        self.fresh = True
        return self.elements


async def export(director, bus=None):
    """Connect to the system bus (or DBUS_SYSTEM_BUS_ADDRESS), export the director, own BUS_NAME."""
    from hadaemon.bus.dbusnext import export_owned, quiet_refusals

    import asyncio

    iface = DirectorInterface(director)
    bus = await export_owned(OBJECT_PATH, iface, BUS_NAME, bus)

    snapshot = RealServersSnapshot(director)
    pending = {}                  # (virtual, real) -> (state, weight): the latest change of each real
    state = {"timer": None, "status": False, "walk": None}
    loop = asyncio.get_running_loop()

    changed_signal = SignalEncoder(OBJECT_PATH, INTERFACE, "RealServerChanged", "sssi")

    def flush():
        state["timer"] = None
        changes = list(pending.items())
        pending.clear()
        if changes:
            # one write for all of them, each encoded by hand (dbus-next's path is ~50 us a signal)
            send_raw(bus, b"".join(changed_signal.encode(bus.next_serial(), encode_changed(skey, dkey, health, weight))
                                   for (skey, dkey), (health, weight) in changes))
        if changes or state["status"]:
            state["status"] = False
            iface.emit_properties_changed({"Status": director.status_line()}, ["RealServers"])

    def schedule():
        if state["timer"] is None:
            state["timer"] = loop.call_later(FLUSH_INTERVAL, flush)

    def walk():
        state["walk"] = None
        if not snapshot.walk_some(WALK_SLICE):
            state["walk"] = loop.call_soon(walk)

    def invalidate():
        """Every row must be looked at again (a reload, an admin request): done WALK_SLICE rows per turn of
        the loop from now on, so the next read does not pay for the whole walk at once."""
        snapshot.invalidate()
        if state["walk"] is None:
            state["walk"] = loop.call_soon(walk)

    row_keys_of = getattr(director, "row_keys_of", None)

    def on_event(kind, *args):
        if kind == "checked":                 # a batch of check results: their rows' last check changed
            if row_keys_of is not None:
                snapshot.mark_checked(args[0], args[1] if len(args) > 1 else ())
        elif kind == "real":
            skey, dkey, health, weight = args
            pending[(skey, dkey)] = (health, weight)
            snapshot.mark(((skey, dkey),))
            schedule()
        elif kind == "admin":                 # SetWeight, Drain, Restore (rare): every row is looked at
            invalidate()
        elif kind == "table":
            keys = args[0] if args else None
            if keys is None:
                invalidate()
            else:
                snapshot.mark(keys)
            state["status"] = True
            schedule()
        elif kind == "reload":
            invalidate()
            if state["timer"] is not None:
                state["timer"].cancel()
            flush()
            iface.Reloaded(args[0])
            iface.emit_properties_changed({"VirtualServices": iface.VirtualServices, "Reloads": iface.Reloads,
                                           "Status": director.status_line()}, ["RealServers"])

    def on_message(msg):
        """Properties.Get(RealServers) and GetAll from the encoded snapshot; everything else goes to
        dbus-next's own handlers."""
        if (msg.message_type != MessageType.METHOD_CALL or msg.path != OBJECT_PATH
                or msg.interface != "org.freedesktop.DBus.Properties" or not msg.body or msg.body[0] != INTERFACE):
            return False
        if msg.member == "Get" and msg.signature == "ss" and msg.body[1] == "RealServers":
            send_now(bus, reply_with_body(msg, "v", get_body(snapshot.get())))
            return True
        if msg.member == "GetAll" and msg.signature == "s":
            others = {"Backend": Variant("s", iface.Backend), "ConfigFile": Variant("s", iface.ConfigFile),
                      "Reloads": Variant("u", iface.Reloads), "Status": Variant("s", iface.Status),
                      "VirtualServices": Variant("a(sssqususss)", iface.VirtualServices)}
            send_now(bus, reply_with_body(msg, "a{sv}", get_all_body(others, snapshot.get())))
            return True
        return False

    # a RealServers reply is answered at once and in one write: with the default buffer (~200 KB) a reply of
    # 0.5 MB took three turns of a busy event loop (each tens of ms in a storm) to leave
    set_send_buffer(bus, SEND_BUFFER)
    bus.add_message_handler(on_message)
    iface.snapshot = snapshot
    invalidate()                  # encode the rows now, a slice per loop turn, not all at the first read

    director.listeners.append(on_event)
    import logging

    quiet_refusals(logging.getLogger("ha-ldirectord"))
    return bus


