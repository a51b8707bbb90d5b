"""nntp checks: the server greeting must start with 2 (ldirectord's check_nntp)."""

from __future__ import annotations

from typing import Tuple

from hadaemon.io.checks.base import close, connect


async def check_nntp(spec) -> Tuple[bool, str]:
    reader, writer = await connect(spec)
    try:
        data = await reader.read(64)
        text = data.decode("latin-1").strip()
        if data.startswith(b"2"):
            writer.write(b"QUIT\r\n")
            return True, text
        return False, f"greeting {text[:60]!r}" if data else "no greeting"
    finally:
        await close(writer)
