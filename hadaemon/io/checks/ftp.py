"""ftp negotiate checks: login, CWD /, then (when request names a file) PASV + RETR; the file must match receive."""

from __future__ import annotations

import asyncio
import re
from typing import Tuple

from hadaemon.io.checks.base import close, connect, matches, readline, send

MAX_FILE = 1 << 20


async def _reply(reader) -> Tuple[int, str]:
    line = await readline(reader)
    if len(line) < 3 or not line[:3].isdigit():
        raise ValueError(f"bad FTP reply {line[:60]!r}")
    code = line[:3]
    if line[3:4] == "-":
        while True:
            more = await readline(reader)
            if more.startswith(code + " "):
                break
    return int(code), line


async def _cmd(reader, writer, text: str) -> Tuple[int, str]:
    await send(writer, text + "\r\n")
    return await _reply(reader)


async def check_ftp(spec) -> Tuple[bool, str]:
    """Like ldirectord's Net::FTP sequence; up when the retrieved file matches receive."""
    reader, writer = await connect(spec)
    data_writer = None
    try:
        code, banner = await _reply(reader)
        if code != 220:
            return False, banner
        code, line = await _cmd(reader, writer, f"USER {spec.login}")
        if code == 331:
            code, line = await _cmd(reader, writer, f"PASS {spec.passwd}")
        if code not in (230, 202):
            return False, f"login: {line}"
        await _cmd(reader, writer, "CWD /")
        if spec.request in ("", "/"):
            # no file to fetch (request unset): a successful login is the check
            await send(writer, "QUIT\r\n")
            return True, f"logged in as {spec.login}"
        await _cmd(reader, writer, "TYPE I")
        code, line = await _cmd(reader, writer, "PASV")
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", line)
        if code != 227 or not m:
            return False, f"PASV: {line}"
        port = int(m.group(5)) * 256 + int(m.group(6))
        # like most clients, connect the data channel to the server we talk to
        data_reader, data_writer = await asyncio.open_connection(spec.address, port)
        path = spec.request
        code, line = await _cmd(reader, writer, f"RETR {path}")
        if code not in (125, 150):
            return False, f"RETR {path}: {line}"
        content = await data_reader.read(MAX_FILE)
        while len(content) < MAX_FILE:
            more = await data_reader.read(MAX_FILE - len(content))
            if not more:
                break
            content += more
        await close(data_writer)
        data_writer = None
        code, line = await _reply(reader)
        await send(writer, "QUIT\r\n")
        if not matches(spec.receive, content.decode("utf-8", "replace")):
            return False, f"{path}: receive {spec.receive!r} not found"
        return True, f"{path}: {len(content)} bytes"
    finally:
        await close(data_writer)
        await close(writer)
