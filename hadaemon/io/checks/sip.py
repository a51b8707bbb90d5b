"""sip negotiate checks: OPTIONS over UDP or TCP; up on `SIP/2.0 200 OK` (ldirectord's check_sip)."""

from __future__ import annotations

import asyncio
import os
from typing import Tuple

from hadaemon.io.checks.base import FirstDatagram, close, connect


def options_request(login: str, local: str, lport: int, transport: str) -> bytes:
    call_id = os.urandom(8).hex()
    return (f"OPTIONS sip:{login} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {local}:{lport};branch=z9hG4bKhjhs8ass877\r\n"
            "Max-Forwards: 70\r\n"
            f"To: <sip:{login}>\r\n"
            f"From: <sip:{login}>;tag=1928301774\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 63104 OPTIONS\r\n"
            f"Contact: <sip:{login}>\r\n"
            "Accept: application/sdp\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _verdict(first: str) -> Tuple[bool, str]:
    if first.startswith("SIP/2.0 200 OK"):
        return True, first
    return False, first[:80] if first else "no SIP response"


def _local(sockname) -> Tuple[str, int]:
    host = sockname[0]
    return (f"[{host}]" if ":" in host else host), sockname[1]


async def check_sip(spec) -> Tuple[bool, str]:
    if spec.protocol == "udp":
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(lambda: FirstDatagram(fut),
                                                           remote_addr=(spec.address, spec.port))
        try:
            host, port = _local(transport.get_extra_info("sockname"))
            transport.sendto(options_request(spec.login, host, port, "UDP"))
            data = await fut
        finally:
            transport.close()
        return _verdict(data.decode("latin-1").split("\r\n", 1)[0].split("\n", 1)[0])
    reader, writer = await connect(spec)
    try:
        host, port = _local(writer.get_extra_info("sockname"))
        writer.write(options_request(spec.login, host, port, "UDP"))   # ldirectord writes UDP here too
        await writer.drain()
        line = await reader.readline()
        return _verdict(line.decode("latin-1").rstrip("\r\n"))
    finally:
        await close(writer)
