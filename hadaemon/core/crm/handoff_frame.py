"""The handoff's release frame, encoded and checked (pure): the bytes that hadaemon.io.handoff sends and
receives on an AF_PACKET socket. See that module for what the frame is for.

Payload: MAGIC, key index (1 byte), body length (2 bytes), body ("NODE\\nTKEY", UTF-8), digest of
MAGIC + index + length + body.
"""
from __future__ import annotations

import struct
from typing import List, Tuple

from hadaemon.core.heartbeat.authkeys import AuthKeys

__all__ = ["ETH_P_HANDOFF", "release_frame", "parse_release", "release_tails"]

ETH_P_HANDOFF = 0x88B5
MAGIC = b"HAHO1"
_HEAD = struct.Struct("!BH")
ETHER_HEADER = 14


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def release_frame(src_mac: str, keys: AuthKeys, node: str, tkey: str) -> bytes:
    body = f"{node}\n{tkey}".encode()
    signed = MAGIC + _HEAD.pack(keys.active, len(body)) + body
    return b"\xff" * 6 + _mac(src_mac) + struct.pack("!H", ETH_P_HANDOFF) + signed + keys.sign(signed)


def release_tails(keys: AuthKeys, node: str, tkey: str) -> List[bytes]:
    """The bytes from offset 12 (after the MAC addresses) of every frame that parse_release accepts as
    (node, tkey): one per key of `keys` (the digests are deterministic). A frame whose bytes from
    offset 12 begin with one of them is that release (hadaemon.io.handoff_helper compares bytes: it
    needs no key)."""
    body = f"{node}\n{tkey}".encode()
    out = []
    for index in sorted(keys.keys):
        signed = MAGIC + _HEAD.pack(index, len(body)) + body
        out.append(struct.pack("!H", ETH_P_HANDOFF) + signed + keys.sign_with(index, signed))
    return out


def parse_release(frame: bytes, keys: AuthKeys) -> Tuple[str, str] | None:
    """(node, transition key) of a correctly signed release frame, else None."""
    if len(frame) < ETHER_HEADER + len(MAGIC) + _HEAD.size or frame[12:14] != struct.pack("!H", ETH_P_HANDOFF):
        return None
    payload = frame[ETHER_HEADER:]
    if not payload.startswith(MAGIC):
        return None
    index, size = _HEAD.unpack_from(payload, len(MAGIC))
    end = len(MAGIC) + _HEAD.size + size
    digest_size = keys.digest_size(index)
    if digest_size is None or len(payload) < end + digest_size:
        return None
    if not keys.verify(index, payload[:end], payload[end:end + digest_size]):
        return None
    try:
        node, tkey = payload[len(MAGIC) + _HEAD.size:end].decode().split("\n", 1)
    except (UnicodeDecodeError, ValueError):
        return None
    return node, tkey
