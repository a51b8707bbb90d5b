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

import errno
import json
import logging
import os
import socket
import threading
from typing import Callable, Dict

from hadaemon.core.crm.handoff_frame import ARMED, ETH_P_HANDOFF, parse_release, release_frame, release_tails
from hadaemon.core.heartbeat.authkeys import AuthKeys

__all__ = ["ETH_P_HANDOFF", "ARMED", "release_frame", "parse_release", "release_tails", "send_release", "listen_socket",
           "wait_frames", "helper", "HandoffHelper", "HelperGone"]

log = logging.getLogger("hadaemon.handoff")


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


def wait_frames(sock: socket.socket, groups, bound_s: float) -> bool:
    """Until a frame from each group was received on sock (a frame counts for a group when its bytes
    from offset 12 begin with one of the group's tails: release_tails, e.g. the followers' "armed"
    frames), True; False once bound_s passed first. Frames this host sent are not counted."""
    import select
    import time

    from hadaemon.io.garp import PACKET_OUTGOING

    left = [list(g) for g in groups]
    deadline = time.monotonic() + bound_s
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], wait)
        if not ready:
            continue
        frame, addr = sock.recvfrom(2048)
        if addr[2] == PACKET_OUTGOING:
            continue
        left = [g for g in left if not any(frame[12:12 + len(t)] == t for t in g)]
    return True


# -- the helper process (hadaemon/io/handoff_helper.py) ------------------------------------------------
class HelperGone(OSError):
    """The helper process is not running (any more)."""


class HandoffHelper:
    """ha-crmd's end of the helper process: requests (answered through a reader thread) and the events
    of armed starts (`arm(..., on_event)`: called from the reader thread with the "went" message, or
    with {"ev": "gone"} when the helper died first)."""

    def __init__(self):
        import itertools
        import subprocess
        import sys

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handoff_helper.py")
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", path], stdin=theirs, close_fds=True)
        finally:
            theirs.close()
        self.sock = ours
        self.ids = itertools.count(1)
        self.lock = threading.Lock()                 # one sender at a time
        self.replies: Dict[tuple, list] = {}         # (kind, id) -> [Event, reply]
        self.events: Dict[int, Callable] = {}        # armed id -> on_event
        self.ready = threading.Event()
        self.info: dict = {}
        self.gone = False
        threading.Thread(target=self._read, name="handoff-helper", daemon=True).start()

    def new_id(self) -> int:
        return next(self.ids)

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            ev = msg.get("ev")
            if ev == "ready":
                self.info = msg
                self.ready.set()
                log.info("handoff helper %s runs at %s", msg.get("pid"), msg.get("priority"))
            elif ev == "went":
                cb = self.events.pop(msg.get("id"), None)
                if cb is not None:
                    cb(msg)
            elif ev in ("state", "deleted"):
                if msg.get("state") == "cancelled":
                    self.events.pop(msg.get("id"), None)   # it will never go: no event for it any more
                slot = self.replies.get((ev, msg.get("id")))
                if slot is not None:
                    slot[1] = msg
                    slot[0].set()
            elif ev == "error":
                log.warning("handoff helper: %s", msg.get("text"))
        self.gone = True
        self.ready.set()
        try:
            self.proc.wait(5)   # reaped (a new helper is started by the next helper() call)
        except Exception:  # noqa: BLE001
            pass
        for cb in list(self.events.values()):
            cb({"ev": "gone"})
        self.events.clear()
        for slot in list(self.replies.values()):
            slot[0].set()

    def send(self, msg: dict, fds=()) -> None:
        if self.gone:
            raise HelperGone(errno.EPIPE, "the handoff helper is not running")
        with self.lock:
            socket.send_fds(self.sock, [json.dumps(msg).encode()], list(fds))

    def request(self, msg: dict, kind: str, fds=(), timeout: float = 5.0) -> dict:
        """Send msg and wait for its answer of `kind` ("state", "deleted"); HelperGone when none comes."""
        slot = [threading.Event(), None]
        key = (kind, msg["id"])
        self.replies[key] = slot
        try:
            self.send(msg, fds)
            slot[0].wait(timeout)
        finally:
            self.replies.pop(key, None)
        if slot[1] is None:
            raise HelperGone(errno.ETIMEDOUT, "no answer from the handoff helper")
        return slot[1]

    def arm(self, msg: dict, fds, on_event: Callable[[dict], None]) -> None:
        self.events[msg["id"]] = on_event
        try:
            self.send(msg, fds)
        except OSError:
            self.events.pop(msg["id"], None)
            raise

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(2)
            except Exception:  # noqa: BLE001
                self.proc.kill()


_HELPER: list = []
_HELPER_LOCK = threading.Lock()


def helper(start: bool = True) -> HandoffHelper | None:
    """This process's helper (started on the first call, when root), or None when it cannot run."""
    with _HELPER_LOCK:
        if _HELPER and not _HELPER[0].gone:
            return _HELPER[0]
        if not start or os.geteuid() != 0:
            return None
        try:
            h = HandoffHelper()
        except OSError as e:
            log.warning("handoff helper not started: %s", e)
            return None
        _HELPER[:] = [h]
        return h
