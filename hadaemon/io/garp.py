"""Gratuitous ARP, ARP probes and unsolicited IPv6 neighbour advertisements on a raw link-layer socket.

The gratuitous ARP frames are packed here; probes and IPv6 frames are built with scapy, importing only
the layer modules needed (``scapy.layers.l2`` for ARP, ``scapy.layers.inet6`` for IPv6): ``import
scapy.all`` costs about a second, the l2 layer about 0.15 s.
They are sent on an AF_PACKET socket bound to the interface (namespace-local, no scapy send machinery).
"""
from __future__ import annotations

import ipaddress
import os
import select
import signal
import socket
import struct
import time
from typing import List, Sequence

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ALL_NODES_MAC = "33:33:00:00:00:01"
ALL_NODES_V6 = "ff02::1"
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
PACKET_OUTGOING = 4


def _mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def garp_frames(mac: str, ip: str) -> List[bytes]:
    """One gratuitous ARP round: the request form and the reply form, sender IP = target IP = ip.

    Both go to the Ethernet broadcast address.  The request carries a zero target hardware address
    (RFC 5227 announcement); the reply carries target hardware address = sender's, which Linux needs
    to treat a reply as gratuitous (arp_is_garp) and so override a recently updated entry. Packed here
    (the bytes scapy's Ether() / ARP() build, ~1 ms of CPU less per start: a takeover builds them
    before its first GARP).
    """
    hw, addr = bytes.fromhex(mac.replace(":", "")), socket.inet_aton(ip)
    head = b"\xff" * 6 + hw + struct.pack("!HHHBB", ETH_P_ARP, 1, 0x0800, 6, 4)
    request = head + struct.pack("!H", ARPOP_REQUEST) + hw + addr + b"\0" * 6 + addr
    reply = head + struct.pack("!H", ARPOP_REPLY) + hw + addr + hw + addr
    return [request, reply]


def probe_frame(mac: str, ip: str) -> bytes:
    """An ARP probe (RFC 5227): who has ip? with sender IP 0.0.0.0, so no neighbour learns from it."""
    from scapy.layers.l2 import ARP, Ether

    return bytes(Ether(dst=BROADCAST_MAC, src=mac, type=ETH_P_ARP) / ARP(
        op=ARPOP_REQUEST, hwsrc=mac, psrc="0.0.0.0", hwdst=ZERO_MAC, pdst=ip))


def unsolicited_na_frames(mac: str, ip: str) -> List[bytes]:
    """One unsolicited neighbour advertisement (RFC 4861 7.2.6): to all-nodes, Override set, with the
    target link-layer address option."""
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    ip = ipaddress.IPv6Address(ip).compressed
    frame = (Ether(dst=ALL_NODES_MAC, src=mac, type=ETH_P_IPV6)
             / IPv6(src=ip, dst=ALL_NODES_V6, hlim=255)
             / ICMPv6ND_NA(R=0, S=0, O=1, tgt=ip)
             / ICMPv6NDOptDstLLAddr(lladdr=mac))
    return [bytes(frame)]


def announcement_frames(mac: str, ip: str) -> List[bytes]:
    """The frames of one announcement round for ip (IPv4: GARP request+reply; IPv6: unsolicited NA)."""
    if ipaddress.ip_address(ip).version == 6:
        return unsolicited_na_frames(mac, ip)
    return garp_frames(mac, ip)


class LinkSocket:
    """An AF_PACKET raw socket bound to one interface of the current network namespace.

    With proto 0 (the default) it only sends.  Pass ETH_P_ARP to receive: the protocol is given only
    to bind(), not to socket(), so no hook exists yet that bind() would have to unregister first
    (which waits for an RCU grace period, 10-15 ms); binding is immediate either way.
    """

    def __init__(self, ifname: str, proto: int = 0):
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.sock.bind((ifname, proto))
        except OSError:
            self.sock.close()
            raise
        self.mac = _mac_str(self.sock.getsockname()[4])

    def send(self, frames: Sequence[bytes]) -> None:
        for frame in frames:
            self.sock.send(frame)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_rounds(link: LinkSocket, frames: Sequence[bytes], rounds: int, interval: float,
                first_delay: float = 0.0) -> None:
    """Send `rounds` rounds of frames, `interval` seconds apart (absolute schedule, no drift)."""
    start = time.monotonic() + first_delay
    for i in range(rounds):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        link.send(frames)


def send_in_background(link: LinkSocket, frames: Sequence[bytes], rounds: int, interval: float,
                       pidfile: str | None = None, after: float | None = None) -> int:
    """Send the rounds from a detached grandchild (like IPaddr2's backgrounded send_arp).

    The first round is sent `interval` after `after` (a time.monotonic() value, default: now), so a
    round the caller just sent keeps its spacing.  The grandchild closes stdio (a caller reading
    the agent's output must not wait for it) and every other inherited descriptor, writes its pid to
    `pidfile` and removes it when done.
    Returns the grandchild's pid.  Safe to call from a threaded process: the child only sleeps, sends
    on the already open socket and leaves with os._exit.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(rfd)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            # Run in-process by a daemon, the child would otherwise hold its sockets and files open.
            keep = {0, 1, 2, wfd, link.sock.fileno()}
            for name in os.listdir("/proc/self/fd"):
                if int(name) not in keep:
                    try:
                        os.close(int(name))
                    except OSError:
                        pass
            me = os.getpid()
            if pidfile:
                tmp = f"{pidfile}.{me}"
                with open(tmp, "w") as f:
                    f.write(f"{me} {_start_time(me)}\n")
                os.replace(tmp, pidfile)
            os.write(wfd, struct.pack("=i", me))
            os.close(wfd)
            first = (time.monotonic() if after is None else after) + interval
            send_rounds(link, frames, rounds, interval, first_delay=max(0.0, first - time.monotonic()))
            if pidfile:
                try:
                    with open(pidfile) as f:
                        if f.read().split()[0] == str(me):
                            os.unlink(pidfile)
                except OSError:
                    pass
        finally:
            os._exit(0)
    os.close(wfd)
    try:
        data = b""
        while len(data) < 4:
            chunk = os.read(rfd, 4 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    return struct.unpack("=i", data)[0] if len(data) == 4 else -1


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: identifies a process across pid reuse."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def stop_background(pidfile: str) -> int | None:
    """Kill the background sender recorded in pidfile (only if it is still that process)."""
    killed = None
    try:
        with open(pidfile) as f:
            pid_s, start = f.read().split()[:2]
        pid = int(pid_s)
        if _start_time(pid) == start:
            os.kill(pid, signal.SIGTERM)
            killed = pid
    except (OSError, ValueError):
        pass
    try:
        os.unlink(pidfile)
    except OSError:
        pass
    return killed


def parse_arp(frame: bytes):
    """(op, sender_mac, sender_ip, target_mac, target_ip) of an Ethernet/IPv4 ARP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[14:20] != b"\x00\x01\x08\x00\x06\x04":
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    return (op, _mac_str(frame[22:28]), socket.inet_ntoa(frame[28:32]),
            _mac_str(frame[32:38]), socket.inet_ntoa(frame[38:42]))


def probe_frame_raw(mac: str, ip: str) -> bytes:
    """probe_frame() built without scapy (the same bytes, checked by the unit tests), so the probe can
    go out while scapy is still being imported for the announcement frames."""
    hw = bytes.fromhex(mac.replace(":", ""))
    return (b"\xff" * 6 + hw + struct.pack("!HHHBBH", ETH_P_ARP, 1, 0x0800, 6, 4, ARPOP_REQUEST)
            + hw + b"\0\0\0\0" + b"\0" * 6 + socket.inet_aton(ip))


class Probe:
    """ARP probes for ip (RFC 5227) sent from a background thread: `count` probes `interval` apart,
    then listening until `interval` after the last one.  result() waits and returns the MAC of a
    host claiming ip, or None.  The thread mostly waits in select(), so the caller can meanwhile do
    CPU work (imports)."""

    def __init__(self, ifname: str, ip: str, count: int = 2, interval: float = 0.1):
        import threading

        self.ifname, self.ip, self.count, self.interval = ifname, ip, count, interval
        self.conflict: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"arp-probe-{ip}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with LinkSocket(self.ifname, ETH_P_ARP) as link:  # the slow bind happens in this thread
                self.conflict = self._probe(link)
        except BaseException as e:  # reported by result()
            self.error = e

    def _probe(self, link: LinkSocket) -> str | None:
        ip, interval = self.ip, self.interval
        frame = probe_frame_raw(link.mac, ip)
        start = time.monotonic()
        deadline = start + self.count * interval
        sent = 0
        while True:
            now = time.monotonic()
            if sent < self.count and now >= start + sent * interval:
                link.send([frame])
                sent += 1
                continue
            if now >= deadline:
                return None
            wake = min(deadline, start + sent * interval) if sent < self.count else deadline
            ready, _, _ = select.select([link.sock], [], [], max(0.0, wake - now))
            if not ready:
                continue
            data, addr = link.sock.recvfrom(2048)
            if addr[2] == PACKET_OUTGOING:
                continue
            arp = parse_arp(data)
            if arp is None:
                continue
            _op, sha, spa, _tha, tpa = arp
            if sha == link.mac:
                continue
            if spa == ip:
                return sha
            if spa == "0.0.0.0" and tpa == ip:
                return sha  # someone else probing for the same address right now (RFC 5227 2.1.1)

    def result(self) -> str | None:
        self.thread.join(self.count * self.interval + 5.0)
        if self.error is not None:
            raise self.error
        return self.conflict


def probe(ifname: str, ip: str, count: int = 2, interval: float = 0.1) -> str | None:
    """Is ip already in use on the link?  Returns the MAC of a host claiming it, or None."""
    return Probe(ifname, ip, count, interval).result()
