"""ldap/ldaps negotiate checks: bind (anonymous or login/passwd), base search of request, one entry whose DN matches receive."""

from __future__ import annotations

import asyncio
from typing import Tuple

from hadaemon.io.checks import ber
from hadaemon.io.checks.base import close, connect, matches

BIND_REQ, BIND_RES, UNBIND_REQ = 0x60, 0x61, 0x42
SEARCH_REQ, SEARCH_ENTRY, SEARCH_DONE, SEARCH_REF = 0x63, 0x64, 0x65, 0x73
MAX_MESSAGE = 1 << 20


def bind_request(msgid: int, dn: str, password: str) -> bytes:
    op = ber.seq(ber.integer(3), ber.octets(dn.encode()), ber.octets(password.encode(), 0x80), tag=BIND_REQ)
    return ber.seq(ber.integer(msgid), op)


def search_request(msgid: int, base: str) -> bytes:
    op = ber.seq(ber.octets(base.encode()), ber.integer(0, 0x0A), ber.integer(0, 0x0A),
                 ber.integer(0), ber.integer(0), ber.boolean(False),
                 ber.octets(b"objectClass", 0x87), ber.seq(), tag=SEARCH_REQ)
    return ber.seq(ber.integer(msgid), op)


async def read_message(reader: asyncio.StreamReader) -> Tuple[int, int, bytes]:
    """(message id, protocolOp tag, protocolOp value) of the next LDAPMessage."""
    head = await reader.readexactly(2)
    if head[1] & 0x80:
        head += await reader.readexactly(head[1] & 0x7F)
    tag, _, vlen = ber.header(head)
    if tag != 0x30 or vlen > MAX_MESSAGE:
        raise ValueError("not an LDAP message")
    body = ber.parse(await reader.readexactly(vlen))
    if len(body) < 2 or body[0][0] != 0x02:
        raise ValueError("malformed LDAP message")
    return ber.to_int(body[0][1]), body[1][0], body[1][1]


def result_code(op_value: bytes) -> Tuple[int, str]:
    parts = ber.parse(op_value)
    code = ber.to_int(parts[0][1])
    diag = parts[2][1].decode("utf-8", "replace") if len(parts) > 2 else ""
    return code, diag


async def check_ldap(spec) -> Tuple[bool, str]:
    reader, writer = await connect(spec, tls=spec.service == "ldaps")
    try:
        if spec.login and spec.passwd:
            writer.write(bind_request(1, spec.login, spec.passwd))
        else:
            writer.write(bind_request(1, "", ""))
        await writer.drain()
        _, tag, value = await read_message(reader)
        if tag != BIND_RES:
            return False, "Bind failed (unexpected reply)"
        code, diag = result_code(value)
        if code != 0:
            return False, f"Bind failed (result {code}{': ' + diag if diag else ''})"
        base = spec.request[1:] if spec.request.startswith("/") else spec.request
        writer.write(search_request(2, base))
        await writer.drain()
        dns = []
        while True:
            _, tag, value = await read_message(reader)
            if tag == SEARCH_ENTRY:
                dns.append(ber.parse(value)[0][1].decode("utf-8", "replace"))
            elif tag == SEARCH_DONE:
                code, diag = result_code(value)
                break
            elif tag != SEARCH_REF:
                return False, "unexpected LDAP reply"
        writer.write(ber.seq(ber.integer(3), ber.tlv(UNBIND_REQ, b"")))
        if len(dns) != 1:
            return False, f"No answer received ({len(dns)} entries, result {code})"
        if not matches(spec.receive, dns[0]):
            return False, f"Response mismatch: {dns[0][:80]}"
        return True, f"Success: {dns[0][:80]}"
    finally:
        await close(writer)
