"""IPaddr2's low-level I/O: netlink requests built by hand (IPv4 RTM_NEWADDR / RTM_DELADDR: what pyroute2
would send, without its request machinery, for the moments of a handoff: hadaemon.agents.ipaddr2_handoff;
the handoff helper process sends the same bytes) and the in-process announcers (the later GARP rounds)."""
from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from typing import Mapping

log = logging.getLogger("hadaemon.ipaddr2")   # the agent's log

ADDR_PROTO = 0x68
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IFA_F_NOPREFIXROUTE = 0x200
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255

# In-process announcers (the agent run in a thread of the LRM): state-file path -> stop event.
_SENDERS: dict = {}
_SENDERS_LOCK = threading.Lock()


def _send_in_thread(key: str, ifname: str, frames, rounds: int, interval: float, after: float,
                    link=None) -> None:
    """The rounds after the first, `interval` apart from `after`, from a daemon thread with its own
    socket (link: the one the first round went out on, handed over); kill_sender (stop, a new
    start) ends it."""
    from hadaemon.io import garp

    stop = threading.Event()
    if link is None:
        link = garp.LinkSocket(ifname)

    def run():
        try:
            for i in range(rounds):
                if stop.wait(max(0.0, after + (i + 1) * interval - time.monotonic())):
                    return
                link.send(frames)
        except OSError as e:
            log.warning("gratuitous ARP/NA on %s stopped: %s", ifname, e)
        finally:
            link.close()
            with _SENDERS_LOCK:
                if _SENDERS.get(key) is stop:
                    del _SENDERS[key]

    with _SENDERS_LOCK:
        _SENDERS[key] = stop
    threading.Thread(target=run, name=f"garp-{ifname}", daemon=True).start()



class NetlinkError(OSError):
    """A netlink request's error (code: the errno, as pyroute2's NetlinkError has it)."""

    @property
    def code(self) -> int:
        return self.errno


RTM_NEWADDR, RTM_DELADDR = 20, 21


def _nl_add_ipv4(kw: Mapping) -> None:
    """RTM_NEWADDR for an IPv4 address on one netlink socket, built here: what `self.ipr.addr("add",
    **kw)` sends (IFA_LOCAL = IFA_ADDRESS, broadcast, label, flags, IFA_PROTO, scope), without
    pyroute2's request machinery (1-2 ms of CPU, 5-10 ms on a loaded node, between a handoff's
    release and the new node's first GARP)."""
    _nl_request(_nl_addr_msg(RTM_NEWADDR, kw))


def _nl_addr_msg(kind: int, kw: Mapping) -> bytes:
    """An RTM_NEWADDR (as `ip addr add`: create, exclusive) or RTM_DELADDR request for an IPv4 address
    (the handoff helper sends these bytes, with its own sequence number)."""
    import struct

    def rta(kind: int, data: bytes) -> bytes:
        size = 4 + len(data)
        return struct.pack("=HH", size, kind) + data + b"\0" * ((4 - size % 4) % 4)

    addr = socket.inet_aton(kw["address"])
    attrs = rta(2, addr) + rta(1, addr)                       # IFA_LOCAL, IFA_ADDRESS
    if kw.get("broadcast"):
        attrs += rta(4, socket.inet_aton(kw["broadcast"]))    # IFA_BROADCAST
    if kw.get("label"):
        attrs += rta(3, kw["label"].encode() + b"\0")         # IFA_LABEL
    flags = int(kw.get("flags", 0))
    if flags:
        attrs += rta(8, struct.pack("=I", flags))             # IFA_FLAGS
    if kw.get("proto") is not None:
        attrs += rta(11, struct.pack("=B", kw["proto"]))      # IFA_PROTO
    ifa = struct.pack("=BBBBI", socket.AF_INET, kw["prefixlen"], flags & 0xFF, kw.get("scope", 0), kw["index"])
    # NLM_F_REQUEST | NLM_F_ACK (| NLM_F_EXCL | NLM_F_CREATE for a new one, as `ip addr add`)
    nl_flags = 0x1 | 0x4 | (0x200 | 0x400 if kind == RTM_NEWADDR else 0)
    return struct.pack("=IHHII", 16 + len(ifa) + len(attrs), kind, nl_flags, 1, 0) + ifa + attrs


def _nl_request(msg: bytes) -> None:
    """Send one netlink request on a socket of its own and raise NetlinkError when its ack says so."""
    import struct

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl:
        nl.send(msg)
        reply = nl.recv(65536)
    if len(reply) < 20 or struct.unpack_from("=H", reply, 4)[0] != 2:   # NLMSG_ERROR (the ack)
        raise NetlinkError(errno.EPROTO, "unexpected netlink reply")
    err = -struct.unpack_from("=i", reply, 16)[0]
    if err:
        raise NetlinkError(err, os.strerror(err))


def _close(link, in_process: bool) -> None:
    """Close a link socket; in-process from a daemon thread: closing an AF_PACKET socket waits for an
    RCU grace period (packet_release -> synchronize_net, 10-40 ms), which the start must not wait for."""
    if in_process:
        threading.Thread(target=link.close, name="garp-close", daemon=True).start()
    else:
        link.close()


def _state_dir(env: Mapping[str, str]) -> str:
    return os.path.join(env.get("HADAEMON_RUNDIR") or "/run/hadaemon", "ipaddr2")
