"""The messages between crmd instances over heartbeat: receiving (reassembling compressed / chunked
messages) and sending to one node or all (chunked messages in order, retried while heartbeat is busy).

A mixin of crmd_node.CrmNode (it uses its hb, local_node, loop, clock, _alive, _reasm, _bulk and
handle())."""
from __future__ import annotations

import asyncio
import logging

from hadaemon.bus.heartbeat_client import HeartbeatError
from hadaemon.daemons import crmd_wire as W

__all__ = ["Messaging"]

log = logging.getLogger("ha-crmd")


class Messaging:
    """Receiving and sending crmd messages, for CrmNode."""

    def _on_message(self, src: str, channel: str, body: bytes) -> None:
        if channel != W.CHANNEL:
            return
        self._alive[src] = self.clock()
        msg = W.decode(body)
        if msg is None:
            log.warning("undecodable crmd message from %s dropped", src, extra={"NODE": src})
            return
        if msg["t"] in ("z", "chunk"):
            msg = self._reasm.feed(src, msg, self.clock())
            if self._reasm.last_error:
                log.warning("crmd message from %s: %s", src, self._reasm.last_error, extra={"NODE": src})
            if msg is None:
                return
        try:
            self.handle(src, msg)
        except (KeyError, TypeError, ValueError, AttributeError, SyntaxError) as exc:
            log.warning("bad %s message from %s dropped: %r", msg.get("t"), src, exc, extra={"NODE": src})

    # -- sending ------------------------------------------------------------------------------------
    def send(self, node: str, kind: str, /, **fields) -> None:
        """Send to a node (delivered locally when it is this node); failures are logged, not raised."""
        if node == self.local_node:
            msg = dict(fields, t=kind)
            self.loop.call_soon(self.handle, node, msg)
            return
        bodies = W.frames(kind, **fields)
        if len(bodies) == 1 and self._bulk is None:
            asyncio.ensure_future(self._send(node, bodies[0], kind))
        else:
            self._queue_bulk(bodies, kind, node)

    async def _send(self, node: str, body: bytes, kind: str) -> None:
        for attempt in range(50):
            try:
                await self.hb.send(node, W.CHANNEL, body)
                return
            except HeartbeatError as exc:
                if exc.kind == "Busy":
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                log.debug("%s to %s not sent: %s", kind, node, exc)
                return

    def broadcast(self, kind: str, **fields) -> None:
        bodies = W.frames(kind, **fields)
        if len(bodies) == 1 and self._bulk is None:
            asyncio.ensure_future(self._broadcast(bodies[0], kind))
        else:
            self._queue_bulk(bodies, kind, None)

    def _queue_bulk(self, bodies, kind: str, node: str | None) -> None:
        """Send a chunked message's parts in order, after any chunked message still being sent; the
        messages sent meanwhile queue behind it too (messages from a node arrive in order)."""
        prev = self._bulk

        async def run():
            if prev is not None:
                try:
                    await prev
                except Exception:  # noqa: BLE001 - the previous message's failure is its own
                    pass
            for body in bodies:
                if node is None:
                    await self._broadcast(body, kind)
                else:
                    await self._send(node, body, kind)

        task = asyncio.ensure_future(run())
        self._bulk = task

        def done(t):
            if self._bulk is t:
                self._bulk = None
        task.add_done_callback(done)

    async def _broadcast(self, body: bytes, kind: str) -> None:
        for attempt in range(50):
            try:
                await self.hb.broadcast(W.CHANNEL, body)
                return
            except HeartbeatError as exc:
                if exc.kind == "Busy":
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                log.debug("%s broadcast not sent: %s", kind, exc)
                return
