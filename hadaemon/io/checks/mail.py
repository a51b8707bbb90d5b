"""smtp/submission, pop/pops and imap/imaps negotiate checks (banner, EHLO, optional login)."""

from __future__ import annotations

import itertools
import socket
from typing import Tuple

from hadaemon.io.checks.base import close, connect, readline, send

_tags = itertools.count(1)


async def _smtp_reply(reader) -> Tuple[int, str]:
    """An SMTP reply (possibly multi-line): (code, last line)."""
    while True:
        line = await readline(reader)
        if len(line) < 3 or not line[:3].isdigit():
            raise ValueError(f"bad SMTP reply {line[:60]!r}")
        if line[3:4] != "-":
            return int(line[:3]), line


async def check_smtp(spec) -> Tuple[bool, str]:
    """Like Net::SMTP->new: a 2xx banner, then EHLO (or HELO) accepted; then QUIT."""
    reader, writer = await connect(spec)
    try:
        code, banner = await _smtp_reply(reader)
        if code // 100 != 2:
            return False, banner
        await send(writer, f"EHLO {socket.gethostname()}\r\n")
        code, line = await _smtp_reply(reader)
        if code // 100 != 2:
            await send(writer, f"HELO {socket.gethostname()}\r\n")
            code, line = await _smtp_reply(reader)
            if code // 100 != 2:
                return False, line
        await send(writer, "QUIT\r\n")
        return True, banner
    finally:
        await close(writer)


async def check_pop(spec) -> Tuple[bool, str]:
    """+OK greeting; with login set, USER/PASS must be accepted (pops: over TLS)."""
    reader, writer = await connect(spec, tls=spec.service == "pops")
    try:
        greeting = await readline(reader)
        if not greeting.startswith("+OK"):
            return False, greeting
        if spec.login:
            await send(writer, f"USER {spec.login}\r\n")
            line = await readline(reader)
            if not line.startswith("+OK"):
                return False, f"USER: {line}"
            await send(writer, f"PASS {spec.passwd}\r\n")
            line = await readline(reader)
            if not line.startswith("+OK"):
                return False, f"PASS: {line}"
        await send(writer, "QUIT\r\n")
        return True, greeting
    finally:
        await close(writer)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _tagged(reader, tag: str) -> str:
    while True:
        line = await readline(reader)
        if line.startswith(tag + " "):
            return line[len(tag) + 1:]


async def check_imap(spec) -> Tuple[bool, str]:
    """* OK greeting; with login set, LOGIN must answer OK (imaps: over TLS); then LOGOUT."""
    reader, writer = await connect(spec, tls=spec.service == "imaps")
    try:
        greeting = await readline(reader)
        if not greeting.startswith(("* OK", "* PREAUTH")):
            return False, greeting
        if spec.login:
            tag = f"a{next(_tags)}"
            await send(writer, f"{tag} LOGIN {_quote(spec.login)} {_quote(spec.passwd)}\r\n")
            status = await _tagged(reader, tag)
            if not status.upper().startswith("OK"):
                return False, f"LOGIN: {status}"
        tag = f"a{next(_tags)}"
        await send(writer, f"{tag} LOGOUT\r\n")
        return True, greeting
    finally:
        await close(writer)
