"""ha-heartbeat on Corosync 3 (`stack corosync` in ha.cf): the same backend interface as HeartbeatNode,
so org.hadaemon.Heartbeat1 (and ha-crmd above it) is unchanged, with membership and messages from Corosync.

- Nodes: corosync.conf's nodelist (cmap `nodelist.node.N.name`, else `ring0_addr`), keyed by nodeid.
- Members: the nodes whose ha-heartbeat has joined the CPG group `hadaemon-heartbeat` (and announced its
  generation there) and that votequorum lists in the current ring; every other node is `dead`, or `init`
  when never a member since start and ha.cf's initdead has not passed (as on the native stack). The epoch counts the changes of the view (node, generation).
- NodeRestarted: a node's CPG member id (nodeid, pid) changed: a new process announced a new generation.
- Send / Broadcast: CPG messages in agreed order (the bus checks the same channel and size limits). A
  message is delivered to the group in one total order, our own copy included: when our copy of a Send
  comes back while its destination is no longer the same member, it is reported MessageUndeliverable.
  Flow control (CS_ERR_TRY_AGAIN) queues messages here; more than MAX_QUEUED waiting gives Busy.
- Links: knet's per-node link status from cmap's statistics map (`stats.knet.nodeN.linkK.connected`),
  polled every second; links are named link0, link1, ...

No timers of its own decide anything: Corosync's token timeout is the deadtime.
"""
from __future__ import annotations

import logging
import os
import struct
from collections import deque
from typing import Callable, Deque, Dict, List, Set, Tuple

from hadaemon.io.corosync import CS_ERR_TRY_AGAIN, Cmap, Cpg, CorosyncError, Quorum

__all__ = ["CorosyncNode", "GROUP"]

log = logging.getLogger("ha-heartbeat")

GROUP = "hadaemon-heartbeat"
MAGIC, VERSION = b"HC", 1
K_HELLO, K_MSG = 1, 2
_HEAD = struct.Struct("!2sBBIQ")     # magic, version, kind, dst nodeid (0: all), generation or msg id
MAX_QUEUED = 8192                   # messages waiting for CPG flow control before Send answers Busy
LINK_POLL = 1.0
DROP_REASONS = ("oversized", "malformed", "auth", "version", "replay", "unknown-node", "stale", "generation")


class CorosyncNode:
    """Backend of org.hadaemon.Heartbeat1 on Corosync; listeners as HeartbeatNode's."""

    def __init__(self, local: str, generation: int, loop, notifier=None, group: str = GROUP,
                 initdead: float = 0.0, clock: Callable[[], float] | None = None):
        self.local_node = local
        self.generation = generation
        self.loop = loop
        self.notifier = notifier
        self.group = group
        self.initdead = initdead
        self.clock = clock or (loop.time if loop is not None else None)
        self._started_at: float | None = None
        self._initdead_handle = None
        self.listeners: List[Callable] = []
        self.names: Dict[int, str] = {}
        self.ids: Dict[str, int] = {}
        self.local_id = 0
        self.nlinks = 1
        self.links: Tuple[str, ...] = ("link0",)
        self.epoch = 0
        self.quorate = False
        self.drops: Dict[str, int] = {r: 0 for r in DROP_REASONS}
        self._cpg_members: Dict[int, int] = {}        # nodeid -> pid in the CPG group
        self._ring: Set[int] = set()                   # nodeids votequorum lists
        self._ring_known = False
        self._hello: Dict[int, Tuple[int, int]] = {}   # nodeid -> (pid, generation) announced
        self._state: Dict[str, str] = {}
        self._link_status: Dict[str, Dict[str, str]] = {}
        self._view: frozenset = frozenset()
        self._pending: Dict[int, Tuple[int, int, str]] = {}   # msg id -> (dst nodeid, dst pid, channel)
        self._queue: Deque[Tuple[int, bytes]] = deque()      # (msg id, data) waiting for flow control
        self._retry = None
        self._poll = None
        self._msg_id = 0
        self._last_status = ""
        self.cpg: Cpg | None = None
        self.quorum: Quorum | None = None
        self.cmap: Cmap | None = None
        self.stats: Cmap | None = None
        self.failed: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the local corosync (raises CorosyncError) and read the nodelist."""
        try:
            self.cmap = Cmap()
            self.names = self.cmap.nodelist()
            self.nlinks = max(1, sum(1 for k in range(8) if self.cmap.get_string(f"nodelist.node.0.ring{k}_addr")))
            self.stats = Cmap(stats=True)
            self.cpg = Cpg(self.group, self._on_message, self._on_confchg)
            self.quorum = Quorum(self._on_quorum)
            self.local_id = self.cpg.local_nodeid()
        except BaseException:
            self.close()
            raise
        self.ids = {n: i for i, n in self.names.items()}
        self.links = tuple(f"link{k}" for k in range(self.nlinks))
        mine = self.names.get(self.local_id)
        if mine != self.local_node:
            self.close()
            raise CorosyncError(f"local node {self.local_node!r} is nodeid {self.local_id} in corosync.conf's "
                                f"nodelist, named {mine!r}", 12)
        for name in self.names.values():
            if name != self.local_node:
                self._state[name] = "init"
                self._link_status[name] = {ln: "init" for ln in self.links}

    def start(self) -> None:
        self.cpg.join()
        self.quorum.track()
        if self.loop is not None:
            self.loop.add_reader(self.cpg.fd(), self._dispatch, self.cpg)
            self.loop.add_reader(self.quorum.fd(), self._dispatch, self.quorum)
            self._poll = self.loop.call_soon(self._poll_links)
        self._view = frozenset({(self.local_node, self.generation)})
        self._started_at = self.clock() if self.clock else None
        if self.loop is not None and self.initdead > 0:
            self._initdead_handle = self.loop.call_later(self.initdead, self._update)

    def close(self) -> None:
        for h in (self._retry, self._poll, self._initdead_handle):
            if h is not None:
                h.cancel()
        self._retry = self._poll = None
        for obj in (self.cpg, self.quorum):
            if obj is not None and self.loop is not None:
                try:
                    self.loop.remove_reader(obj.fd())
                except (CorosyncError, ValueError, RuntimeError):
                    pass
        for obj in (self.cpg, self.quorum, self.cmap, self.stats):
            if obj is not None:
                obj.finalize()
        self.cpg = self.quorum = self.cmap = self.stats = None

    def reconfigure(self, cfg, auth) -> None:
        """ha.cf reloaded: nothing of the corosync stack's comes from it (corosync-cfgtool -R reloads corosync)."""

    def _dispatch(self, handle) -> None:
        try:
            handle.dispatch()
        except CorosyncError as exc:   # corosync went away: the daemon stops (systemd restarts it)
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            log.error("lost the connection to corosync: %s", exc, extra={"EVENT": "corosync-lost"})
            if self.on_failure is not None:
                self.on_failure(exc)

    # -- D-Bus backend ------------------------------------------------------------------------------
    def members(self) -> Tuple[str, ...]:
        return tuple(sorted(n for n, _ in self._view))

    def nodes_view(self) -> Dict[str, Tuple[str, Dict[str, str]]]:
        view = {self.local_node: ("up", {ln: "up" for ln in self.links})}
        for name, state in self._state.items():
            view[name] = (state, dict(self._link_status.get(name, {})))
        return view

    def drop_counters(self) -> Dict[str, int]:
        return dict(self.drops)

    def status_line(self) -> str:
        others = ", ".join(f"{n} {s}" for n, s in sorted(self._state.items()) if s not in ("up", "warn"))
        text = (f"epoch {self.epoch}: {len(self._view)} member(s) {' '.join(self.members())} "
                f"(corosync, {'quorate' if self.quorate else 'not quorate'})")
        return text + (f"; {others}" if others else "")

    def send(self, node: str, channel: str, body: bytes) -> int:
        from hadaemon.core.errors import BadRequest

        if node == self.local_node:
            raise BadRequest("InvalidArgument", f"{node!r} is the local node; send to a peer")
        nodeid = self.ids.get(node)
        if nodeid is None:
            known = ", ".join(sorted(self._state)) or "none"
            raise BadRequest("UnknownNode", f"unknown node {node!r} (peers: {known})")
        if self._state.get(node) != "up":
            raise BadRequest("NodeDown", f"node {node!r} is {self._state.get(node)}, not a member; message not sent")
        msg_id = self._submit(nodeid, channel, body)
        self._pending[msg_id] = (nodeid, self._cpg_members.get(nodeid, 0), channel)
        return msg_id

    def broadcast(self, channel: str, body: bytes) -> int:
        return self._submit(0, channel, body)

    def _submit(self, dst: int, channel: str, body: bytes) -> int:
        from hadaemon.core.errors import BadRequest

        if len(self._queue) >= MAX_QUEUED:
            raise BadRequest("Busy", f"too much queued, retry later: {len(self._queue)} messages wait for corosync")
        raw = channel.encode("utf-8")
        if not raw or len(raw) > 255:
            raise BadRequest("InvalidArgument", "channel must be 1 to 255 bytes")
        self._msg_id += 1
        data = _HEAD.pack(MAGIC, VERSION, K_MSG, dst, self._msg_id) + bytes([len(raw)]) + raw + bytes(body)
        self._queue.append((self._msg_id, data))
        self._flush()
        return self._msg_id

    def _flush(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        while self._queue and self.cpg is not None:
            try:
                rc = self.cpg.mcast(self._queue[0][1])
            except CorosyncError as exc:
                self._fail(exc)
                return
            if rc == CS_ERR_TRY_AGAIN:
                if self.loop is not None:
                    self._retry = self.loop.call_later(0.02, self._flush)
                return
            self._queue.popleft()

    def _hello_now(self) -> None:
        if self.cpg is None:
            return
        try:
            self._queue.appendleft((0, _HEAD.pack(MAGIC, VERSION, K_HELLO, 0, self.generation)))
            self._flush()
        except CorosyncError as exc:
            self._fail(exc)

    # -- corosync callbacks -------------------------------------------------------------------------
    def _on_confchg(self, members, left, joined) -> None:
        self._cpg_members = {nodeid: pid for nodeid, pid in members}
        # a member that left keeps its announced (pid, generation): a new pid announcing later is a restart
        for msg_id, (dst, pid, channel) in list(self._pending.items()):
            if self._cpg_members.get(dst) != pid:
                del self._pending[msg_id]
                self._undeliverable(dst, channel, msg_id)
        if joined:
            self._hello_now()   # newcomers (or everybody, when we just joined) learn our generation
        self._update()

    def _on_quorum(self, quorate: bool, ring_seq: int, nodeids: List[int]) -> None:
        if quorate != self.quorate:
            log.info("corosync partition is %s", "quorate" if quorate else "not quorate",
                     extra={"NODE": self.local_node, "EVENT": "quorum"})
        self.quorate, self._ring, self._ring_known = quorate, set(nodeids), True
        self._update()

    def _on_message(self, nodeid: int, pid: int, data: bytes) -> None:
        if len(data) < _HEAD.size:
            self._drop("malformed")
            return
        magic, version, kind, dst, value = _HEAD.unpack_from(data)
        if magic != MAGIC:
            self._drop("malformed")
            return
        if version != VERSION:
            self._drop("version")
            return
        name = self.names.get(nodeid)
        if name is None:
            self._drop("unknown-node")
            return
        mine = nodeid == self.local_id and pid == os.getpid()
        if kind == K_HELLO:
            if not mine:
                old = self._hello.get(nodeid)
                self._hello[nodeid] = (pid, value)
                if old is not None and old[0] != pid:
                    log.warning("node %s restarted (generation %d -> %d)", name, old[1], value,
                                extra={"NODE": name, "EVENT": "restarted"})
                    self._emit("restarted", name, value)
                self._update()
            return
        if kind != K_MSG or len(data) < _HEAD.size + 1:
            self._drop("malformed")
            return
        n = data[_HEAD.size]
        if len(data) < _HEAD.size + 1 + n:
            self._drop("malformed")
            return
        try:
            channel = data[_HEAD.size + 1:_HEAD.size + 1 + n].decode("utf-8")
        except UnicodeDecodeError:
            self._drop("malformed")
            return
        if mine:
            sent = self._pending.pop(value, None)
            if sent is not None and self._cpg_members.get(sent[0]) != sent[1]:
                self._undeliverable(sent[0], sent[2], value)
            return
        if dst not in (0, self.local_id):
            return
        self._emit("message", name, channel, data[_HEAD.size + 1 + n:])

    def _undeliverable(self, dst: int, channel: str, msg_id: int) -> None:
        name = self.names.get(dst, str(dst))
        log.warning("message %d on channel %s to %s undeliverable (left the group)", msg_id, channel, name,
                    extra={"NODE": name, "EVENT": "undeliverable"})
        self._emit("undeliverable", name, channel, msg_id)

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self._emit("drops")

    # -- state --------------------------------------------------------------------------------------
    def _update(self) -> None:
        view = {(self.local_node, self.generation)}
        for nodeid, name in self.names.items():
            if name == self.local_node:
                continue
            pid = self._cpg_members.get(nodeid)
            hello = self._hello.get(nodeid)
            in_ring = nodeid in self._ring or not self._ring_known
            up = pid is not None and hello is not None and hello[0] == pid and in_ring
            old = self._state.get(name, "init")
            # never up yet: init while initdead runs (as on the native stack) or while it is in the group
            # without having announced its generation; else dead
            waiting = old == "init" and (self._initdead_running() or (pid is not None and in_ring))
            new = "up" if up else ("init" if waiting else "dead")
            if new != old:
                self._state[name] = new
                fields = {"NODE": name, "EVENT": new}
                if new == "dead":
                    log.warning("node %s is dead (%s)", name,
                                "not in the corosync ring" if not in_ring else "its ha-heartbeat is not in the CPG group",
                                extra=fields)
                else:
                    log.info("node %s is %s", name, new, extra=fields)
                self._emit("node", name, new)
            if up:
                view.add((name, hello[1]))
        view = frozenset(view)
        if view != self._view:
            self._view = view
            self.epoch += 1
            members = self.members()
            log.info("membership epoch %d: %s", self.epoch, " ".join(members),
                     extra={"NODE": self.local_node, "EVENT": "membership"})
            self._emit("membership", self.epoch, list(members))
        status = self.status_line()
        if status != self._last_status and self.notifier is not None:
            self._last_status = status
            self.notifier.status(status)

    def _initdead_running(self) -> bool:
        return (self._started_at is not None and self.clock is not None
                and self.clock() < self._started_at + self.initdead)

    def _poll_links(self) -> None:
        self._poll = None
        if self.stats is None:
            return
        for nodeid, name in self.names.items():
            if name == self.local_node:
                continue
            for k, ln in enumerate(self.links):
                try:
                    v = self.stats.get_uint8(f"stats.knet.node{nodeid}.link{k}.connected")
                except CorosyncError as exc:
                    self._fail(exc)
                    return
                new = "up" if v else ("init" if self._link_status[name][ln] == "init" and v is None else "dead")
                old = self._link_status[name][ln]
                if new != old:
                    self._link_status[name][ln] = new
                    log.info("node %s link %s is %s", name, ln, new,
                             extra={"NODE": name, "LINK": ln, "EVENT": f"link-{new}"})
                    self._emit("link", name, ln, new)
        if self.loop is not None:
            self._poll = self.loop.call_later(LINK_POLL, self._poll_links)

    def _emit(self, kind: str, *args) -> None:
        for fn in self.listeners:
            try:
                fn(kind, *args)
            except Exception:  # noqa: BLE001 - a listener must not break the loop
                log.exception("listener failed on %s", kind)
