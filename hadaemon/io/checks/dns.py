"""dns negotiate checks: query `request` (A, or PTR for an address) over UDP or TCP; an answer must match receive."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct
from typing import List, Tuple

from hadaemon.io.checks.base import FirstDatagram, close, connect, perl_regex

TYPE_A, TYPE_PTR = 1, 12


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("idna") if not label.isascii() else label.encode()
            if len(b) > 63:
                raise ValueError(f"DNS label too long: {label[:20]}...")
            out += bytes([len(b)]) + b
    return out + b"\0"


def question(request: str) -> Tuple[str, int]:
    """Net::DNS turns an address into a PTR query; anything else is an A query."""
    try:
        return ipaddress.ip_address(request).reverse_pointer, TYPE_PTR
    except ValueError:
        return request, TYPE_A


def build_query(qid: int, name: str, qtype: int) -> bytes:
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, 1)


def _read_name(msg: bytes, i: int) -> Tuple[str, int]:
    labels, jumped, end, hops = [], False, i, 0
    while True:
        n = msg[i]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = i + 2
            i = ((n & 0x3F) << 8) | msg[i + 1]
            jumped = True
            hops += 1
            if hops > 32:
                raise ValueError("DNS name compression loop")
            continue
        if n == 0:
            if not jumped:
                end = i + 1
            return ".".join(labels), end
        labels.append(msg[i + 1:i + 1 + n].decode("latin-1"))
        i += 1 + n


def parse_answers(msg: bytes, qid: int) -> List[Tuple[int, str]]:
    """(type, text) of each answer: dotted address for A, name for PTR."""
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise ValueError("DNS reply does not match the query")
    i = 12
    for _ in range(qd):
        _, i = _read_name(msg, i)
        i += 4
    out = []
    for _ in range(an):
        _, i = _read_name(msg, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        rdata = msg[i:i + rdlen]
        if rtype == TYPE_A and rdlen == 4:
            out.append((rtype, ".".join(str(b) for b in rdata)))
        elif rtype == TYPE_PTR:
            out.append((rtype, _read_name(msg, i)[0]))
        i += rdlen
    return out


async def check_dns(spec) -> Tuple[bool, str]:
    request = spec.request[1:] if spec.request.startswith("/") else spec.request
    name, qtype = question(request)
    qid = struct.unpack("!H", os.urandom(2))[0]
    query = build_query(qid, name, qtype)
    if spec.protocol == "tcp":
        reader, writer = await connect(spec)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            n = struct.unpack("!H", await reader.readexactly(2))[0]
            msg = await reader.readexactly(n)
        finally:
            await close(writer)
    else:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        ours = lambda d: len(d) >= 12 and struct.unpack("!H", d[:2])[0] == qid  # noqa: E731 - our query's answer
        transport, _ = await loop.create_datagram_endpoint(lambda: FirstDatagram(fut, ours),
                                                           remote_addr=(spec.address, spec.port))
        try:
            transport.sendto(query)
            msg = await fut
        finally:
            transport.close()
    answers = parse_answers(msg, qid)
    if not answers:
        return False, f"no answer for {name}"
    rx = perl_regex(spec.receive) if spec.receive else None
    for _, text in answers:
        if rx is not None and rx.search(text):
            return True, f"{name} -> {text}"
    return False, f"Response mismatch: {name} -> {', '.join(t for _, t in answers)[:80]}"
