"""simpletcp checks: send request (\\n as newline), half-close, expect a line matching receive."""

from __future__ import annotations

import socket
from typing import Tuple

from hadaemon.io.checks.base import close, connect, perl_regex


async def check_simpletcp(spec) -> Tuple[bool, str]:
    reader, writer = await connect(spec)
    try:
        request = spec.request[1:] if spec.request.startswith("/") else spec.request
        writer.write(request.replace("\\n", "\n").encode("latin-1", "replace"))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        sock = writer.get_extra_info("socket")
        if sock is not None and not writer.can_write_eof():
            sock.shutdown(socket.SHUT_WR)
        rx = perl_regex(spec.receive)
        while True:
            line = await reader.readline()
            if not line:
                return False, f"no line matching {spec.receive!r}"
            if rx.search(line.decode("latin-1")):
                return True, line.decode("latin-1").strip()[:80]
    finally:
        await close(writer)
