"""Messages between crmd instances on the heartbeat channel "crmd": JSON objects with a type field "t".

vote          {vote}                                  election (every node -> every node)
join_offer    {round, dc, instance}                   DC -> voter
join_report   {round, version, cib, lrm, attrs}       voter -> DC (cib: configuration-only XML)
cib           {xml, ack}                              DC -> members: the whole CIB (ack: request id or 0)
cib_ack       {version, ack}                          member -> DC
op            {tkey, rsc, op, digest, target_rc}      DC -> node: run an operation through the LRM
op_result     {record}                                node -> DC: an OpRecord
ops           {ops: [op fields...]}                   DC -> node: run these in order, each after the previous
                                                      one's expected result (a chain); chain_stop {tkeys}:
                                                      do not start these; chain_skipped {tkeys}: node -> DC,
                                                      the chained actions it did not run
fence         {id, device, target, action, timeout_ms}  DC -> executor node; fence_result {id, ok, text}
modify        {req, conf, reason} / modify_reply {req, version | kind, message}   member <-> DC
cleanup       {req, rsc, node} / forget {rsc}          member -> DC / DC -> node (drop local history)
attr          {name, value}                           node -> DC: a transient node attribute (pingd)

Large messages (a whole CIB, a join report) are zlib-compressed when over COMPRESS_OVER bytes:
z             {data}                                  base64 of the compressed message
and, when still over CHUNK bytes (ha-heartbeat takes at most 1 MiB per message), cut into chunks:
chunk         {id, i, n, data}                        part i of n of message id (base64, compressed)
The receiver reassembles them (Reassembler: bounded size, count and age); the sender sends the chunks
of one message in order and holds later messages behind them, so messages keep their order.
"""
from __future__ import annotations

import base64
import itertools
import json
import zlib
from typing import Any, Dict, List, Tuple

CHANNEL = "crmd"

__all__ = ["CHANNEL", "encode", "decode", "frames", "Reassembler", "CHUNK", "COMPRESS_OVER", "MAX_MESSAGE"]

COMPRESS_OVER = 64 * 1024        # compress messages larger than this
CHUNK = 512 * 1024               # compressed bytes per chunk (base64: ~683 KiB, under the 1 MiB limit)
MAX_MESSAGE = 256 * 1024 * 1024  # largest message accepted once decompressed
MAX_PARTIAL = 4                  # messages being reassembled per sender
PARTIAL_TTL = 120.0              # seconds a partial message is kept
_ids = itertools.count(1)


def encode(kind: str, /, **fields: Any) -> bytes:
    fields["t"] = kind
    return json.dumps(fields, separators=(",", ":")).encode()


def decode(body: bytes) -> Dict[str, Any] | None:
    """The message, or None when it is not a crmd message we understand."""
    try:
        msg = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        return None
    return msg


def frames(kind: str, /, **fields: Any) -> List[bytes]:
    """The message as one or more bodies to send in order (compressed, chunked when large)."""
    body = encode(kind, **fields)
    if len(body) <= COMPRESS_OVER:
        return [body]
    z = zlib.compress(body, 6)
    if len(z) <= CHUNK:
        return [encode("z", data=base64.b64encode(z).decode())]
    mid = next(_ids)
    parts = [z[i:i + CHUNK] for i in range(0, len(z), CHUNK)]
    return [encode("chunk", id=mid, i=k, n=len(parts), data=base64.b64encode(p).decode())
            for k, p in enumerate(parts)]


def _inflate(z: bytes) -> Dict[str, Any] | None:
    d = zlib.decompressobj()
    try:
        body = d.decompress(z, MAX_MESSAGE)
    except zlib.error:
        return None
    if d.unconsumed_tail or not d.eof:
        return None   # larger than MAX_MESSAGE, or truncated
    msg = decode(body)
    if msg is None or msg["t"] in ("z", "chunk"):
        return None
    return msg


class Reassembler:
    """Compressed and chunked messages back to messages; None while incomplete or when bad (the
    reason is in .last_error)."""

    def __init__(self) -> None:
        self.partial: Dict[Tuple[str, int], Dict[str, Any]] = {}
        self.last_error = ""

    def feed(self, src: str, msg: Dict[str, Any], now: float) -> Dict[str, Any] | None:
        self.last_error = ""
        t = msg["t"]
        if t not in ("z", "chunk"):
            return msg
        try:
            data = base64.b64decode(msg["data"], validate=True)
        except (KeyError, TypeError, ValueError):
            self.last_error = f"bad {t} data"
            return None
        if t == "z":
            out = _inflate(data)
            if out is None:
                self.last_error = "bad compressed message"
            return out
        self._expire(now)
        try:
            mid, i, n = int(msg["id"]), int(msg["i"]), int(msg["n"])
        except (KeyError, TypeError, ValueError):
            self.last_error = "bad chunk header"
            return None
        if not (0 <= i < n <= MAX_MESSAGE // CHUNK + 1):
            self.last_error = f"bad chunk {i}/{n}"
            return None
        key = (src, mid)
        entry = self.partial.get(key)
        if entry is None:
            if sum(1 for k in self.partial if k[0] == src) >= MAX_PARTIAL:
                oldest = min((k for k in self.partial if k[0] == src), key=lambda k: self.partial[k]["t"])
                del self.partial[oldest]
                self.last_error = "too many partial messages: the oldest dropped"
            entry = self.partial[key] = {"n": n, "parts": {}, "t": now}
        if entry["n"] != n:
            del self.partial[key]
            self.last_error = "chunk count changed"
            return None
        entry["parts"][i] = data
        if len(entry["parts"]) < n:
            return None
        del self.partial[key]
        out = _inflate(b"".join(entry["parts"][k] for k in range(n)))
        if out is None:
            self.last_error = "bad chunked message"
        return out

    def _expire(self, now: float) -> None:
        for k in [k for k, e in self.partial.items() if now - e["t"] > PARTIAL_TTL]:
            del self.partial[k]

    def forget(self, src: str) -> None:
        """Drop what src had sent in part (it left or restarted)."""
        for k in [k for k in self.partial if k[0] == src]:
            del self.partial[k]
