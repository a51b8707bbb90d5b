"""ping checks: ICMP echo over an unprivileged ICMP socket when allowed, else a raw socket (root)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from typing import Tuple

PAYLOAD = b"hadaemon-ldirectord-ping".ljust(56, b".")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _open(family: int) -> Tuple[socket.socket, bool]:
    """(socket, raw?) — ICMP datagram sockets need net.ipv4.ping_group_range; raw ones need root."""
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if family == 6 else socket.IPPROTO_ICMP
    try:
        s = socket.socket(af, socket.SOCK_DGRAM, proto)
        raw = False
    except PermissionError:
        s = socket.socket(af, socket.SOCK_RAW, proto)
        raw = True
    s.setblocking(False)
    return s, raw


def _echo(family: int, ident: int, seq: int) -> bytes:
    typ = 128 if family == 6 else 8
    hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
    csum = 0 if family == 6 else _checksum(hdr + PAYLOAD)   # the kernel sums ICMPv6
    return struct.pack("!BBHHH", typ, 0, csum, ident, seq) + PAYLOAD


def _is_reply(data: bytes, family: int, raw: bool, ident: int, seq: int) -> bool:
    if family == 4 and raw:
        data = data[(data[0] & 0x0F) * 4:] if data else data
    if len(data) < 8:
        return False
    typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
    if typ != (129 if family == 6 else 0) or rseq != seq:
        return False
    return rid == ident if raw else True      # datagram sockets: the kernel owns the id


async def _recv_reply(sock, family, raw, ident, seq, addr, deadline) -> bool:
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        fut = loop.create_future()
        loop.add_reader(sock.fileno(), lambda f=fut: f.done() or f.set_result(None))
        try:
            await asyncio.wait_for(fut, remaining)
        except asyncio.TimeoutError:
            return False
        finally:
            loop.remove_reader(sock.fileno())
        while True:
            try:
                data, src = sock.recvfrom(2048)
            except BlockingIOError:
                break
            if src[0] == addr and _is_reply(data, family, raw, ident, seq):
                return True


async def check_ping(spec) -> Tuple[bool, str]:
    """Up at the first echo reply among `attempts` tries of `timeout` seconds each."""
    sock, raw = _open(spec.family)
    try:
        ident = (os.getpid() ^ id(sock)) & 0xFFFF
        for attempt in range(max(1, spec.attempts)):
            seq = attempt + 1
            sock.sendto(_echo(spec.family, ident, seq), (spec.address, 0))
            if await _recv_reply(sock, spec.family, raw, ident, seq, spec.address,
                                 time.monotonic() + spec.timeout):
                return True, f"echo reply from {spec.address}"
        return False, f"no echo reply from {spec.address} ({spec.attempts} attempt(s))"
    finally:
        sock.close()
