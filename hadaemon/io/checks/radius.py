"""radius negotiate checks: Access-Request with secret; any authentic Accept or Reject means up."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from typing import Tuple

from hadaemon.io.checks.base import FirstDatagram

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3


def _md5(data: bytes):
    """MD5 as the protocol needs it (not for security; allowed on FIPS systems)."""
    return hashlib.md5(data, usedforsecurity=False)


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2865 5.2 User-Password hiding."""
    padded = password + b"\0" * (-len(password) % 16 or (16 if not password else 0))
    out, prev = b"", authenticator
    for i in range(0, len(padded), 16):
        b = _md5(secret + prev).digest()
        chunk = bytes(x ^ y for x, y in zip(padded[i:i + 16], b))
        out += chunk
        prev = chunk
    return out


def access_request(ident: int, authenticator: bytes, user: str, password: str, secret: str) -> bytes:
    attrs = b""
    u = user.encode()
    attrs += struct.pack("!BB", 1, len(u) + 2) + u
    p = hide_password(password.encode(), secret.encode(), authenticator)
    attrs += struct.pack("!BB", 2, len(p) + 2) + p
    return struct.pack("!BBH", ACCESS_REQUEST, ident, 20 + len(attrs)) + authenticator + attrs


def response_ok(data: bytes, ident: int, authenticator: bytes, secret: str) -> Tuple[bool, str]:
    if len(data) < 20:
        return False, "short RADIUS reply"
    code, rid, length = struct.unpack("!BBH", data[:4])
    if rid != ident or length > len(data):
        return False, "RADIUS reply does not match the request"
    expect = _md5(data[:4] + authenticator + data[20:length] + secret.encode()).digest()
    if expect != data[4:20]:
        return False, "bad response authenticator (wrong secret?)"
    if code == ACCESS_ACCEPT:
        return True, "Access-Accept"
    if code == ACCESS_REJECT:
        return True, "Access-Reject (server answered)"
    return False, f"unexpected RADIUS code {code}"


async def check_radius(spec) -> Tuple[bool, str]:
    """Like Authen::Radius check_pwd: an answer (Accept or Reject) is up; none is down."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: FirstDatagram(fut), remote_addr=(spec.address, spec.port))
    try:
        ident, auth = os.urandom(1)[0], os.urandom(16)
        transport.sendto(access_request(ident, auth, spec.login, spec.passwd, spec.secret))
        data = await fut
        return response_ok(data, ident, auth, spec.secret)
    finally:
        transport.close()
