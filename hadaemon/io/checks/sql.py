"""mysql and pgsql negotiate checks: speak the wire protocols to log in and run `request`; up when it returns rows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from typing import Tuple

from hadaemon.io.checks.base import close, connect

# ---- MySQL / MariaDB ---------------------------------------------------------

CLIENT_LONG_PASSWORD, CLIENT_CONNECT_WITH_DB, CLIENT_PROTOCOL_41 = 0x1, 0x8, 0x200
CLIENT_TRANSACTIONS, CLIENT_SECURE_CONNECTION, CLIENT_PLUGIN_AUTH = 0x2000, 0x8000, 0x80000


def _md5(data: bytes):
    """MD5 as the protocol needs it (not for security; allowed on FIPS systems)."""
    return hashlib.md5(data, usedforsecurity=False)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def native_scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    h1 = hashlib.sha1(password.encode()).digest()
    return _xor(h1, hashlib.sha1(nonce[:20] + hashlib.sha1(h1).digest()).digest())


def sha2_scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    h1 = hashlib.sha256(password.encode()).digest()
    return _xor(h1, hashlib.sha256(hashlib.sha256(h1).digest() + nonce[:20]).digest())


class _MyConn:
    def __init__(self, reader, writer):
        self.r, self.w, self.seq = reader, writer, 0

    async def read(self) -> bytes:
        head = await self.r.readexactly(4)
        n = head[0] | head[1] << 8 | head[2] << 16
        self.seq = (head[3] + 1) & 0xFF
        return await self.r.readexactly(n)

    def write(self, payload: bytes) -> None:
        self.w.write(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF


def _my_error(p: bytes) -> str:
    code = struct.unpack("<H", p[1:3])[0] if len(p) >= 3 else 0
    msg = p[9:] if p[3:4] == b"#" else p[3:]
    return f"error {code}: {msg.decode('utf-8', 'replace')[:100]}"


def _lenenc(p: bytes, i: int) -> Tuple[int, int]:
    c = p[i]
    if c < 0xFB:
        return c, i + 1
    if c == 0xFC:
        return struct.unpack("<H", p[i + 1:i + 3])[0], i + 3
    if c == 0xFD:
        return int.from_bytes(p[i + 1:i + 4], "little"), i + 4
    return struct.unpack("<Q", p[i + 1:i + 9])[0], i + 9


def _scramble_for(plugin: str, password: str, nonce: bytes) -> bytes:
    if plugin == "caching_sha2_password":
        return sha2_scramble(password, nonce)
    if plugin == "mysql_clear_password":
        return password.encode() + b"\0"
    return native_scramble(password, nonce)


async def _my_auth(c: _MyConn, spec) -> Tuple[bool, str]:
    p = await c.read()
    if p[:1] == b"\xff":
        return False, _my_error(p)
    if p[0] != 10:
        return False, f"unsupported MySQL protocol {p[0]}"
    end = p.index(b"\0", 1)
    version = p[1:end].decode("latin-1")
    i = end + 1 + 4
    nonce = p[i:i + 8]
    i += 9
    plugin = "mysql_native_password"
    if len(p) > i + 2:
        i += 2 + 1 + 2 + 2
        alen = p[i]
        i += 1 + 10
        part2 = p[i:i + max(13, alen - 8)]
        nonce += part2.rstrip(b"\0")[:12]
        i += max(13, alen - 8)
        if i < len(p):
            plugin = p[i:].split(b"\0", 1)[0].decode("latin-1") or plugin
    caps = (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH)
    if spec.database:
        caps |= CLIENT_CONNECT_WITH_DB
    auth = _scramble_for(plugin, spec.passwd, nonce)
    payload = (struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 23 + spec.login.encode() + b"\0"
               + bytes([len(auth)]) + auth)
    if spec.database:
        payload += spec.database.encode() + b"\0"
    payload += plugin.encode() + b"\0"
    c.write(payload)
    for _ in range(4):
        p = await c.read()
        if p[:1] == b"\x00":
            return True, version
        if p[:1] == b"\xff":
            return False, _my_error(p)
        if p[:1] == b"\xfe":                       # auth switch
            name, _, data = p[1:].partition(b"\0")
            plugin = name.decode("latin-1")
            c.write(_scramble_for(plugin, spec.passwd, data.rstrip(b"\0")))
        elif p[:2] == b"\x01\x03":                 # caching_sha2 fast auth done; OK follows
            continue
        elif p[:2] == b"\x01\x04":
            return False, "caching_sha2_password full authentication needs TLS (not supported)"
        else:
            return False, "unexpected authentication reply"
    return False, "authentication did not finish"


async def check_mysql(spec) -> Tuple[bool, str]:
    if not spec.login or not spec.request.lstrip("/"):
        return False, "mysql check needs login and request (ldirectord: not adding the real server)"
    reader, writer = await connect(spec)
    try:
        c = _MyConn(reader, writer)
        ok, detail = await _my_auth(c, spec)
        if not ok:
            return False, f"login: {detail}"
        c.seq = 0
        c.write(b"\x03" + spec.request.lstrip("/").encode())
        p = await c.read()
        if p[:1] == b"\xff":
            return False, f"query: {_my_error(p)}"
        if p[:1] == b"\x00":
            return False, "query returned no result set"
        ncols, _ = _lenenc(p, 0)
        for _ in range(ncols):
            await c.read()
        p = await c.read()                         # EOF after the column definitions
        if p[:1] != b"\xfe":
            return False, "malformed result set"
        rows = 0
        while True:
            p = await c.read()
            if p[:1] == b"\xfe" and len(p) < 9:
                break
            if p[:1] == b"\xff":
                return False, f"query: {_my_error(p)}"
            rows += 1
        c.seq = 0
        c.write(b"\x01")                           # COM_QUIT
        return (rows > 0), f"{rows} row(s)"
    finally:
        await close(writer)


# ---- PostgreSQL ----------------------------------------------------------------

def _pg_msg(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


async def _pg_read(reader) -> Tuple[bytes, bytes]:
    head = await reader.readexactly(5)
    n = struct.unpack("!I", head[1:])[0]
    if n < 4 or n > (1 << 24):
        raise ValueError("bad PostgreSQL message length")
    return head[:1], await reader.readexactly(n - 4)


def _pg_error(payload: bytes) -> str:
    fields = {f[:1]: f[1:].decode("utf-8", "replace") for f in payload.split(b"\0") if f}
    return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', '?')}"


def scram_client_final(password: str, client_first_bare: str, server_first: str) -> Tuple[str, bytes]:
    """(client-final-message, expected server signature) for SCRAM-SHA-256."""
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    proof = _xor(client_key, hmac.new(stored, auth_message, "sha256").digest())
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return f"{without_proof},p={base64.b64encode(proof).decode()}", hmac.new(
        server_key, auth_message, "sha256").digest()


async def _pg_auth(reader, writer, spec) -> Tuple[bool, str]:
    params = b"user\0" + spec.login.encode() + b"\0"
    if spec.database:
        params += b"database\0" + spec.database.encode() + b"\0"
    body = struct.pack("!I", 196608) + params + b"\0"
    writer.write(struct.pack("!I", len(body) + 4) + body)
    scram = None
    while True:
        kind, p = await _pg_read(reader)
        if kind == b"E":
            return False, _pg_error(p)
        if kind == b"Z":
            return True, "ready"
        if kind != b"R":
            continue
        code = struct.unpack("!I", p[:4])[0]
        if code == 0:
            continue
        if code == 3:
            writer.write(_pg_msg(b"p", spec.passwd.encode() + b"\0"))
        elif code == 5:
            inner = _md5((spec.passwd + spec.login).encode()).hexdigest()
            outer = _md5(inner.encode() + p[4:8]).hexdigest()
            writer.write(_pg_msg(b"p", b"md5" + outer.encode() + b"\0"))
        elif code == 10:
            if b"SCRAM-SHA-256" not in p[4:].split(b"\0"):
                return False, "server offers no supported SASL mechanism"
            bare = "n=,r=" + base64.b64encode(os.urandom(18)).decode()
            first = ("n,," + bare).encode()
            writer.write(_pg_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
            scram = bare
        elif code == 11 and scram is not None:
            final, scram_sig = scram_client_final(spec.passwd, scram, p[4:].decode())
            writer.write(_pg_msg(b"p", final.encode()))
            scram = scram_sig  # type: ignore[assignment]
        elif code == 12:
            v = dict(kv.split("=", 1) for kv in p[4:].decode().split(",")).get("v", "")
            if base64.b64decode(v) != scram:
                return False, "SCRAM server signature mismatch"
        else:
            return False, f"unsupported PostgreSQL authentication method {code}"
        await writer.drain()


async def check_pgsql(spec) -> Tuple[bool, str]:
    if not spec.login or not spec.request.lstrip("/"):
        return False, "pgsql check needs login and request (ldirectord: not adding the real server)"
    reader, writer = await connect(spec)
    try:
        ok, detail = await _pg_auth(reader, writer, spec)
        if not ok:
            return False, f"login: {detail}"
        writer.write(_pg_msg(b"Q", spec.request.lstrip("/").encode() + b"\0"))
        await writer.drain()
        rows, error = 0, None
        while True:
            kind, p = await _pg_read(reader)
            if kind == b"D":
                rows += 1
            elif kind == b"E":
                error = _pg_error(p)
            elif kind == b"Z":
                break
        writer.write(_pg_msg(b"X", b""))
        if error:
            return False, f"query: {error}"
        return rows > 0, f"{rows} row(s)"
    finally:
        await close(writer)
