"""A minimal BER encoder/decoder: just what LDAP bind + search need."""

from __future__ import annotations

from typing import List, Tuple


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + length(len(value)) + value


def integer(n: int, tag: int = 0x02) -> bytes:
    b = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return tlv(tag, b)


def octets(s: bytes, tag: int = 0x04) -> bytes:
    return tlv(tag, s)


def seq(*items: bytes, tag: int = 0x30) -> bytes:
    return tlv(tag, b"".join(items))


def boolean(v: bool) -> bytes:
    return tlv(0x01, b"\xff" if v else b"\x00")


def header(data: bytes) -> Tuple[int, int, int]:
    """(tag, header length, value length) of the TLV at the start of data; ValueError if incomplete."""
    if len(data) < 2:
        raise ValueError("incomplete BER header")
    tag, first = data[0], data[1]
    if first < 0x80:
        return tag, 2, first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        raise ValueError("bad or incomplete BER length")
    return tag, 2 + n, int.from_bytes(data[2:2 + n], "big")


def parse(data: bytes) -> List[Tuple[int, bytes]]:
    """The TLVs (tag, value) laid one after another in data."""
    out, i = [], 0
    while i < len(data):
        tag, hl, vl = header(data[i:])
        if i + hl + vl > len(data):
            raise ValueError("truncated BER value")
        out.append((tag, data[i + hl:i + hl + vl]))
        i += hl + vl
    return out


def to_int(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True) if value else 0
