"""Reliable, ordered-per-sender cluster messaging over lossy datagrams (pure: packets and time in, packets out).

Design (see docs/heartbeat-config.md, "Messaging"):

- Every (sender, receiver) pair has a *stream*: a sequence of fragments numbered 1, 2, ... and identified
  by (sender generation, receiver generation, stream_id). A broadcast is one copy per live member on
  each member's stream, so every receiver sees the sender's unicasts and broadcasts in sending order,
  and every member acks its own copy.
- Receivers deliver fragments strictly in stream order (holding back out-of-order ones, dropping
  duplicates), reassemble messages, decompress them, and ack each packet with a cumulative ack plus
  selective-ack ranges. Senders retransmit unacked fragments on a round-trip-time based timer with
  exponential backoff up to rto_max (and at once after three acks past a hole), for as long as the
  membership says the receiver is alive. A receiver that dies or restarts turns
  every unacked message to it into an Undeliverable report: never a silent loss.
- A sender keeps at most `window` fragments in flight per receiver and queues the rest; past
  `max_queued` fragments per receiver or `max_buffered_bytes` in all, send() raises Backpressure.

The shell (daemon) sets `link` (and may renumber `seq`) before encoding; it passes every received
msg/ack packet to on_packet(), membership changes to peer_joined()/peer_dead()/membership(), and calls
tick() at next_deadline().
"""
from __future__ import annotations

import heapq
import itertools
import zlib
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Tuple, Union

from hadaemon.core.heartbeat.messaging_streams import (  # noqa: F401 - _Runs: tests import it from here
    _compress, _decompress, _InStream, _Out, _OutStream, _Runs,
)
from hadaemon.core.heartbeat.wire import MAX_NAME, MAX_SACK_RANGES, Packet, fragment_capacity, restamp

RECV_WINDOW = 1024          # a receiver holds stream_seqs below expected + RECV_WINDOW; senders' window <= it
MAX_FRAGMENTS = 65535
FAST_RETRANSMIT = 3         # acks past a hole before it is resent without waiting for its timer


@dataclass(frozen=True)
class Delivered:
    """A complete message received from `src`, in that sender's order."""

    src: str
    channel: str
    body: bytes
    msg_id: int
    broadcast: bool = False


@dataclass(frozen=True)
class Undeliverable:
    """A message (or a broadcast's copy) that `dst` never confirmed: it died, or restarted."""

    dst: str
    channel: str
    msg_id: int
    reason: str = "peer dead"


class MessagingError(Exception):
    """send() refused: bad arguments, unknown or dead destination, message too large."""


class Backpressure(MessagingError):
    """send() refused because too much is already queued; retry after acks drain the queue."""


class Messenger:
    """One node's messaging endpoint. Not thread-safe; all times are the caller's monotonic clock."""

    def __init__(self, node: str, generation: int, max_fragment: int | None = None,
                 compression: str | None = "zlib", compression_threshold_bytes: int = 2048, *,
                 compression_threshold: int | None = None, rto_initial: float = 0.1, rto_max: float = 1.0,
                 rto_min: float = 0.05,
                 window: int = 256, max_queued: int = 8192, max_buffered_bytes: int = 64 << 20,
                 max_message_bytes: int = 8 << 20):
        if compression not in (None, "zlib", "bz2"):
            raise ValueError(f"unknown compression {compression!r}")
        if not 1 <= window <= RECV_WINDOW:
            raise ValueError(f"window must be 1..{RECV_WINDOW}")
        self.node = node
        self.generation = generation
        self.max_fragment = max_fragment
        self.compression = compression
        # compression_threshold (KB, as ha.cf says) wins over compression_threshold_bytes when given
        self.compression_threshold_bytes = (compression_threshold * 1024 if compression_threshold is not None
                                            else compression_threshold_bytes)
        self.rto_initial, self.rto_max = rto_initial, max(rto_max, rto_initial)
        self.rto_min = min(rto_min, self.rto_initial)
        self.window, self.max_queued = window, max_queued
        self.max_buffered_bytes, self.max_message_bytes = max_buffered_bytes, max_message_bytes
        self.buffered_bytes = 0
        self.last_msg_id = 0
        self.stats: Dict[str, int] = {k: 0 for k in (
            "sent", "delivered", "retransmits", "fast_retransmits", "duplicates", "stale", "out_of_window", "bad_messages",
            "undeliverable")}
        self._out: Dict[str, _OutStream] = {}
        self._in: Dict[str, _InStream] = {}
        self._pending: Dict[int, Tuple[str, Dict[str, int]]] = {}   # msg_id -> (channel, {peer: fragments left})
        self._timers: List[Tuple[float, int, str, int, int]] = []   # (when, tiebreak, peer, stream_id, seq)
        self._tiebreak = itertools.count()
        self._stream_ids = itertools.count(1)
        self._tx = {"msg": itertools.count(1), "ack": itertools.count(1)}

    # -- membership ---------------------------------------------------------------------------------
    def peer_joined(self, node: str, generation: int | None = None) -> List[Undeliverable]:
        """`node` (incarnation `generation`) is a live member. A new generation fails the old stream."""
        if node == self.node:
            return []
        gen = generation or 0     # 0: not told; the stream adopts the generation of the first ack
        failed: List[Undeliverable] = []
        stream = self._out.get(node)
        if stream is not None:
            if stream.peer_gen == gen or gen == 0:
                return []
            if stream.peer_gen == 0:
                stream.peer_gen = gen
                return []
            failed = self._fail(node, "peer restarted")
        self._out[node] = _OutStream(node, gen, next(self._stream_ids))
        return failed

    def peer_dead(self, node: str) -> List[Undeliverable]:
        """`node` left the membership: every message it did not ack is reported undeliverable."""
        return self._fail(node, "peer dead") if node in self._out else []

    def membership(self, nodes: Union[Mapping[str, int], Iterable[str]]) -> List[Undeliverable]:
        """Set the live members (names, or name -> generation); the others are treated as dead."""
        items = list(nodes.items()) if isinstance(nodes, Mapping) else [(n, None) for n in nodes]
        names = {n for n, _ in items}
        failed: List[Undeliverable] = []
        for gone in sorted(set(self._out) - names):
            failed += self.peer_dead(gone)
        for n, g in items:
            failed += self.peer_joined(n, g)
        return failed

    def members(self) -> Tuple[str, ...]:
        return tuple(sorted(self._out))

    def _fail(self, node: str, reason: str) -> List[Undeliverable]:
        stream = self._out.pop(node)
        failed: List[Undeliverable] = []
        seen = set()
        for e in itertools.chain(stream.inflight.values(), stream.queue):
            self.buffered_bytes -= e.size
            mid = e.pkt.msg_id
            if mid not in seen:
                seen.add(mid)
                failed.append(Undeliverable(node, e.pkt.channel, mid, reason))
                entry = self._pending.get(mid)
                if entry is not None:
                    entry[1].pop(node, None)
                    if not entry[1]:
                        del self._pending[mid]
        self.stats["undeliverable"] += len(failed)
        return failed

    # -- sending ------------------------------------------------------------------------------------
    def send(self, dst: str | None, channel: str, body: bytes, now: float) -> List[Packet]:
        """Queue `body` for `dst` ("" or None: every live member) and return the packets to send now."""
        broadcast = not dst
        if not isinstance(channel, str) or not channel or len(channel.encode("utf-8")) > MAX_NAME:
            raise MessagingError(f"channel must be 1 to {MAX_NAME} bytes of text")
        body = bytes(body)
        if len(body) > self.max_message_bytes:
            raise MessagingError(f"message of {len(body)} bytes exceeds the limit of {self.max_message_bytes}")
        if not broadcast:
            if dst == self.node:
                raise MessagingError(f"{dst!r} is the local node")
            if dst not in self._out:
                raise MessagingError(f"node {dst!r} is not a live member")
        targets = sorted(self._out) if broadcast else [dst]
        full = [t for t in targets if self.queued(t) >= self.max_queued]
        if full:   # cheap refusal before compressing
            raise Backpressure(f"{self.queued(full[0])} fragments already queued for {full[0]}")
        compressed = False
        data = body
        if self.compression and len(body) > self.compression_threshold_bytes:
            packed = _compress(self.compression, body)
            if len(packed) < len(body):
                data, compressed = packed, True
        if not targets:
            self.last_msg_id += 1
            return []
        cap = self.max_fragment or fragment_capacity(self.node, max(targets, key=lambda t: len(t.encode())),
                                                     channel)
        chunks = [data[i:i + cap] for i in range(0, len(data), cap)] or [b""]
        if len(chunks) > min(MAX_FRAGMENTS, self.max_queued):
            raise MessagingError(f"message needs {len(chunks)} fragments; at most "
                                 f"{min(MAX_FRAGMENTS, self.max_queued)}")
        for t in targets:
            s = self._out[t]
            if len(s.inflight) + len(s.queue) + len(chunks) > self.max_queued:
                raise Backpressure(f"{len(s.inflight) + len(s.queue)} fragments already queued for {t}")
        if self.buffered_bytes + len(data) * len(targets) > self.max_buffered_bytes:
            raise Backpressure(f"{self.buffered_bytes} bytes already buffered")
        self.last_msg_id += 1
        msg_id = self.last_msg_id
        self._pending[msg_id] = (channel, {t: len(chunks) for t in targets})
        out: List[Packet] = []
        for t in targets:
            s = self._out[t]
            for i, chunk in enumerate(chunks):
                pkt = Packet(kind="msg", src=self.node, dst=t, generation=self.generation, payload=chunk,
                             channel=channel, msg_id=msg_id, frag=i, nfrags=len(chunks), compressed=compressed,
                             broadcast=broadcast, dst_generation=s.peer_gen, stream_id=s.stream_id,
                             stream_seq=s.next_seq)
                s.next_seq += 1
                s.queue.append(_Out(pkt, len(chunk)))
                self.buffered_bytes += len(chunk)
            out += self._pump(s, now)
        self.stats["sent"] += 1
        return out

    def _pump(self, s: _OutStream, now: float) -> List[Packet]:
        out = []
        while s.queue:
            base = next(iter(s.inflight)) if s.inflight else s.queue[0].pkt.stream_seq
            e = s.queue[0]
            if e.pkt.stream_seq >= base + self.window:
                break
            s.queue.popleft()
            e.rto = self._rto(s)
            e.next_retx, e.attempts, e.sent_at = now + e.rto, 1, now
            s.inflight[e.pkt.stream_seq] = e
            heapq.heappush(self._timers, (e.next_retx, next(self._tiebreak), s.peer, s.stream_id, e.pkt.stream_seq))
            out.append(restamp(e.pkt, seq=next(self._tx["msg"])))
        return out

    def tick(self, now: float) -> List[Packet]:
        """Retransmit what is due (backoff doubles up to rto_max) and fill send windows."""
        out: List[Packet] = []
        while self._timers and self._timers[0][0] <= now:
            when, _, peer, sid, seq = heapq.heappop(self._timers)
            s = self._out.get(peer)
            e = s.inflight.get(seq) if s is not None and s.stream_id == sid else None
            if e is None or e.sacked or e.next_retx != when:
                continue
            e.rto = min(e.rto * 2, self.rto_max)
            e.next_retx = now + e.rto
            e.dupacks = 0
            e.attempts += 1
            heapq.heappush(self._timers, (e.next_retx, next(self._tiebreak), peer, sid, seq))
            self.stats["retransmits"] += 1
            out.append(restamp(e.pkt, seq=next(self._tx["msg"])))
        for s in self._out.values():
            out += self._pump(s, now)
        return out

    def next_deadline(self) -> float | None:
        """When tick() next has work (None: nothing in flight)."""
        while self._timers:
            when, _, peer, sid, seq = self._timers[0]
            s = self._out.get(peer)
            e = s.inflight.get(seq) if s is not None and s.stream_id == sid else None
            if e is not None and not e.sacked and e.next_retx == when:
                return when
            heapq.heappop(self._timers)
        return None

    def outstanding(self, msg_id: int) -> frozenset:
        """Members that have not yet acked every fragment of `msg_id` (empty: delivered everywhere)."""
        entry = self._pending.get(msg_id)
        return frozenset(entry[1]) if entry else frozenset()

    def queued(self, node: str) -> int:
        s = self._out.get(node)
        return len(s.inflight) + len(s.queue) if s else 0

    # -- receiving ----------------------------------------------------------------------------------
    def on_packet(self, pkt: Packet, now: float) -> Tuple[List[Delivered], List[Packet]]:
        """Handle an authenticated, replay-checked msg or ack; return deliveries and packets to send."""
        if pkt.src == self.node or pkt.dst != self.node:
            return [], []
        if pkt.kind == "msg":
            return self._on_msg(pkt)
        if pkt.kind == "ack":
            return [], self._on_ack(pkt, now)
        return [], []

    def _on_msg(self, pkt: Packet) -> Tuple[List[Delivered], List[Packet]]:
        if pkt.dst_generation not in (0, self.generation):
            self.stats["stale"] += 1          # meant for an earlier incarnation of this node
            return [], []
        rs = self._in.get(pkt.src)
        if rs is None or (pkt.generation, pkt.stream_id) > (rs.gen, rs.stream_id):
            rs = self._in[pkt.src] = _InStream(pkt.generation, pkt.stream_id)
        elif (pkt.generation, pkt.stream_id) < (rs.gen, rs.stream_id):
            self.stats["stale"] += 1
            return [], []
        delivered: List[Delivered] = []
        ss = pkt.stream_seq
        if ss < rs.expected or ss in rs.held:
            self.stats["duplicates"] += 1
        elif ss >= rs.expected + RECV_WINDOW:
            self.stats["out_of_window"] += 1
        else:
            rs.held[ss] = pkt
            rs.runs.add(ss)
            while rs.expected in rs.held:
                rs.runs.discard_first(rs.expected)
                d = self._reassemble(rs, rs.held.pop(rs.expected))
                rs.expected += 1
                if d is not None:
                    delivered.append(d)
        return delivered, [self._ack(pkt.src, rs, ss)]

    def _reassemble(self, rs: _InStream, p: Packet) -> Delivered | None:
        if p.frag == 0:
            if rs.partial:
                self.stats["bad_messages"] += 1
            rs.partial, rs.partial_bytes = [], 0
        elif (not rs.partial or rs.partial[0].msg_id != p.msg_id or len(rs.partial) != p.frag
              or rs.partial[0].nfrags != p.nfrags):
            self.stats["bad_messages"] += 1
            rs.partial, rs.partial_bytes = [], 0
            return None
        rs.partial.append(p)
        rs.partial_bytes += len(p.payload)
        if rs.partial_bytes > self.max_message_bytes + 64:
            self.stats["bad_messages"] += 1
            rs.partial, rs.partial_bytes = [], 0
            return None
        if len(rs.partial) < p.nfrags:
            return None
        first = rs.partial[0]
        data = b"".join(f.payload for f in rs.partial)
        rs.partial, rs.partial_bytes = [], 0
        if first.compressed:
            try:
                data = _decompress(data, self.max_message_bytes)
            except (ValueError, OSError, EOFError, zlib.error):
                self.stats["bad_messages"] += 1
                return None
        self.stats["delivered"] += 1
        return Delivered(first.src, first.channel, data, first.msg_id, first.broadcast)

    def _ack(self, src: str, rs: _InStream, trigger: int) -> Packet:
        ranges = rs.runs.head(MAX_SACK_RANGES)
        return Packet(kind="ack", src=self.node, dst=src, generation=self.generation, seq=next(self._tx["ack"]),
                      dst_generation=rs.gen, stream_id=rs.stream_id, ack_seq=rs.expected - 1, sack=ranges,
                      stream_seq=trigger)

    def _on_ack(self, pkt: Packet, now: float) -> List[Packet]:
        s = self._out.get(pkt.src)
        if (s is None or pkt.stream_id != s.stream_id or pkt.dst_generation != self.generation
                or (s.peer_gen and pkt.generation != s.peer_gen)):
            self.stats["stale"] += 1
            return []
        if not s.peer_gen:
            s.peer_gen = pkt.generation
        trigger = s.inflight.get(pkt.stream_seq)    # the fragment whose arrival sent this ack
        if trigger is not None and trigger.attempts == 1 and not trigger.sacked:
            self._rtt_sample(s, now - trigger.sent_at)
        while s.inflight:
            seq = next(iter(s.inflight))
            if seq > pkt.ack_seq:
                break
            self._acked(s, s.inflight.pop(seq))
        if s.inflight:
            lo, hi = next(iter(s.inflight)), next(reversed(s.inflight))
            marks = s.sack_marks
            for a, b in pkt.sack:
                end = min(b, hi)
                for seq in range(max(a, lo, marks.get(a, a - 1) + 1), end + 1):
                    e = s.inflight.get(seq)
                    if e is not None:
                        e.sacked = True   # no more retransmissions; done only when the cumulative ack passes it
                if end > marks.get(a, end - 1):
                    marks[a] = end
            if len(marks) > 4 * MAX_SACK_RANGES:
                s.sack_marks = {a: b for a, b in marks.items() if b > pkt.ack_seq}
            if pkt.sack:
                return self._fast_retransmit(s, pkt.sack[-1][1], now) + self._pump(s, now)
        return self._pump(s, now)

    def _rto(self, s: _OutStream) -> float:
        if s.srtt is None:
            return self.rto_initial
        return min(max(s.srtt + 4 * s.rttvar, self.rto_min), self.rto_max)

    @staticmethod
    def _rtt_sample(s: _OutStream, r: float) -> None:
        if s.srtt is None:
            s.srtt, s.rttvar = r, r / 2
        else:
            s.rttvar = 0.75 * s.rttvar + 0.25 * abs(s.srtt - r)
            s.srtt = 0.875 * s.srtt + 0.125 * r

    def _fast_retransmit(self, s: _OutStream, top: int, now: float) -> List[Packet]:
        """Holes below what the receiver already holds: resend one after FAST_RETRANSMIT such acks."""
        out = []
        for n, (seq, e) in enumerate(s.inflight.items()):
            if seq >= top or n >= 2 * MAX_SACK_RANGES:
                break
            if e.sacked or e.dupacks < 0:
                continue
            e.dupacks += 1
            if e.dupacks >= FAST_RETRANSMIT:
                e.dupacks = -1      # once; its timer (which rearms this) handles a lost resend
                e.next_retx = now + e.rto
                e.attempts += 1
                heapq.heappush(self._timers, (e.next_retx, next(self._tiebreak), s.peer, s.stream_id, seq))
                self.stats["fast_retransmits"] += 1
                out.append(restamp(e.pkt, seq=next(self._tx["msg"])))
        return out

    def _acked(self, s: _OutStream, e: _Out) -> None:
        self.buffered_bytes -= e.size
        entry = self._pending.get(e.pkt.msg_id)
        if entry is None:
            return
        left = entry[1]
        if s.peer in left:
            left[s.peer] -= 1
            if left[s.peer] <= 0:
                del left[s.peer]
                if not left:
                    del self._pending[e.pkt.msg_id]
