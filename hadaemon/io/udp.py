"""UDP sockets per link for heartbeats and messages: bcast/mcast/ucast media bound to their interface."""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import struct
import termios
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

__all__ = ["LinkSockets", "Transport", "interface_up", "TransportError"]

log = logging.getLogger("ha-heartbeat")

Address = Tuple[str, int]
Receiver = Callable[[str, bytes, Address], None]  # (link, datagram, source address)

RECV_SIZE = 65535
SNDBUF = 1 << 20  # bytes asked for each socket's send buffer (forced when privileged)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


class TransportError(Exception):
    """A socket could not be set up (names the link and the reason)."""


def interface_up(iface: str) -> bool:
    """True while the interface exists and has an operational link (or reports no state, like lo)."""
    try:
        with open(f"/sys/class/net/{iface}/operstate") as f:
            state = f.read().strip()
        with open(f"/sys/class/net/{iface}/flags") as f:
            flags = int(f.read().strip(), 16)
    except (OSError, ValueError):
        return False
    return bool(flags & 0x1) and state in ("up", "unknown")


def _ifindex(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise TransportError(f"link {iface}: no such interface") from None


@dataclass
class LinkSockets:
    """The sockets of one link (interface) and where its heartbeats go."""

    name: str
    sockets: List[socket.socket] = field(default_factory=list)
    destinations: List[Tuple[socket.socket, Address]] = field(default_factory=list)


class Transport:
    """Opens one socket per (interface, port), bound with SO_BINDTODEVICE, and sends/receives datagrams.

    media: objects with kind ("bcast"|"mcast"|"ucast"), iface, address, port, ttl, loop (hacf.Medium).
    on_datagram(link, data, addr) is called from the event loop for each datagram received.
    """

    def __init__(self, media: Sequence, udpport: int, on_datagram: Receiver, loop=None):
        self.media = list(media)
        self.udpport = udpport
        self.on_datagram = on_datagram
        self.loop = loop
        self.links: Dict[str, LinkSockets] = {}
        self._by_key: Dict[Tuple[str, int], socket.socket] = {}
        self._bulk_limit: Dict[int, int] = {}  # fd -> bytes of send queue above which bulk is deferred
        self.send_errors = 0
        self.deferred = 0

    # -- setup --------------------------------------------------------------------------------------
    def _socket(self, iface: str, port: int) -> socket.socket:
        key = (iface, port)
        sock = self._by_key.get(key)
        if sock is not None:
            return sock
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode() + b"\0")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SNDBUF)
            except OSError:  # not privileged: capped by net.core.wmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
            sock.bind(("", port))
        except OSError as exc:
            sock.close()
            raise TransportError(f"link {iface}: cannot bind UDP port {port}: {exc.strerror}") from None
        # Messages may fill only half of the send buffer: the other half is kept for heartbeats, so a
        # burst of message fragments never makes a heartbeat fail with EAGAIN (a false death elsewhere).
        self._bulk_limit[sock.fileno()] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        self._by_key[key] = sock
        link = self.links.setdefault(iface, LinkSockets(iface))
        link.sockets.append(sock)
        return sock

    def open(self) -> None:
        """Create and bind every socket; raises TransportError (socket setup is all or nothing)."""
        try:
            for m in self.media:
                iface = m.iface
                _ifindex(iface)
                port = getattr(m, "port", None) or self.udpport
                sock = self._socket(iface, port)
                link = self.links[iface]
                if m.kind == "bcast":
                    link.destinations.append((sock, ("255.255.255.255", port)))
                elif m.kind == "ucast":
                    link.destinations.append((sock, (m.address, port)))
                elif m.kind == "mcast":
                    mreqn = struct.pack("4s4si", socket.inet_aton(m.address), socket.inet_aton("0.0.0.0"),
                                        _ifindex(iface))
                    try:
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, int(m.ttl or 1))
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(bool(m.loop)))
                    except OSError as exc:
                        raise TransportError(f"link {iface}: cannot join multicast group {m.address}: "
                                             f"{exc.strerror}") from None
                    link.destinations.append((sock, (m.address, port)))
                else:
                    raise TransportError(f"link {iface}: unknown medium {m.kind!r}")
        except BaseException:
            self.close()
            raise
        if self.loop is not None:
            for link in self.links.values():
                for sock in link.sockets:
                    self.loop.add_reader(sock.fileno(), self._readable, link.name, sock)

    def close(self) -> None:
        for link in self.links.values():
            for sock in link.sockets:
                if self.loop is not None and sock.fileno() >= 0:
                    try:
                        self.loop.remove_reader(sock.fileno())
                    except (ValueError, RuntimeError):
                        pass
                sock.close()
        self.links.clear()
        self._by_key.clear()

    # -- I/O ----------------------------------------------------------------------------------------
    def _readable(self, link: str, sock: socket.socket) -> None:
        for _ in range(256):  # bounded: let timers run between bursts
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("recv on %s: %s", link, exc)
                return
            self.on_datagram(link, data, addr)

    def send(self, link: str, data: bytes, bulk: bool = False) -> int:
        """Send to every destination of the link (broadcast, group, unicast peers); returns how many.

        bulk (messages): not sent, and counted in `deferred`, while the socket's send queue is over half
        full; the messenger retransmits later. Heartbeats (bulk=False) always get the other half."""
        ls = self.links.get(link)
        sent = 0
        for sock, dest in (ls.destinations if ls else ()):
            sent += self._sendto(sock, data, dest, bulk)
        return sent

    def send_to(self, link: str, data: bytes, dest: Address, bulk: bool = False) -> int:
        """Send to one address on the link (a peer learned from its packets); bulk as in send()."""
        ls = self.links.get(link)
        if not ls or not ls.sockets:
            return 0
        return self._sendto(ls.sockets[0], data, dest, bulk)

    def _congested(self, sock: socket.socket) -> bool:
        """The socket's send queue (SIOCOUTQ: bytes not yet freed by the kernel) is over the bulk limit."""
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return False
        return queued >= self._bulk_limit.get(sock.fileno(), 1 << 30)

    def _sendto(self, sock: socket.socket, data: bytes, dest: Address, bulk: bool = False) -> int:
        if bulk and self._congested(sock):
            self.deferred += 1
            return 0
        try:
            sock.sendto(data, dest)
            return 1
        except (BlockingIOError, InterruptedError):
            self.send_errors += 1
        except OSError as exc:
            self.send_errors += 1
            if exc.errno not in (errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENODEV,
                                 errno.ENOBUFS, errno.EPERM, errno.EMSGSIZE, errno.ENXIO):
                log.debug("send on %s to %s: %s", sock.getsockname(), dest, os.strerror(exc.errno or 0))
        return 0

    def link_names(self) -> List[str]:
        return list(self.links)
