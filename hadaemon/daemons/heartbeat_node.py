"""The running heartbeat node: wires UDP links, wire codec, membership core and messenger on one loop."""
from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Callable, Dict, List, Tuple

from hadaemon.core.heartbeat import membership as mb
from hadaemon.core.heartbeat import wire
from hadaemon.core.heartbeat.messaging import Backpressure, Messenger, MessagingError
from hadaemon.daemons.heartbeat_peers import load_peer_generations, save_peer_generations
from hadaemon.io.udp import Transport, interface_up

__all__ = ["HeartbeatNode", "DROP_REASONS", "load_peer_generations"]

log = logging.getLogger("ha-heartbeat")

# every reason a received datagram can be dropped; all are reported (0 included)
DROP_REASONS = ("oversized", "malformed", "auth", "version", "replay", "unknown-node", "stale", "generation")
EPSILON = 0.001
LOOP_STUCK, LOOP_STUCK_MIN = 2, 1.0   # the sender thread stops when the event loop has not run for this long


class HeartbeatNode:
    """One node's heartbeat layer. Backend of org.hadaemon.Heartbeat1 (see hadaemon.bus.heartbeat).

    listeners: callables(kind, *args) told about "node", "link", "restarted", "membership", "message",
    "undeliverable" and "drops" events (the D-Bus export registers one).
    """

    def __init__(self, cfg, auth, local: str, generation: int, loop, notifier=None, clock=None,
                 state_dir: str | None = None):
        self.cfg = cfg
        self.auth = auth
        self.local_node = local
        self.generation = generation
        self.loop = loop
        self.notifier = notifier
        self.clock: Callable[[], float] = clock or loop.time
        self.links: Tuple[str, ...] = tuple(cfg.links)
        self.state_dir = state_dir
        self._persisted: Dict[str, int] = load_peer_generations(state_dir, cfg.nodes) if state_dir else {}
        self.state = mb.new_membership(local, generation, _timing(cfg), cfg.nodes, self.links,
                                       autojoin=not cfg.nodes or getattr(cfg, "autojoin", "none") in ("any", "other"),
                                       known=self._persisted)
        self.messenger = self._new_messenger()
        self.guard = wire.ReplayGuard(max_sources=mb.MAX_PEERS, stale_after=cfg.deadtime)
        for name, gen in self._persisted.items():
            self.guard.pin(name, gen)
        self.transport: Transport | None = None
        self.drops: Dict[str, int] = {r: 0 for r in DROP_REASONS}
        self.sent = 0
        self.received = 0
        self.listeners: List[Callable] = []
        self.peer_addr: Dict[Tuple[str, str], Tuple[str, int]] = {}
        self._seqs = itertools.count(1)   # one sequence for every packet (next() is atomic: both threads draw)
        self._hb_payload = b""              # the heartbeat's echo, kept current by the event loop
        self._beat_thread: threading.Thread | None = None
        self._beat_stop = threading.Event()
        self._loop_seen = 0.0               # time.monotonic() of the event loop's last keepalive turn
        self.late_beats = 0                 # heartbeats the sender sent more than a keepalive late
        self._link_up: Dict[str, bool] = {}
        self._hb_handle = None
        self._hb_due: float | None = None
        self._deadline_handle = None
        self._deadline_at: float | None = None
        self._msg_handle = None
        self._unknown_logged: set = set()
        self._last_status = ""
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def _new_messenger(self) -> Messenger:
        cfg = self.cfg
        return Messenger(self.local_node, self.generation, compression=cfg.compression,
                         compression_threshold=cfg.compression_threshold)

    def open(self) -> None:
        """Bind the sockets of every medium (raises TransportError)."""
        t = Transport(self.cfg.media, self.cfg.udpport, self.on_datagram, loop=self.loop)
        t.open()
        self.transport = t

    def start(self) -> None:
        now = self.clock()
        self._started = True
        self._apply(mb.Start(), now)
        self.messenger_membership()
        self._hb_payload = self._echo()
        if self.transport is not None:   # heartbeats from their own thread (see _beat_loop)
            self._loop_seen = time.monotonic()
            self._beat_stop.clear()
            self._beat_thread = threading.Thread(target=self._beat_loop, name="ha-heartbeat-sender", daemon=True)
            self._beat_thread.start()
        self._heartbeat_timer()

    def close(self) -> None:
        self._beat_stop.set()
        if self._beat_thread is not None and self._beat_thread is not threading.current_thread():
            self._beat_thread.join(timeout=min(2.0, self.cfg.keepalive + 0.5))
            self._beat_thread = None
        for h in (self._hb_handle, self._deadline_handle, self._msg_handle):
            if h is not None:
                h.cancel()
        self._hb_handle = self._deadline_handle = self._msg_handle = None
        if self.transport:
            self.transport.close()
            self.transport = None

    def reconfigure(self, cfg, auth) -> None:
        """Apply a reloaded ha.cf/authkeys; sockets are reopened only if media or port changed."""
        if (tuple(cfg.media), cfg.udpport) != (tuple(self.cfg.media), self.cfg.udpport):
            t = Transport(cfg.media, cfg.udpport, self.on_datagram, loop=self.loop)
            t.open()  # raises TransportError: the old sockets stay in use
            if self.transport:
                self.transport.close()
            self.transport = t
        self.cfg, self.auth = cfg, auth
        self.links = tuple(cfg.links)
        self.messenger.compression = cfg.compression
        self.guard.stale_after = cfg.deadtime
        self.messenger.compression_threshold_bytes = cfg.compression_threshold * 1024
        self._apply(mb.Reconfigure(_timing(cfg), tuple(cfg.nodes), self.links), self.clock())

    # -- D-Bus backend ------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.state.epoch

    def members(self) -> Tuple[str, ...]:
        return mb.members(self.state)

    def nodes_view(self) -> Dict[str, Tuple[str, Dict[str, str]]]:
        """node -> (state, {link: status}); the local node is 'up' on links whose interface is up."""
        view = {self.local_node: ("up", {ln: ("up" if self.state.local_links.get(ln, True) else "dead")
                                         for ln in self.links})}
        for name, peer in self.state.peers.items():
            view[name] = (peer.state, {ln: lv.status for ln, lv in peer.links.items()})
        return view

    def drop_counters(self) -> Dict[str, int]:
        return dict(self.drops)

    def status_line(self) -> str:
        return mb.summary(self.state)

    def send(self, node: str, channel: str, body: bytes) -> int:
        from hadaemon.core.errors import BadRequest

        if node == self.local_node:
            raise BadRequest("InvalidArgument", f"{node!r} is the local node; send to a peer")
        peer = self.state.peers.get(node)
        if peer is None:
            known = ", ".join(sorted(self.state.peers)) or "none"
            raise BadRequest("UnknownNode", f"unknown node {node!r} (peers: {known})")
        if peer.state not in mb.ALIVE:
            raise BadRequest("NodeDown", f"node {node!r} is {peer.state}, not a member; message not sent")
        now = self.clock()
        msg_id, packets = self._messenger_send(node, channel, body, now)
        self._transmit(packets)
        self._schedule_messenger()
        return msg_id

    def broadcast(self, channel: str, body: bytes) -> int:
        now = self.clock()
        msg_id, packets = self._messenger_send(None, channel, body, now)
        self._transmit(packets)
        self._schedule_messenger()
        return msg_id

    def _messenger_send(self, dst, channel, body, now):
        from hadaemon.core.errors import BadRequest

        try:
            packets = self.messenger.send(dst, channel, body, now)
        except Backpressure as exc:
            raise BadRequest("Busy", f"too much queued, retry later: {exc}") from None
        except MessagingError as exc:
            raise BadRequest("InvalidArgument", str(exc)) from None
        return self.messenger.last_msg_id, packets

    # -- receive ------------------------------------------------------------------------------------
    def on_datagram(self, link: str, data: bytes, addr, copy: bool = False) -> None:
        """One datagram from a link socket: decode, authenticate, replay-check, feed the cores.
        copy: a peer's broadcast the kernel queued on two sockets; the second one read is not counted."""
        now = self.clock()
        head = wire.peek(data, self.auth)
        if head is not None and self.guard.seen(*head, now):
            if not copy:
                self._drop("replay")   # an exact replay, dropped before any digest is computed
            return
        try:
            pkt = wire.decode(data, self.auth, wire.MAX_PACKET)
        except wire.Drop as drop:
            self._drop(drop.reason)
            return
        except Exception as exc:  # noqa: BLE001 - a codec bug must never take the daemon down
            log.debug("decode failed: %r", exc)
            self._drop("malformed")
            return
        src = pkt.src
        if src == self.local_node:
            return  # our own broadcast/multicast looped back
        if src not in self.state.peers and not self.state.autojoin:
            self._unknown(src)   # before any per-name state: names not in ha.cf cost nothing
            return
        echo = wire.echoed_generation(pkt.payload, self.local_node) if pkt.kind == "hb" else None
        fresh = echo == self.generation if pkt.kind == "hb" else pkt.dst_generation == self.generation
        reason = self.guard.check(pkt, fresh, now)
        if reason:
            if reason == "unknown-node":
                self._unknown(src)
            else:
                self._drop(reason)
            return
        effects = self._apply(mb.Heartbeat(src, link, pkt.generation, pkt.seq, echo), now)
        if any(isinstance(e, (mb.UnknownNode, mb.Rejected)) for e in effects):
            return
        self.received += 1
        self.peer_addr[(src, link)] = addr = (addr[0], addr[1])
        if self.transport is not None:
            self.transport.add_peer(link, addr)   # its own queues from now on (a dict lookup once done)
        if pkt.kind == "hb":
            log.debug("heartbeat from %s on %s (generation %d, seq %d)", src, link, pkt.generation, pkt.seq)
            return
        if pkt.dst != self.local_node:
            return  # a message for another node that reached us by broadcast
        try:
            delivered, packets = self.messenger.on_packet(pkt, now)
        except Exception:  # noqa: BLE001 - a messenger bug must not stop membership; counted and logged
            log.exception("messenger failed on a %s packet from %s", pkt.kind, pkt.src)
            self._drop("malformed")
            return
        self._transmit(packets)
        for d in delivered:
            self._emit("message", d.src, d.channel, d.body)
        self._schedule_messenger()

    def _unknown(self, node: str) -> None:
        self._drop("unknown-node")
        if node not in self._unknown_logged and len(self._unknown_logged) < 64:
            self._unknown_logged.add(node)
            log.warning("ignoring packets from %s: not listed as a node in %s", node,
                        getattr(self.cfg, "path", "ha.cf"), extra={"NODE": node, "EVENT": "unknown-node"})

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self._emit("drops")

    # -- send ---------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        return next(self._seqs)

    def _transmit(self, packets) -> None:
        for pkt in packets:
            dst = getattr(pkt, "dst", "") or ""
            if dst:
                sent = False
                for link in self._links_towards(dst):
                    addr = self.peer_addr.get((dst, link))
                    if addr and self.transport:
                        data = wire.encode(wire.restamp(pkt, seq=self._next_seq(), link=link), self.auth)
                        sent = self.transport.send_to(link, data, addr, bulk=True) > 0
                        if sent:
                            break
                if sent:
                    self.sent += 1
                    continue
            self._send_all_links(pkt, bulk=True)

    def _links_towards(self, node: str) -> List[str]:
        peer = self.state.peers.get(node)
        if not peer:
            return []
        return sorted(self.links, key=lambda ln: (peer.links.get(ln).status != mb.LINK_UP
                                                  if peer.links.get(ln) else True))

    def _send_all_links(self, pkt, bulk: bool = False) -> None:
        """Send on every link's media; bulk (messenger packets) yields to heartbeats (Transport.send)."""
        transport, auth = self.transport, self.auth   # read once: the sender thread calls this too
        if not transport:
            return
        for link in self.links:
            data = wire.encode(wire.restamp(pkt, seq=self._next_seq(), link=link), auth)
            self.sent += transport.send(link, data, bulk)

    def _send_heartbeat(self) -> None:
        hb = wire.Packet(kind="hb", src=self.local_node, dst="", generation=self.generation, seq=0,
                         link="", payload=self._hb_payload)
        self._send_all_links(hb)

    def _beat_loop(self) -> None:
        """The sender thread: a heartbeat on every link each keepalive, on the monotonic clock, whatever
        the event loop is doing (a burst of messages, a D-Bus storm): it needs only the GIL, which the
        loop's thread yields within sys.getswitchinterval(). It inherits the daemon's SCHED_RR and takes
        one priority step above it (heartbeat_realtime.sender_priority): an event loop busy with messages,
        its own or another daemon's at the same priority, does not keep it off the CPU.
        It sends only while the event loop runs (a turn of _heartbeat_timer within LOOP_STUCK x deadtime,
        at least LOOP_STUCK_MIN s): a node whose loop is stuck must look dead, not keep heartbeating (the
        watchdog restarts it); a loop merely late under load must not cost a death."""
        from hadaemon.daemons.heartbeat_realtime import sender_priority

        raised = sender_priority()
        if raised:
            log.debug("heartbeat sender thread: %s", raised)
        due = time.monotonic()
        while not self._beat_stop.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)   # relative: wall-clock steps do not move it
                continue
            keepalive, deadtime = self.cfg.keepalive, self.cfg.deadtime
            if now - self._loop_seen < max(LOOP_STUCK * deadtime, LOOP_STUCK_MIN):
                if now - due > keepalive:   # this thread did not run for a keepalive: the host starves us
                    self.late_beats += 1
                    log.warning("heartbeat sent %.0f ms late (keepalive %g ms): the daemon was not scheduled",
                                1000 * (now - due), 1000 * keepalive,
                                extra={"NODE": self.local_node, "EVENT": "late-heartbeat"})
                try:
                    self._send_heartbeat()
                except Exception:  # noqa: BLE001 - the sender must survive anything (a reload's new sockets)
                    log.exception("heartbeat sender")
            due += keepalive
            if due <= now:
                due = now + keepalive   # skip missed beats, never a burst

    def _heartbeat_timer(self) -> None:
        now = self.clock()
        self._loop_seen = time.monotonic()
        self._poll_links(now)
        self._hb_payload = self._echo()
        if self._beat_thread is None:   # no sender thread (no sockets: in-process tests)
            self._send_heartbeat()
        self._tick(now)
        self._messenger_tick(now)
        # drift-free: the next beat is one keepalive after this one was due (skipping missed beats)
        due = (self._hb_due or now) + self.cfg.keepalive
        self._hb_due = due if due > now else now + self.cfg.keepalive
        self._hb_handle = self.loop.call_at(self._hb_due, self._heartbeat_timer)

    def _echo(self) -> bytes:
        """The heartbeat's payload: every peer generation this node knows (a peer proves freshness with it)."""
        return wire.encode_echo((n, p.generation) for n, p in sorted(self.state.peers.items())
                                if p.generation is not None)

    def _poll_links(self, now: float) -> None:
        for link in self.links:
            up = interface_up(link)
            if self._link_up.get(link) != up:
                first = link not in self._link_up
                self._link_up[link] = up
                if not (first and up):
                    log.warning("local link %s is %s", link, "up" if up else "down",
                                extra={"NODE": self.local_node, "LINK": link,
                                       "EVENT": "link-up" if up else "link-down"})
                self._apply(mb.LinkUp(link) if up else mb.LinkDown(link), now)

    # -- messenger timers ---------------------------------------------------------------------------
    def _messenger_tick(self, now: float) -> None:
        if self._msg_handle is not None:
            self._msg_handle.cancel()
            self._msg_handle = None
        packets = self.messenger.tick(now)
        self._transmit(packets)
        self._schedule_messenger()

    def _schedule_messenger(self) -> None:
        when = self.messenger.next_deadline()
        if when is None:
            return
        if self._msg_handle is not None:
            if self._msg_handle.when() <= when + EPSILON:
                return
            self._msg_handle.cancel()
        self._msg_handle = self.loop.call_at(max(when, self.clock()) + EPSILON, self._messenger_tick_now)

    def _messenger_tick_now(self) -> None:
        self._messenger_tick(self.clock())

    def messenger_membership(self) -> None:
        """Tell the messenger the live members with their generations (it fails streams to the others)."""
        live = {n: g for n, g in self.state.view if n != self.local_node}
        self._undeliverable(self.messenger.membership(live))

    # -- membership ---------------------------------------------------------------------------------
    def _apply(self, event, now: float) -> List:
        self.state, effects = mb.step(self.state, event, now)
        for e in effects:
            self._effect(e)
        self._schedule_deadline()
        if effects:
            self._hb_payload = self._echo()   # a generation believed or changed: echo it from the next beat
            status = self.status_line()
            if status != self._last_status and self.notifier is not None:
                self._last_status = status
                self.notifier.status(status)
        return effects

    def _schedule_deadline(self) -> None:
        when = mb.next_due(self.state)
        if when == self._deadline_at:
            return
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
            self._deadline_handle = None
        self._deadline_at = when
        if when is not None:
            self._deadline_handle = self.loop.call_at(when + EPSILON, self._deadline_fired)

    def _deadline_fired(self) -> None:
        self._deadline_handle = None
        self._deadline_at = None
        self._tick(self.clock())

    def _tick(self, now: float) -> None:
        """Let time pass. A node is judged silent only with nothing of it queued: when the Tick would
        change a state (warn, dead, a link dead), every socket is read first, so a daemon that was not
        scheduled for a while judges from what arrived meanwhile, not from its own lateness."""
        state, effects = mb.step(self.state, mb.Tick(), now)   # pure: nothing applied yet
        if not effects:   # nothing changes: keep the result (the common case; one evaluation per tick)
            self.state = state
            self._schedule_deadline()
            return
        if self.transport is not None:
            self.transport.drain()
            now = self.clock()
        self._apply(mb.Tick(), now)

    def _effect(self, e) -> None:
        me = self.local_node
        if isinstance(e, mb.NodeStateChanged):
            fields = {"NODE": e.node, "EVENT": e.new}
            if e.new == mb.WARN:
                log.warning("node %s: no heartbeat for %.3fs (warntime %gs)", e.node, e.silent_for or 0,
                            self.cfg.warntime, extra=fields)
            elif e.new == mb.DEAD:
                silent = "never heard" if e.silent_for is None else f"silent for {e.silent_for:.3f}s"
                log.warning("node %s is dead (%s)", e.node, silent, extra=fields)
            else:
                log.info("node %s is %s", e.node, e.new, extra=fields)
            self._emit("node", e.node, e.new)
        elif isinstance(e, mb.LinkStatusChanged):
            log.info("node %s link %s is %s", e.node, e.link, e.new,
                     extra={"NODE": e.node, "LINK": e.link, "EVENT": f"link-{e.new}"})
            self._emit("link", e.node, e.link, e.new)
        elif isinstance(e, mb.NodeRestarted):
            self._persist(e.node, e.new_generation)
            log.warning("node %s restarted (generation %d -> %d)", e.node, e.old_generation, e.new_generation,
                        extra={"NODE": e.node, "EVENT": "restarted"})
            self._emit("restarted", e.node, e.new_generation)
        elif isinstance(e, mb.MembershipChanged):
            log.info("membership epoch %d: %s", e.epoch, " ".join(e.members),
                     extra={"NODE": me, "EVENT": "membership"})
            self.messenger_membership()
            self._emit("membership", e.epoch, list(e.members))
        elif isinstance(e, mb.UnknownNode):
            self._unknown(e.node)
        elif isinstance(e, mb.Rejected):
            self._drop(e.reason)
        elif isinstance(e, mb.Verified):
            self.guard.pin(e.node, e.generation, floor=e.seq)
            self._persist(e.node, e.generation)

    def _persist(self, node: str, generation: int) -> None:
        """Remember a peer's believed generation in the state dir (atomically) when it changed."""
        if not self.state_dir or self._persisted.get(node) == generation:
            return
        self._persisted[node] = generation
        save_peer_generations(self.state_dir, self._persisted, node)

    def _undeliverable(self, failed) -> None:
        for u in failed:
            log.warning("message %d on channel %s to %s undeliverable (%s)", u.msg_id, u.channel, u.dst, u.reason,
                        extra={"NODE": u.dst, "EVENT": "undeliverable"})
            self._emit("undeliverable", u.dst, u.channel, u.msg_id)

    def _emit(self, kind: str, *args) -> None:
        for fn in self.listeners:
            try:
                fn(kind, *args)
            except Exception:  # noqa: BLE001 - a listener must not break the protocol loop
                log.exception("listener failed on %s", kind)


def _timing(cfg) -> mb.Timing:
    return mb.Timing(keepalive=cfg.keepalive, warntime=cfg.warntime, deadtime=cfg.deadtime,
                     initdead=cfg.initdead)
