"""The DC's changes to the master CIB: configuration changes acknowledged only once every joined member
applied and persisted them, status changes replicated in batches, cleanup, node attributes.

A mixin of crmd_dc.DcRole (it uses its node, loop, join, joined, closed and schedule())."""
from __future__ import annotations

import asyncio
import copy
import logging
import xml.etree.ElementTree as ET
from typing import Dict

from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import status as S
from hadaemon.core.errors import BadRequest, ConfigError

__all__ = ["CibChanges", "ACK_TIMEOUT", "FLUSH_DELAY"]

log = logging.getLogger("ha-crmd")

ACK_TIMEOUT = 10.0
FLUSH_DELAY = 0.02


class CibChanges:
    _acks: Dict[int, tuple]

    def broadcast_cib(self, ack: int = 0) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.node.broadcast("cib", xml=cibdoc.to_text(self.cib), ack=ack)

    def _changed(self) -> None:
        """A status change: persist and replicate soon (changes within FLUSH_DELAY go out together)."""
        if self._flush_handle is None:
            def flush():
                self._flush_handle = None
                if not self.closed:
                    self.node.persist()
                    self.broadcast_cib()
            self._flush_handle = self.loop.call_later(FLUSH_DELAY, flush)

    async def commit(self, cib: ET.Element, reason: str = "") -> str:
        """Make cib the CIB, replicate it and wait until every joined member applied it. With a reason,
        the scheduler runs at once on the new CIB, as Pacemaker's does on a CIB change (not after the
        members' disks: the answer to the admin still waits for them)."""
        self.node.install_cib(cib)
        self._ack_seq += 1
        ack = self._ack_seq
        pending = {n for n in self.joined if n != self.node.local_node and n in self.node.members}
        fut = self.loop.create_future()
        self._acks[ack] = (pending, fut)
        if not pending:
            fut.set_result(None)
        self.broadcast_cib(ack)
        if reason:
            self.schedule(reason)
        try:
            # every member applied and persisted it, and so did the DC (its store writes from a thread)
            await asyncio.wait_for(asyncio.gather(asyncio.shield(fut), self.node.store.when_saved(self.loop)),
                                   ACK_TIMEOUT)
        except asyncio.TimeoutError:
            raise BadRequest("NotReady", f"not acknowledged by {' '.join(sorted(pending))} within "
                             f"{ACK_TIMEOUT:g} s (the change is applied on the DC)") from None
        finally:
            self._acks.pop(ack, None)
        return cibdoc.version_text(cibdoc.version_of(self.cib))

    async def _modify(self, msg: dict) -> str:
        if self.join is None or not self.join.done:
            raise BadRequest("NotReady", "the DC is still joining the nodes; retry in a moment")
        try:
            conf = ET.fromstring(msg["conf"])
        except ET.ParseError as exc:
            raise BadRequest("InvalidArgument", f"invalid configuration XML: {exc}") from None
        cib = copy.deepcopy(self.cib)
        cib.remove(cib.find("configuration"))
        cib.insert(0, conf)
        try:
            admin = int(msg.get("admin_epoch") or 0)
        except ValueError:
            admin = 0
        if admin > cibdoc.version_of(cib)[0]:
            cibdoc.set_version(cib, (admin, cibdoc.version_of(cib)[1], 0))
        problem = cibdoc.old_schema_problem(cib)
        if problem:
            raise BadRequest("InvalidArgument", problem)
        try:
            parse_cib(cibdoc.to_text(cib), "<new CIB>")
        except ConfigError as exc:
            raise BadRequest("InvalidArgument", f"the new CIB is not valid: {exc}") from None
        cibdoc.bump(cib, configuration=True)
        log.info("CIB change (%s): epoch %s", msg.get("reason") or "update", cib.get("epoch"),
                 extra={"EVENT": "cib-update"})
        return await self.commit(cib, "configuration changed")

    async def _cleanup(self, rsc: str, node: str) -> str:
        if self.join is None or not self.join.done:
            raise BadRequest("NotReady", "the DC is still joining the nodes; retry in a moment")
        cib = copy.deepcopy(self.cib)
        nodes = [node] if node else sorted(self.joined | {n.get("uname") for n in cib.iter("node_state")})
        for n in nodes:
            if n:
                S.clear_lrm(cib, n, rsc or None)
                S.clear_failcounts(cib, n, rsc or None)
                if n in self.joined:
                    self.node.send(n, "forget", rsc=rsc)
        cibdoc.bump(cib, configuration=False)
        log.info("cleanup of %s on %s", rsc or "every resource", node or "every node",
                 extra={"RESOURCE": rsc, "EVENT": "cleanup"})
        return await self.commit(cib, "cleanup")

    def set_attribute(self, node: str, name: str, value) -> None:
        if self.join is None or not self.join.done:
            # newer than the node's join report (messages from a node arrive in order): applied
            # on top of the report when the join completes
            self.pending_attrs.setdefault(node, {})[name] = value
            return
        if S.set_attribute(self.cib, node, name, value):
            cibdoc.bump(self.cib, configuration=False)
            self._changed()
            self.schedule(f"attribute {name} of {node}")
