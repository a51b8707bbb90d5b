"""Shared helpers for checkers: connections (TLS without verification), line reads, ldirectord regexes."""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from typing import Callable, Tuple

_CTX: ssl.SSLContext | None = None
LINE_LIMIT = 64 * 1024


def tls_context() -> ssl.SSLContext:
    """A client context that, like ldirectord, verifies neither the certificate nor the host name."""
    global _CTX
    if _CTX is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _CTX = ctx
    return _CTX


async def connect(spec, tls: bool = False, port: int | None = None
                  ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        spec.address, port or spec.port, ssl=tls_context() if tls else None,
        server_hostname="" if tls else None, limit=LINE_LIMIT)


async def close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        pass


async def readline(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise EOFError("connection closed by the server")
    return line.decode("latin-1").rstrip("\r\n")


async def send(writer: asyncio.StreamWriter, text: str) -> None:
    writer.write(text.encode("latin-1", "replace"))
    await writer.drain()


@functools.lru_cache(maxsize=4096)
def perl_regex(pattern: str) -> re.Pattern[str]:
    """ldirectord matches `receive` as a Perl regex; Python's re covers the common subset."""
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


def matches(receive: str, text: str) -> bool:
    """ldirectord: an empty receive matches anything; else a regex search."""
    return not receive or perl_regex(receive).search(text) is not None


class FirstDatagram(asyncio.DatagramProtocol):
    """Resolves `fut` with the first datagram `accept` takes (default: any), or with the socket error."""

    def __init__(self, fut: asyncio.Future, accept: Callable[[bytes], bool] | None = None):
        self.fut, self.accept = fut, accept

    def datagram_received(self, data, addr):
        if not self.fut.done() and (self.accept is None or self.accept(data)):
            self.fut.set_result(data)

    def error_received(self, exc):
        if not self.fut.done():
            self.fut.set_exception(exc)
