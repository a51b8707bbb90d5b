"""The authenticated UDP packet format (encode/decode/peek, the heartbeat's echo) and the replay guard (pure)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Tuple

from hadaemon.core.heartbeat.authkeys import AuthKeys

MAGIC = b"HD"
VERSION = 1
MAX_DATAGRAM = 1400          # what the messenger fills: fits a 1500-byte Ethernet MTU with IP/UDP headers
MAX_PACKET = 65000           # decode's default limit on anything received
MAX_NAME = 64                # bytes of a node, link or channel name (UTF-8)
MAX_SACK_RANGES = 32         # selective-ack ranges one ack carries
MAX_DIGEST = 32              # the largest authkeys digest (sha256)

KINDS = ("hb", "msg", "ack")
_KIND_CODE = {k: i + 1 for i, k in enumerate(KINDS)}
F_COMPRESSED, F_BROADCAST = 0x01, 0x02
_FLAGS = F_COMPRESSED | F_BROADCAST

# kind, flags, generation, seq, dst_generation, stream_id, stream_seq, msg_id, ack_seq, frag, nfrags
_FIXED = struct.Struct("!BBQQQQQQQHH")
_RANGE = struct.Struct("!QQ")


@dataclass(frozen=True)
class Packet:
    """One datagram's content.

    Every kind: kind ("hb" | "msg" | "ack"), src, dst ("" = everybody), generation (the sender's
    incarnation), seq (a per-sender transmission counter, checked by ReplayGuard), link (sender's
    link name), payload.
    hb: the payload is the echo (encode_echo): the generation the sender knows for each node.
    msg: one fragment of a message on a sender->receiver stream: channel, msg_id, frag/nfrags,
    compressed, broadcast (this copy is part of a broadcast), dst_generation (receiver incarnation the
    stream is for), stream_id (the sender's id of that stream), stream_seq (position in the stream, 1..).
    ack: dst_generation = generation of the acked sender, stream_id, ack_seq (every stream_seq <= it
    received), sack (inclusive ranges of stream_seqs above ack_seq already received) and stream_seq
    (the fragment whose arrival triggered this ack: the sender's round-trip-time sample).
    """

    kind: str
    src: str
    dst: str = ""
    generation: int = 0
    seq: int = 0
    link: str = ""
    payload: bytes = b""
    channel: str = ""
    msg_id: int = 0
    frag: int = 0
    nfrags: int = 0
    compressed: bool = False
    broadcast: bool = False
    dst_generation: int = 0
    stream_id: int = 0
    stream_seq: int = 0
    ack_seq: int = 0
    sack: Tuple[Tuple[int, int], ...] = ()


def restamp(pkt: Packet, seq: int | None = None, link: str | None = None) -> Packet:
    """A copy of `pkt` with a new seq and/or link (what dataclasses.replace does, ~20x cheaper)."""
    new = object.__new__(Packet)
    d = new.__dict__
    d.update(pkt.__dict__)
    if seq is not None:
        d["seq"] = seq
    if link is not None:
        d["link"] = link
    return new


class Drop(Exception):
    """A received datagram that is not accepted; `reason` is oversized|malformed|auth|version."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _name(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > MAX_NAME:
        raise ValueError(f"{what} {value!r} is longer than {MAX_NAME} bytes")
    return bytes([len(raw)]) + raw


def header_size(src: str, dst: str, link: str, channel: str, digest_size: int = MAX_DIGEST, sack: int = 0) -> int:
    """Bytes a packet takes besides its payload."""
    names = sum(1 + len(s.encode("utf-8")) for s in (src, dst, link, channel))
    return len(MAGIC) + 2 + digest_size + _FIXED.size + names + 1 + sack * _RANGE.size


def fragment_capacity(src: str, dst: str, channel: str, max_datagram: int = MAX_DATAGRAM) -> int:
    """Payload bytes that fit one datagram, whatever the link name (<= 15 bytes) and key method."""
    return max_datagram - header_size(src, dst, "x" * 15, channel)


def encode(pkt: Packet, auth: AuthKeys, max_size: int = MAX_PACKET) -> bytes:
    """Serialize and sign `pkt` with the active key. Raises ValueError for packets that cannot be sent."""
    code = _KIND_CODE.get(pkt.kind)
    if code is None:
        raise ValueError(f"unknown packet kind {pkt.kind!r}")
    if not pkt.src:
        raise ValueError("packet without a source node")
    if len(pkt.sack) > MAX_SACK_RANGES:
        raise ValueError(f"more than {MAX_SACK_RANGES} sack ranges")
    flags = (F_COMPRESSED if pkt.compressed else 0) | (F_BROADCAST if pkt.broadcast else 0)
    try:
        fixed = _FIXED.pack(code, flags, pkt.generation, pkt.seq, pkt.dst_generation, pkt.stream_id,
                            pkt.stream_seq, pkt.msg_id, pkt.ack_seq, pkt.frag, pkt.nfrags)
        sack = b"".join(_RANGE.pack(a, b) for a, b in pkt.sack)
    except struct.error as e:
        raise ValueError(f"packet field out of range: {e}") from None
    body = b"".join((fixed, _name(pkt.src, "node"), _name(pkt.dst, "node"), _name(pkt.link, "link"),
                     _name(pkt.channel, "channel"), bytes([len(pkt.sack)]), sack, bytes(pkt.payload)))
    head = MAGIC + bytes([VERSION, auth.active_index])
    data = head + auth.sign(head + body) + body
    if len(data) > max_size:
        raise ValueError(f"packet of {len(data)} bytes exceeds {max_size}")
    return data


def decode(data: bytes, auth: AuthKeys, max_size: int = MAX_PACKET) -> Packet:
    """Authenticate and parse one datagram. Raises Drop(reason) and nothing else, whatever the bytes."""
    if len(data) > max_size:
        raise Drop("oversized", f"{len(data)} bytes > {max_size}")
    data = bytes(data)
    if len(data) < 4 or data[:2] != MAGIC:
        raise Drop("malformed", "bad magic")
    if data[2] != VERSION:
        raise Drop("version", f"protocol version {data[2]}, expected {VERSION}")
    index = data[3]
    size = auth.digest_size(index)
    if size is None:
        raise Drop("auth", f"key {index} not in authkeys")
    if len(data) < 4 + size + _FIXED.size:
        raise Drop("malformed", "truncated")
    digest, body = data[4:4 + size], data[4 + size:]
    if not auth.verify(index, data[:4] + body, digest):
        raise Drop("auth", f"bad digest with key {index}")
    try:
        return _parse(body)
    except (struct.error, ValueError, IndexError) as e:  # UnicodeDecodeError is a ValueError
        raise Drop("malformed", str(e)) from None


def _parse(body: bytes) -> Packet:
    (code, flags, generation, seq, dst_generation, stream_id, stream_seq, msg_id, ack_seq, frag,
     nfrags) = _FIXED.unpack_from(body, 0)
    if not 1 <= code <= len(KINDS):
        raise ValueError(f"unknown kind {code}")
    if flags & ~_FLAGS:
        raise ValueError(f"unknown flags {flags:#x}")
    pos = _FIXED.size
    names = []
    for _ in range(4):
        n = body[pos]
        if n > MAX_NAME or pos + 1 + n > len(body):
            raise ValueError("bad name length")
        names.append(body[pos + 1:pos + 1 + n].decode("utf-8"))
        pos += 1 + n
    src, dst, link, channel = names
    nsack = body[pos]
    pos += 1
    if nsack > MAX_SACK_RANGES or pos + nsack * _RANGE.size > len(body):
        raise ValueError("bad sack count")
    sack = tuple(_RANGE.unpack_from(body, pos + i * _RANGE.size) for i in range(nsack))
    pos += nsack * _RANGE.size
    kind = KINDS[code - 1]
    if not src:
        raise ValueError("empty source node")
    if kind == "msg" and (nfrags == 0 or frag >= nfrags or stream_seq == 0 or not channel or not dst):
        raise ValueError("bad message fragment header")
    if any(a > b for a, b in sack):
        raise ValueError("bad sack range")
    return Packet(kind=kind, src=src, dst=dst, generation=generation, seq=seq, link=link, payload=body[pos:],
                  channel=channel, msg_id=msg_id, frag=frag, nfrags=nfrags, compressed=bool(flags & F_COMPRESSED),
                  broadcast=bool(flags & F_BROADCAST), dst_generation=dst_generation, stream_id=stream_id,
                  stream_seq=stream_seq, ack_seq=ack_seq, sack=sack)


def peek(data: bytes, auth: AuthKeys) -> Tuple[str, int, str, str, int] | None:
    """(src, generation, kind, link, seq) read from a datagram WITHOUT authenticating it, or None.

    Costs a fraction of decode(): it lets the receiver drop an exact replay (a seq the ReplayGuard already
    recorded for that source) before computing any digest. Nothing read here may be trusted for anything
    else: a forged header can at worst get a forged packet dropped as "replay" instead of "auth".
    """
    try:
        if len(data) > MAX_PACKET or data[:2] != MAGIC or data[2] != VERSION:
            return None
        size = auth.digest_size(data[3])
        if size is None:
            return None
        pos = 4 + size
        code, _flags, generation, seq = _PEEK.unpack_from(data, pos)
        pos += _FIXED.size
        names = []
        for _ in range(3):
            n = data[pos]
            names.append(bytes(data[pos + 1:pos + 1 + n]).decode("utf-8"))
            pos += 1 + n
    except (struct.error, IndexError, ValueError):
        return None
    if not 1 <= code <= len(KINDS):
        return None
    return names[0], generation, KINDS[code - 1], names[2], seq


_PEEK = struct.Struct("!BBQQ")


# -- the heartbeat's echo: which generation the sender currently knows for each node ------------------
_GEN = struct.Struct("!Q")


def encode_echo(generations) -> bytes:
    """The payload of a heartbeat: (node, generation) pairs the sender knows, each name <= MAX_NAME bytes."""
    out = []
    for node, gen in generations:
        out.append(_name(node, "node"))
        out.append(_GEN.pack(gen))
    return b"".join(out)


def echoed_generation(payload: bytes, node: str) -> int | None:
    """The generation a heartbeat's payload reports for `node` (None: not listed, or not an echo payload)."""
    want = node.encode("utf-8")
    pos, end = 0, len(payload)
    try:
        while pos < end:
            n = payload[pos]
            name = payload[pos + 1:pos + 1 + n]
            pos += 1 + n
            if pos + 8 > end:
                return None
            if name == want:
                return _GEN.unpack_from(payload, pos)[0]
            pos += 8
    except (IndexError, struct.error):
        return None
    return None


class _Generation:
    """Replay state of one (source, generation): seqs below `floor` are old, plus windows per (kind, link)."""

    __slots__ = ("floor", "windows")

    def __init__(self) -> None:
        self.floor = 0
        # (kind, link) -> its windows: [(highest seq, bitmap, time last advanced)], the most recent first; two
        # after a jump beyond the bitmap (see ReplayGuard)
        self.windows: Dict[Tuple[str, str], List[Tuple[int, int, float | None]]] = {}


class ReplayGuard:
    """Rejects replayed packets, per (src, generation, kind, link), with a sliding window over seq.

    A packet is accepted once: its seq must be newer than the highest accepted, or within `window`
    below it and not yet seen (UDP may reorder; a retransmission always gets a fresh seq, so a repeat
    is a replay), and not below the generation's floor (`pin`: the seq from which the source proved it
    hears this incarnation of the receiver; anything older may have been recorded before).
    A jump beyond the window (the sender was not heard for a while, or a holder of the key signed a huge
    seq) opens a second window beside the one it left; a packet belongs to the highest window it is not
    too old for. A window is active when it advanced within `stale_after` seconds (the daemon: deadtime).
    While both are active no further jump is believed, so a real sender that keeps sending is never pushed
    out by forged seqs (a holder of the key can at most delay a real jump by stale_after); the higher
    window is dropped once it is stale while the lower one is active (a jump nobody continues). A lower
    window is never dropped for being stale: a sender silent here must find its window when it comes back,
    and packets older than every window stay replays. (Without `now` no window is active: every jump is
    believed and replaces the window not jumped from.)

    Which generation of a source is believed is the membership core's decision; the daemon tells the
    guard with `pin(src, gen)`. Besides the pinned generation the guard keeps the windows of at most one other generation (a candidate restart, or an older one the
    core will refuse unless the peer lost its state). Memory is bounded: at most
    `max_sources` sources (the daemon passes only configured nodes), two generations each, one window per
    (kind, link) known to the sender, at most `max_windows` of them per generation (the link is the
    sender's label: a holder of the key could otherwise add a window per invented name; beyond the bound
    a packet is "malformed"). Every operation is O(1) in the number of sources.
    """

    def __init__(self, window: int = 1024, max_sources: int = 256, max_windows: int = 64,
                 stale_after: float = 1.0):
        self.window = window
        self.stale_after = stale_after
        self.max_sources = max_sources
        self.max_windows = max_windows
        self._mask = (1 << window) - 1
        self._pinned: Dict[str, int] = {}
        self._gens: Dict[str, Dict[int, _Generation]] = {}

    def check(self, pkt: Packet, fresh: bool = False, now: float | None = None) -> str | None:
        """None when `pkt` is new (and record it), else "replay" ("unknown-node": too many sources;
        "malformed": more (kind, link) pairs in this generation than max_windows).
        fresh: the packet itself proves it was sent to this incarnation of the receiver (a heartbeat echoing
        its generation, a message for it): the floor does not apply (a holder of the key who proved a
        generation with a huge seq must not make every real packet older than the proof).
        now: the monotonic time (which windows are active; see the class)."""
        src, gen = pkt.src, pkt.generation
        gens = self._gens.get(src)
        if gens is None:
            if len(self._gens) >= self.max_sources:
                return "unknown-node"
            gens = self._gens[src] = {}
        pinned = self._pinned.get(src)
        g = gens.get(gen)
        if g is None:
            for other in [x for x in gens if x != pinned]:   # keep the pinned and one candidate
                del gens[other]
            g = gens[gen] = _Generation()
        seq = pkt.seq
        if seq < g.floor and not fresh:
            return "replay"
        key = (pkt.kind, pkt.link)
        heads = g.windows.get(key)
        if heads is None:
            if len(g.windows) >= self.max_windows:
                return "malformed"
            g.windows[key] = [(seq, 1, now)]
            return None
        if len(heads) == 2 and self._forsaken(heads, now):
            heads = g.windows[key] = [min(heads)]
        i = self._home(heads, seq)
        if i is None:
            return "replay"                     # too old for every window
        top, bits, last = heads[i]
        if seq > top:
            shift = seq - top
            moved = (seq, ((bits << shift) | 1) & self._mask if shift < self.window else 1, now)
        else:
            offset = top - seq
            if bits >> offset & 1:
                return "replay"
            moved = (top, bits | 1 << offset, now)
        if seq - top < self.window:             # continues window i
            heads[i] = moved
            if i:
                heads.reverse()                 # the most recent first
            return None
        if len(heads) == 1:                     # a jump: the window it left stays beside the new one
            g.windows[key] = [moved, heads[0]]
            return None
        other = heads[1 - i]
        active, other_active = self._active(last, now), self._active(other[2], now)
        if active and other_active:
            return "replay"                     # both windows speak: no third one
        g.windows[key] = [moved, heads[i] if active or not other_active else other]
        return None

    def _home(self, heads, seq: int) -> int | None:
        """Index of the highest window `seq` is not too old for (None: too old for all)."""
        best = None
        for i, (top, _, _) in enumerate(heads):
            if seq > top - self.window and (best is None or top > heads[best][0]):
                best = i
        return best

    def _active(self, last: float | None, now: float | None) -> bool:
        return now is not None and last is not None and now - last <= self.stale_after

    def _forsaken(self, heads, now: float | None) -> bool:
        """Of two windows, the higher is stale and the lower active: the jump to it was not continued."""
        low, high = sorted(heads)
        return self._active(low[2], now) and not self._active(high[2], now)

    def seen(self, src: str, gen: int, kind: str, link: str, seq: int, now: float | None = None) -> bool:
        """True when check() at `now` would call this (src, gen, kind, link, seq) a replay whatever the
        packet's freshness (the floor and refused jumps are check()'s, after the digest); records nothing."""
        gens = self._gens.get(src)
        g = gens.get(gen) if gens else None
        if g is None:
            return False
        heads = g.windows.get((kind, link))
        if heads is None:
            return False
        if len(heads) == 2 and self._forsaken(heads, now):
            heads = [min(heads)]
        i = self._home(heads, seq)
        if i is None:
            return True
        top, bits, _ = heads[i]
        return seq <= top and bool(bits >> (top - seq) & 1)

    def pin(self, src: str, gen: int, floor: int | None = None) -> None:
        """`gen` is the generation of `src` the membership believes; seqs below `floor` are old."""
        self._pinned[src] = gen
        gens = self._gens.setdefault(src, {})
        for other in [x for x in gens if x < gen]:
            del gens[other]
        g = gens.get(gen)
        if g is None:
            g = gens[gen] = _Generation()
        if floor is not None and floor > g.floor:
            g.floor = floor

    def forget(self, src: str) -> None:
        """Drop everything known about `src`."""
        self._pinned.pop(src, None)
        self._gens.pop(src, None)

    def generation(self, src: str) -> int | None:
        """The pinned generation of `src` (None: not pinned)."""
        return self._pinned.get(src)

    def sources(self) -> int:
        return len(self._gens)
