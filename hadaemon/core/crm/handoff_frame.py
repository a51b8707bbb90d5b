"""The handoff's release frame, encoded and checked (pure): the bytes that hadaemon.io.handoff sends and
receives on an AF_PACKET socket. See that module for what the frame is for.

Payload: MAGIC, key index (1 byte), body length (2 bytes), body ("NODE\\nTKEY", UTF-8), digest of
MAGIC + index + length + body. The armed frame (the new node tells the old one that its start waits,
armed, for that release: the old node's stop waits a moment for it) has the same layout with ARMED for
MAGIC; neither is ever taken for the other.
"""
from __future__ import annotations

import struct
from typing import List, Tuple

from hadaemon.core.heartbeat.authkeys import AuthKeys

__all__ = ["ETH_P_HANDOFF", "ARMED", "release_frame", "parse_release", "release_tails"]

ETH_P_HANDOFF = 0x88B5
MAGIC = b"HAHO1"        # a release: NODE removed the address; TKEY is its stop
ARMED = b"HAAR1"        # NODE (the new node) waits, armed, for the release of the stop TKEY
_HEAD = struct.Struct("!BH")
ETHER_HEADER = 14


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def release_frame(src_mac: str, keys: AuthKeys, node: str, tkey: str, magic: bytes = MAGIC) -> bytes:
    """The release frame (magic=ARMED: the armed frame, same layout)."""
    body = f"{node}\n{tkey}".encode()
    signed = magic + _HEAD.pack(keys.active, len(body)) + body
    return b"\xff" * 6 + _mac(src_mac) + struct.pack("!H", ETH_P_HANDOFF) + signed + keys.sign(signed)


def release_tails(keys: AuthKeys, node: str, tkey: str, magic: bytes = MAGIC) -> List[bytes]:
    """The bytes from offset 12 (after the MAC addresses) of every frame that parse_release accepts as
    (node, tkey): one per key of `keys` (the digests are deterministic). A frame whose bytes from
    offset 12 begin with one of them is that release (hadaemon.io.handoff_helper compares bytes: it
    needs no key)."""
    body = f"{node}\n{tkey}".encode()
    out = []
    for index in sorted(keys.keys):
        signed = magic + _HEAD.pack(index, len(body)) + body
        out.append(struct.pack("!H", ETH_P_HANDOFF) + signed + keys.sign_with(index, signed))
    return out


def parse_release(frame: bytes, keys: AuthKeys, magic: bytes = MAGIC) -> Tuple[str, str] | None:
    """(node, transition key) of a correctly signed release frame, else None."""
    if len(frame) < ETHER_HEADER + len(magic) + _HEAD.size or frame[12:14] != struct.pack("!H", ETH_P_HANDOFF):
        return None
    payload = frame[ETHER_HEADER:]
    if not payload.startswith(magic):
        return None
    index, size = _HEAD.unpack_from(payload, len(magic))
    end = len(magic) + _HEAD.size + size
    digest_size = keys.digest_size(index)
    if digest_size is None or len(payload) < end + digest_size:
        return None
    if not keys.verify(index, payload[:end], payload[end:end + digest_size]):
        return None
    try:
        node, tkey = payload[len(magic) + _HEAD.size:end].decode().split("\n", 1)
    except (UnicodeDecodeError, ValueError):
        return None
    return node, tkey
