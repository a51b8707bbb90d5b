"""connect checks: a TCP connection that is opened and closed (ldirectord's check_connect)."""

from __future__ import annotations

import asyncio
from typing import Tuple


class _Closer(asyncio.Protocol):
    def connection_made(self, transport):
        transport.close()


async def check_connect(spec) -> Tuple[bool, str]:
    loop = asyncio.get_running_loop()
    if spec.protocol == "udp":
        # ldirectord's ld_open_socket "connects" a UDP socket, which cannot fail for a valid address
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                           remote_addr=(spec.address, spec.port))
        transport.close()
        return True, f"udp socket to {spec.target}"
    transport, _ = await loop.create_connection(_Closer, spec.address, spec.port)
    transport.close()
    return True, f"connected to {spec.target}"
