"""The messenger's per-stream state and message compression (pure helpers of hadaemon.core.heartbeat.messaging).

_OutStream: one (sender, receiver) stream's fragments in flight and queued, with its round-trip estimate;
_InStream: what a receiver holds of one stream (out-of-order fragments, the runs it acks selectively, a
partial message); _Runs: disjoint sorted intervals for selective acks; _compress/_decompress: the body
encoding (a method byte, then zlib or bz2), bounded on the way in.
"""
from __future__ import annotations

import bisect
import bz2
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Tuple

from hadaemon.core.heartbeat.wire import Packet

_ZLIB, _BZ2 = 1, 2


@dataclass
class _Out:
    pkt: Packet
    size: int
    rto: float = 0.0
    sent_at: float = 0.0     # first transmission (RTT samples come only from fragments sent once)
    next_retx: float = 0.0
    attempts: int = 0
    dupacks: int = 0         # acks showing later fragments received while this one was not
    sacked: bool = False     # the receiver holds it, but has not delivered it yet (a gap before it)


class _Runs:
    """Disjoint sorted intervals of integers (the stream seqs a receiver holds), for cheap selective acks."""

    __slots__ = ("starts", "ends")

    def __init__(self) -> None:
        self.starts: List[int] = []
        self.ends: List[int] = []

    def add(self, x: int) -> None:
        i = bisect.bisect_right(self.starts, x)
        left = i > 0 and self.ends[i - 1] >= x - 1
        right = i < len(self.starts) and self.starts[i] == x + 1
        if left and right:
            self.ends[i - 1] = self.ends[i]
            del self.starts[i], self.ends[i]
        elif left:
            self.ends[i - 1] = max(self.ends[i - 1], x)
        elif right:
            self.starts[i] = x
        else:
            self.starts.insert(i, x)
            self.ends.insert(i, x)

    def discard_first(self, x: int) -> None:
        """Remove x when it is the smallest element (in-order delivery)."""
        if self.starts and self.starts[0] == x:
            if self.ends[0] == x:
                del self.starts[0], self.ends[0]
            else:
                self.starts[0] = x + 1

    def head(self, n: int) -> Tuple[Tuple[int, int], ...]:
        return tuple(zip(self.starts[:n], self.ends[:n]))


@dataclass
class _OutStream:
    peer: str
    peer_gen: int
    stream_id: int
    next_seq: int = 1
    inflight: OrderedDict[int, _Out] = field(default_factory=OrderedDict)
    queue: Deque[_Out] = field(default_factory=deque)
    sack_marks: Dict[int, int] = field(default_factory=dict)   # sack range start -> highest seq marked
    srtt: float | None = None                                  # smoothed round-trip time (RFC 6298)
    rttvar: float = 0.0


@dataclass
class _InStream:
    gen: int
    stream_id: int
    expected: int = 1
    held: Dict[int, Packet] = field(default_factory=dict)
    runs: _Runs = field(default_factory=_Runs)
    partial: List[Packet] = field(default_factory=list)
    partial_bytes: int = 0


def _compress(method: str, body: bytes) -> bytes:
    if method == "bz2":
        return bytes([_BZ2]) + bz2.compress(body, 9)
    return bytes([_ZLIB]) + zlib.compress(body, 6)


def _decompress(data: bytes, limit: int) -> bytes:
    if not data:
        raise ValueError("empty compressed body")
    d = bz2.BZ2Decompressor() if data[0] == _BZ2 else zlib.decompressobj() if data[0] == _ZLIB else None
    if d is None:
        raise ValueError(f"unknown compression {data[0]}")
    out = d.decompress(data[1:], limit + 1) if data[0] == _ZLIB else d.decompress(data[1:], max_length=limit + 1)
    if len(out) > limit:
        raise ValueError(f"decompressed message exceeds {limit} bytes")
    if not d.eof:
        raise ValueError("truncated compressed message")
    return out
