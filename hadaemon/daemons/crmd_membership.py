"""One node's view of the membership: heartbeat's membership events, quorum, the nodes seen since the
cluster started (kept across a crmd restart), and the liveness of the other nodes' crmd.

A mixin of crmd_node.CrmNode (it uses its hb, members, quorum, election, store, dc_role, clock and
broadcast(), emit(), _election(), _set_dc())."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os

from hadaemon.core.crm import election as EL
from hadaemon.core.crm import quorum as Q
from hadaemon.io.files import write_atomic

__all__ = ["Membership", "ALIVE_INTERVAL"]

log = logging.getLogger("ha-crmd")

ALIVE_INTERVAL = 1.0


class Membership:
    """Membership and crmd liveness, for CrmNode."""

    async def _liveness(self, stop: asyncio.Event) -> None:
        """Every crmd says it is alive every ALIVE_INTERVAL; a member whose crmd is silent for
        crmd_deadtime (its heartbeat still up: the process hangs or was killed and not restarted)
        is elected without, and recorded with crmd offline (then fenced when fencing is on)."""
        while not stop.is_set():
            await asyncio.sleep(ALIVE_INTERVAL)
            if not self.hb.connected:
                continue
            self.broadcast("alive")
            now = self.clock()
            for m in self.members:
                if m == self.local_node or m in self.election.departed or m not in self.election.votes:
                    continue
                if now - self._alive.get(m, now) > self.crmd_deadtime:
                    log.warning("the crmd of %s has been silent for %.0f s: electing without it", m,
                                now - self._alive[m], extra={"NODE": m, "EVENT": "crmd-silent"})
                    self._election(EL.Departed(m))

    # -- heartbeat events ---------------------------------------------------------------------------
    def _on_hb_reconnect(self) -> None:
        if self.hb.local_node and self.hb.local_node != self.local_node:
            log.error("ha-heartbeat calls this node %r, ha-crmd was started as %r", self.hb.local_node,
                      self.local_node, extra={"EVENT": "node-name-mismatch"})
        self._on_membership(self.hb.epoch, self.hb.members)

    def _on_hb_disconnect(self) -> None:
        self._set_dc("")

    def _on_membership(self, epoch: int, members) -> None:
        members = tuple(sorted(set(members) | {self.local_node}))
        lost = [n for n in self.members if n not in members]
        now = self.clock()
        for n in members:
            if n not in self.members:
                self._alive[n] = now   # a new member gets a full crmd_deadtime
        self.members = members
        was = self.quorum.has_quorum
        gen = int(getattr(self.hb, "generation", 0) or 0)
        self._note_seen(members, gen)
        if self.quorum.wait_for_all and not self.quorum.seen_all and gen and self._seen_all_gen() == gen:
            # ha-crmd restarted alone: ha-heartbeat (the same generation) saw every node already
            self.quorum = dataclasses.replace(self.quorum, seen_all=True)
        self.quorum = Q.step(self.quorum, members)
        if self.quorum.wait_for_all and self.quorum.seen_all and gen and self._seen_all_gen() != gen:
            self._save_seen_all(gen)
        if was != self.quorum.has_quorum:
            log.warning("%s", Q.describe(self.quorum), extra={"EVENT": "quorum"})
        log.info("membership %d: %s", epoch, " ".join(members), extra={"EVENT": "membership"})
        for n in lost:
            self.emit("node", n, "offline")
            self._reasm.forget(n)     # the rest of a chunked message from it will not come
        if self.dc_role is not None:
            self.dc_role.membership_changed(members, lost)
        self._election(EL.Membership(members))

    def _note_seen(self, members, gen: int) -> None:
        """Nodes seen since the cluster started (startup fencing spares them). Kept in
        STATE_DIR/nodes-seen with ha-heartbeat's generation: a restarted ha-crmd under the same
        ha-heartbeat still knows them (as Pacemaker's CIB manager outlives a controller restart); after
        a reboot (a new generation) they must be seen again."""
        path = os.path.join(self.store.dir, "nodes-seen")
        if gen and not self._seen_loaded:
            self._seen_loaded = True
            try:
                with open(path) as f:
                    words = f.read().split()
                if words and words[0] == str(gen):
                    self.seen_members.update(words[1:])
            except (OSError, ValueError):
                pass
        new = set(members) - self.seen_members
        self.seen_members.update(members)
        if new and gen:
            try:
                write_atomic(path, (f"{gen} " + " ".join(sorted(self.seen_members)) + "\n").encode(), 0o600)
            except OSError as exc:
                log.warning("cannot save the nodes seen: %s", exc, extra={"EVENT": "store-error"})

    def _seen_all_gen(self) -> int:
        try:
            return self.store.load_seen_all()
        except OSError:
            return 0

    def _save_seen_all(self, gen: int) -> None:
        try:
            self.store.save_seen_all(gen)
        except OSError as exc:
            log.warning("cannot save the wait_for_all state: %s", exc, extra={"EVENT": "store-error"})
