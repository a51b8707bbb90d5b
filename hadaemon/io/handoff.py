"""A handoff's release as one link-layer frame: the old node tells the new one that it removed an
address, on the segment the address lives on, from the agent's thread the moment it is gone.

ha-crmd's release also goes the usual way (D-Bus, ha-heartbeat, D-Bus: four process hops, 3-40 ms on a
loaded node); this frame is the short way: a broadcast with ethertype 0x88B5 (IEEE 802 local
experimental) that the new node's armed start (hadaemon.agents.ipaddr2.armed_start) receives on an
AF_PACKET socket bound to that ethertype. It is signed with the cluster's authkeys (the key
ha-heartbeat signs with), names the sending node and the transition key of the stop, and counts only
for the start waiting for exactly that node and key: a forged frame fails the digest, a replayed one
names a key no start waits for any more.

The frame's bytes are made and checked in hadaemon.core.crm.handoff_frame (pure).
"""
from __future__ import annotations

import socket
import threading

from hadaemon.core.crm.handoff_frame import ETH_P_HANDOFF, parse_release, release_frame
from hadaemon.core.heartbeat.authkeys import AuthKeys

__all__ = ["ETH_P_HANDOFF", "release_frame", "parse_release", "send_release", "listen_socket"]


def send_release(ifname: str, keys: AuthKeys, node: str, tkey: str) -> None:
    """Broadcast the release on ifname (the old node's agent thread; the socket is closed from another
    thread: closing an AF_PACKET socket waits for an RCU grace period)."""
    from hadaemon.io import garp

    link = garp.LinkSocket(ifname)
    try:
        link.send([release_frame(link.mac, keys, node, tkey)])
    finally:
        threading.Thread(target=link.close, name="handoff-close", daemon=True).start()


def listen_socket() -> socket.socket:
    """An AF_PACKET socket receiving release frames on every interface of this namespace (not bound
    to one), opened as soon as a follower chain arrives: frames sent before the armed start waits for
    them queue in it. Close it from another thread (an RCU grace period)."""
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_HANDOFF))
