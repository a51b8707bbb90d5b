"""UDP sockets per link for heartbeats and messages: bcast/mcast/ucast media bound to their interface.

Besides the socket of each medium (which receives everything sent to the port), every peer address the
daemon has authenticated gets a socket of its own on that link, connected to it: the kernel puts that
peer's datagrams in that socket's own receive queue, so a flood from any other address fills only the
medium's queue and never pushes a peer's heartbeats out (`Transport.add_peer`).
"""
from __future__ import annotations

import ctypes
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
Receiver = Callable[..., None]  # (link, datagram, source address[, copy]): see Transport._readable

RECV_SIZE = 65535
SNDBUF = 1 << 20  # bytes asked for each socket's send buffer (forced when privileged)
RCVBUF = 4 << 20  # each medium socket's receive buffer (forced when privileged): absorbs bursts
PEER_RCVBUF = 1 << 20
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
MEDIUM_BATCH = 256     # datagrams read from a medium socket per wake-up (then timers and peers run)
PEER_BATCH = 256       # from a peer's own sockets too: each ready socket gets its turn per wake-up
MAX_PEER_SOCKETS = 256
DRAIN_BATCH = 4096     # per peer socket when draining before a node is judged silent (Transport.drain)


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
    on_datagram(link, data, addr[, copy]) is called from the event loop for each datagram received
    (copy=True: the kernel may have queued this datagram twice, see _readable).
    """

    def __init__(self, media: Sequence, udpport: int, on_datagram: Receiver, loop=None):
        self.media = list(media)
        self.udpport = udpport
        self.on_datagram = on_datagram
        self.loop = loop
        self.links: Dict[str, LinkSockets] = {}
        self._by_key: Dict[Tuple[str, int], socket.socket] = {}
        self._bulk_limit: Dict[int, int] = {}  # fd -> bytes of send queue above which bulk is deferred
        self._peer_socks: Dict[Tuple[str, Address], socket.socket] = {}
        self._peer_addrs: Dict[str, set] = {}  # link -> addresses with a socket of their own
        self._filtered: Dict[int, socket.socket] = {}   # port -> socket receiving only peers' broadcasts
        self._allowed: Dict[int, List[Tuple[int, int, int]]] = {}   # port -> [(ifindex, ip, port)]
        self._addr_link: Dict[Address, str] = {}
        self.send_errors = 0
        self.deferred = 0
        self.duplicates = 0   # datagrams of peers read from the medium's socket (most: broadcast copies)

    # -- setup --------------------------------------------------------------------------------------
    @staticmethod
    def _bound_socket(iface: str, port: int, rcvbuf: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode() + b"\0")
            for force, plain, size in ((SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf),
                                       (SO_SNDBUFFORCE, socket.SO_SNDBUF, SNDBUF)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, size)
                except OSError:  # not privileged: capped by net.core.rmem_max / wmem_max
                    sock.setsockopt(socket.SOL_SOCKET, plain, size)
            sock.bind(("", port))
        except OSError:
            sock.close()
            raise
        return sock

    def _socket(self, iface: str, port: int) -> socket.socket:
        key = (iface, port)
        sock = self._by_key.get(key)
        if sock is not None:
            return sock
        try:
            sock = self._bound_socket(iface, port, RCVBUF)
        except OSError as exc:
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
                    self.loop.add_reader(sock.fileno(), self._readable, link.name, sock, MEDIUM_BATCH, True)

    def add_peer(self, link: str, addr: Address) -> bool:
        """Give an authenticated peer address queues of its own on `link`, apart from everything else
        sent to the port: a socket connected to it (the kernel delivers the peer's unicasts there) and a
        place in the port's peer filter (its broadcasts and multicasts). True when it has them."""
        key = (link, addr)
        if key in self._peer_socks:
            return True
        port = addr[1]
        if ((link, port) not in self._by_key or len(self._peer_socks) >= MAX_PEER_SOCKETS
                or len(self._allowed.get(port, ())) >= MAX_FILTER_PEERS):
            return False   # its datagrams keep arriving on the medium's socket, as any other's
        try:
            ip = struct.unpack("!I", socket.inet_aton(addr[0]))[0]
            ifindex = socket.if_nametoindex(link)
            sock = self._bound_socket(link, port, PEER_RCVBUF)
        except OSError as exc:
            log.debug("peer socket on %s for %s: %s", link, addr, exc)
            return False
        try:
            sock.connect(addr)
            allowed = self._allowed.get(port, []) + [(ifindex, ip, port)]
            _attach_filter(self._filtered_socket(port), allowed)
            for (_iface, p), medium in self._by_key.items():
                if p == port:   # the medium's copy of these peers' broadcasts is dropped by the kernel
                    _attach_filter(medium, allowed, broadcasts_of_others=True)
            self._allowed[port] = allowed
        except OSError as exc:
            log.debug("peer socket on %s for %s: %s", link, addr, exc)
            sock.close()
            return False
        self._peer_socks[key] = sock
        self._peer_addrs.setdefault(link, set()).add(addr)
        self._addr_link[addr] = link
        if self.loop is not None:
            self.loop.add_reader(sock.fileno(), self._readable, link, sock, PEER_BATCH, False)
        return True

    def _filtered_socket(self, port: int) -> socket.socket:
        """The port's socket for peers' broadcasts: not bound to a device (so unicasts, which go to the
        best-matching socket, stay with the medium's), with a BPF filter letting only peers in."""
        sock = self._filtered.get(port)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            try:
                _attach_filter(sock, [])
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, PEER_RCVBUF)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RCVBUF)
                sock.bind(("", port))
            except OSError:
                sock.close()
                raise
            self._filtered[port] = sock
            if self.loop is not None:
                self.loop.add_reader(sock.fileno(), self._readable, None, sock, PEER_BATCH, False)
        return sock

    def peer_sockets(self) -> int:
        return len(self._peer_socks)

    def close(self) -> None:
        for sock in self._peer_socks.values():
            if self.loop is not None and sock.fileno() >= 0:
                try:
                    self.loop.remove_reader(sock.fileno())
                except (ValueError, RuntimeError):
                    pass
            sock.close()
        self._peer_socks.clear()
        self._peer_addrs.clear()
        for sock in self._filtered.values():
            if self.loop is not None and sock.fileno() >= 0:
                try:
                    self.loop.remove_reader(sock.fileno())
                except (ValueError, RuntimeError):
                    pass
            sock.close()
        self._filtered.clear()
        self._allowed.clear()
        self._addr_link.clear()
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
    def _readable(self, link: str | None, sock: socket.socket, batch: int, medium: bool) -> bool:
        """Read up to `batch` datagrams (bounded: timers and the other sockets run between batches).

        A peer's broadcast goes to the peer filter's socket (link None: the link comes from the address);
        the medium's socket drops it in the kernel once the peer is in its filter, but may still hold
        copies queued before: both are passed with copy=True, so the receiver drops the second one read
        silently instead of counting it as a replay."""
        recvfrom, on_datagram = sock.recvfrom, self.on_datagram
        own = self._peer_addrs.get(link, ()) if medium else ()
        for n in range(batch):
            try:
                data, addr = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return n > 0
            except OSError as exc:  # e.g. ECONNREFUSED queued on a connected socket by an ICMP error
                log.debug("recv on %s: %s", link, exc)
                return n > 0
            if link is None:
                peer_link = self._addr_link.get(addr)
                if peer_link is not None:
                    on_datagram(peer_link, data, addr, True)
            elif own and addr in own:
                self.duplicates += 1
                on_datagram(link, data, addr, True)
            else:
                on_datagram(link, data, addr)
        return True

    def drain(self) -> int:
        """Read what is queued now on every socket, before a node is judged silent (the daemon calls it
        when a timer would change a state): the peers' own sockets up to DRAIN_BATCH each, the media's up
        to MEDIUM_BATCH (anyone can fill those). Returns the sockets that had something."""
        had = 0
        for link, sock in list(self._peer_socks.items()):
            had += self._readable(link[0], sock, DRAIN_BATCH, False)
        for sock in list(self._filtered.values()):
            had += self._readable(None, sock, DRAIN_BATCH, False)
        for ls in list(self.links.values()):
            for sock in ls.sockets:
                had += self._readable(ls.name, sock, MEDIUM_BATCH, True)
        return had

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


# -- the peer filter: classic BPF run by the kernel before a datagram is queued -------------------------
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_SKF_AD_PKTTYPE = -0x1000 + 4      # SKF_AD_OFF + SKF_AD_PKTTYPE (PACKET_HOST 0: a unicast to us)
_SKF_AD_IFINDEX = -0x1000 + 8      # SKF_AD_OFF + SKF_AD_IFINDEX
_SKF_NET_SRC = -0x100000 + 12      # SKF_NET_OFF + offset of the IPv4 source address
_LD_W_ABS, _LD_H_ABS, _JEQ_K, _RET_K = 0x20, 0x28, 0x15, 0x06
MAX_FILTER_PEERS = 36              # 7 instructions each; the medium's filter jumps over all of them (<= 255)


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _attach_filter(sock: socket.socket, allowed: Sequence[Tuple[int, int, int]],
                   broadcasts_of_others: bool = False) -> None:
    """Let only datagrams from (ifindex, source IPv4, source port) in `allowed` into `sock`'s queue.

    broadcasts_of_others (a medium's socket): the reverse for broadcasts and multicasts: those of the
    `allowed` peers are dropped (the peer filter's socket has them; one copy per heartbeat is read, not
    two), everything else is let in: unicasts, and the broadcasts of any address not yet a peer."""
    peers = list(allowed)[:MAX_FILTER_PEERS]
    hit, miss = (0, 0x40000) if broadcasts_of_others else (0x40000, 0)
    prog = []
    if broadcasts_of_others:
        prog += [_insn(_LD_W_ABS, 0, 0, _SKF_AD_PKTTYPE), _insn(_JEQ_K, 7 * len(peers), 0, 0)]   # unicast: keep
    for ifindex, ip, port in peers:
        prog += [_insn(_LD_W_ABS, 0, 0, _SKF_AD_IFINDEX), _insn(_JEQ_K, 0, 5, ifindex),
                 _insn(_LD_W_ABS, 0, 0, _SKF_NET_SRC), _insn(_JEQ_K, 0, 3, ip),
                 _insn(_LD_H_ABS, 0, 0, 0), _insn(_JEQ_K, 0, 1, port),    # UDP source port
                 _insn(_RET_K, 0, 0, hit)]
    prog.append(_insn(_RET_K, 0, 0, miss))
    code = b"".join(prog)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
