"""One node's CRM: election, the replicated CIB copy, the local LRM, and the Crm1 backend.

The DC role (join, scheduling, transitions) lives in crmd_dc.DcRole, created when this node wins an
election and dropped when a new election starts.
Membership and crmd liveness are in crmd_membership, sending and receiving crmd messages in
crmd_messaging (mixins of CrmNode).
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Callable, Dict, List

from hadaemon.bus.heartbeat_client import HeartbeatClient, HeartbeatError
from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import election as EL
from hadaemon.core.crm import quorum as Q
from hadaemon.core.crm import status as S
from hadaemon.core.errors import BadRequest, ConfigError
from hadaemon.daemons import crmd_wire as W
from hadaemon.daemons.crmd_lrm import LocalExecutor
from hadaemon.daemons.crmd_membership import ALIVE_INTERVAL, Membership  # noqa: F401  (importable from here)
from hadaemon.daemons.crmd_messaging import Messaging
from hadaemon.io.cibstore import CibStore

__all__ = ["CrmNode"]

log = logging.getLogger("ha-crmd")

ELECTION_TIMEOUT = 3.0
JOIN_WAIT = 5.0          # a non-DC member without a join offer this long asks the DC to re-elect
FORWARD_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 240.0
CRMD_DEADTIME_MIN = 20.0


class CrmNode(Membership, Messaging):
    """Backend of org.hadaemon.Crm1 (see hadaemon.bus.crm) and the glue between the parts."""

    def __init__(self, local: str, cfg, store: CibStore, cib: ET.Element, *, lrm_factory=None,
                 election_timeout: float = ELECTION_TIMEOUT, clock: Callable[[], float] | None = None):
        self.local_node = local
        self.cfg = cfg
        self.store = store
        self.cib = cib
        self.instance = uuid.uuid4().hex[:12]
        self.loop = asyncio.get_event_loop()
        self.clock = clock or self.loop.time
        self.listeners: List[Callable] = []
        self.hb = HeartbeatClient(on_membership=self._on_membership, on_message=self._on_message,
                                  on_reconnect=self._on_hb_reconnect, on_disconnect=self._on_hb_disconnect)
        self.election = EL.new_election(local, self.instance, election_timeout)
        configured = tuple(cfg.nodes) if cfg is not None and cfg.nodes else ()
        self.quorum = Q.new_quorum(configured or (local,))
        self.members: tuple = ()
        self.dc = ""
        self.dc_role = None
        self.joined = False
        self.executor = LocalExecutor(self, lrm_factory)
        self._election_timer = None
        self._pending: Dict[str, asyncio.Future] = {}
        self._req = 0
        self._last_status = ""
        self.status_cb: Callable[[str], None] | None = None
        self.transition_info = {"id": 0, "state": "idle"}
        self.attrs: Dict[str, str] = {}
        self.transition_seq = 0
        self._alive: Dict[str, float] = {}
        self._reasm = W.Reassembler()     # compressed / chunked messages (a CIB over 1 MiB)
        self.seen_members: set = set()     # every node seen in the membership since the cluster started
        self._seen_loaded = False
        self.started_at = self.clock()
        self._bulk = None                  # the task sending a chunked message; later sends queue behind it
        deadtime = float(getattr(cfg, "deadtime", 30.0)) if cfg is not None else 30.0
        self.crmd_deadtime = max(CRMD_DEADTIME_MIN, 2 * deadtime)
        self._offer = None
        self._shutdown_ok: asyncio.Event | None = None

    def cib_option(self, name: str) -> str | None:
        """A cluster option (crm_config nvpair) of the current CIB, None when unset."""
        crm = self.cib.find("configuration/crm_config")
        if crm is None:
            return None
        for nv in crm.iter("nvpair"):
            if nv.get("name") == name:
                return nv.get("value")
        return None

    # -- properties of the Crm1 backend --------------------------------------------------------------
    @property
    def has_quorum(self) -> bool:
        return self.quorum.has_quorum

    def cib_xml(self) -> str:
        return cibdoc.to_text(self.cib)

    def status_dict(self) -> dict:
        from hadaemon.core.cib.status_view import status_dict

        return status_dict(self.cib_xml(), local_node=self.local_node, dc=self.dc, quorum=self.has_quorum,
                           members=self.members, now=int(time.time()), transition=self.transition_info)

    def set_transition(self, tid: int, state: str, announce: bool = True) -> None:
        """The DC's transition state ("running" or "idle"), shown by status_dict on every node."""
        info = {"id": int(tid), "state": state}
        if info != self.transition_info:
            self.transition_info = info
            if announce and self.dc == self.local_node:
                self.broadcast("transition", **info)

    def emit(self, kind: str, *args) -> None:
        for f in list(self.listeners):
            try:
                f(kind, *args)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the daemon
                log.exception("listener failed on %s", kind)

    def status_line(self) -> str:
        role = "DC" if self.dc == self.local_node else (f"DC {self.dc}" if self.dc else "no DC")
        return (f"{role}, {len(self.members)} members, {Q.describe(self.quorum)}, "
                f"CIB {cibdoc.version_text(cibdoc.version_of(self.cib))}")

    def _update_status(self) -> None:
        line = self.status_line()
        if line != self._last_status:
            self._last_status = line
            if self.status_cb:
                self.status_cb(line)

    # -- start / stop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self.executor.start()
        liveness = asyncio.ensure_future(self._liveness(stop))
        try:
            await self.hb.run(stop)
        finally:
            liveness.cancel()

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """A clean stop: ask the DC to move or stop this node's resources (the `shutdown` node
        attribute, as Pacemaker), wait until it says we may go, then tell the others we left."""
        if not self.dc or not self.joined:
            log.info("stopping without a DC: resources are left as they are", extra={"EVENT": "shutdown"})
            return
        self._shutdown_ok = asyncio.Event()
        log.info("shutting down: asking the DC (%s) to stop this node's resources", self.dc,
                 extra={"EVENT": "shutdown"})
        self.set_attribute("shutdown", str(int(time.time())))
        try:
            await asyncio.wait_for(self._shutdown_ok.wait(), timeout)
        except asyncio.TimeoutError:
            log.error("the DC did not confirm the shutdown within %g s; leaving anyway", timeout,
                      extra={"EVENT": "shutdown"})
        try:
            await asyncio.wait_for(self.hb.broadcast(W.CHANNEL, W.encode("leaving")), 5)
        except (HeartbeatError, asyncio.TimeoutError):
            pass

    async def close(self) -> None:
        if self.dc_role is not None:
            self.dc_role.close()
            self.dc_role = None
        if self._election_timer is not None:
            self._election_timer.cancel()
        await self.executor.close()
        self.hb.close()

    # -- election -----------------------------------------------------------------------------------
    def _election(self, event) -> None:
        now = self.clock()
        self.election, effects = EL.step(self.election, event, now)
        if not self.election.decided and self.dc:
            self._set_dc("")
        for e in effects:
            if isinstance(e, EL.BroadcastVote):
                self.broadcast("vote", vote=e.vote.to_dict())
            elif isinstance(e, EL.SendVote):
                self.send(e.node, "vote", vote=e.vote.to_dict())
            elif isinstance(e, EL.Elected):
                log.info("DC elected: %s (voters %s, round %d)", e.dc, " ".join(e.voters), e.round,
                         extra={"NODE": e.dc, "EVENT": "dc-elected"})
                self._set_dc(e.dc, e.voters, e.round)
        if self._election_timer is not None:
            self._election_timer.cancel()
            self._election_timer = None
        due = EL.next_deadline(self.election)
        if due is not None:
            self._election_timer = self.loop.call_at(max(due, now) + 0.01, self._election, EL.Tick())
        self._update_status()

    def _set_dc(self, dc: str, voters=(), round_: int = 0) -> None:
        from hadaemon.daemons.crmd_dc import DcRole

        changed = dc != self.dc
        if self.dc_role is not None and (dc != self.local_node or changed or round_):
            self.dc_role.close()
            self.dc_role = None
        self.dc = dc
        if dc != self.local_node or changed:
            self.joined = False
        if changed:
            self.executor.stop_chains()   # the rest of the old DC's chains does not start
            self.emit("dc", dc)
        if dc == self.local_node:
            self.dc_role = DcRole(self, voters, round_)
            self.dc_role.start()
        offer, self._offer = self._offer, None
        if dc and offer is not None and offer[0] == dc:
            self._on_join_offer(*offer)
        if dc and dc != self.local_node:
            # membership changes are not always seen on both sides (a short cut: the DC never declared us
            # dead, so it runs no new join round and we would wait for an offer forever): ask it again
            self.loop.call_later(JOIN_WAIT, self._check_joined, dc)
        self._update_status()

    def _check_joined(self, dc: str) -> None:
        if self.dc == dc and not self.joined and dc != self.local_node:
            log.warning("no join offer from DC %s within %.0f s: asking it to re-run the election", dc, JOIN_WAIT,
                        extra={"NODE": dc, "EVENT": "join-timeout"})
            self.send(dc, "reelect")
            self.loop.call_later(JOIN_WAIT, self._check_joined, dc)

    # -- messages -----------------------------------------------------------------------------------
    def handle(self, src: str, msg: dict) -> None:
        t = msg["t"]
        if t == "vote":
            self._election(EL.VoteReceived(src, EL.Vote.from_dict(msg["vote"])))
        elif t == "join_offer":
            self._on_join_offer(src, msg)
        elif t == "cib":
            self._on_cib(src, msg)
        elif t in ("op", "ops", "chain_stop", "fence", "forget", "cancel_all", "release"):
            self.executor.handle(src, msg)
        elif t == "shutdown_ok":
            if self._shutdown_ok is not None:
                self._shutdown_ok.set()
        elif t == "transition":
            if src == self.dc and src != self.local_node:
                self.transition_info = {"id": int(msg["id"]), "state": str(msg["state"])}
        elif t == "alive":
            if src in self.election.departed:
                self.send(src, "reelect")   # it was elected without: make it vote again
        elif t == "reelect":
            self._election(EL.Restart(f"{src} asked"))
        elif t == "leaving":
            log.info("%s's crmd left the cluster", src, extra={"NODE": src, "EVENT": "node-left"})
            self._election(EL.Departed(src))
        elif t == "modify_reply":
            fut = self._pending.pop(msg["req"], None)
            if fut is not None and not fut.done():
                if msg.get("kind"):
                    fut.set_exception(BadRequest(msg["kind"], msg.get("message", "")))
                else:
                    fut.set_result(msg["version"])
        elif self.dc_role is not None:
            self.dc_role.handle(src, msg)
        elif t in ("modify", "cleanup", "replace"):
            self.send(src, "modify_reply", req=msg["req"], kind="NotReady",
                      message=f"{self.local_node} is not the DC (DC: {self.dc or 'none'})")

    def _on_join_offer(self, src: str, msg: dict) -> None:
        if not self.election.decided:
            self._offer = (src, msg)      # answered once this node's election agrees on src
            return
        if src != self.dc:
            if self.dc == self.local_node:
                # another node acts as DC in our partition: elect again
                log.warning("join offer from %s while this node is the DC: new election", src,
                            extra={"NODE": src, "EVENT": "dc-conflict"})
                self._election(EL.Restart("second DC"))
            else:
                log.debug("join offer from %s ignored: the DC is %s", src, self.dc)
            return
        conf_only = copy.copy(self.cib)
        conf_only[:] = [c for c in self.cib if c.tag == "configuration"]
        self.send(src, "join_report", round=msg["round"],
                  version=list(cibdoc.version_of(self.cib)), cib=cibdoc.to_text(conf_only),
                  lrm=self.executor.history_xml(), attrs=dict(self.attrs))

    def _on_cib(self, src: str, msg: dict) -> None:
        if src != self.dc:
            log.debug("CIB from %s ignored: not the DC (%s)", src, self.dc)
            return
        if src != self.local_node:
            try:
                cib = cibdoc.parse(msg["xml"])
            except ValueError as exc:
                log.error("bad CIB from the DC %s: %s", src, exc, extra={"NODE": src})
                return
            self.install_cib(cib)
        if not self.joined:
            st = self._own_state()
            if st is not None and st.get("join") == "member":
                self.joined = True
                log.info("joined the cluster (DC %s)", src, extra={"NODE": src, "EVENT": "joined"})
        if msg.get("ack"):
            # acknowledged once on disk (the CIB store writes from its own thread)
            version = list(cibdoc.version_of(self.cib))
            saved = self.store.when_saved(self.loop)
            saved.add_done_callback(lambda _f, src=src, ack=msg["ack"], version=version:
                                    self.send(src, "cib_ack", ack=ack, version=version))

    def _own_state(self) -> ET.Element | None:
        status = self.cib.find("status")
        if status is None:
            return None
        for ns in status.findall("node_state"):
            if ns.get("uname") == self.local_node:
                return ns
        return None

    def install_cib(self, cib: ET.Element) -> None:
        """Make cib the local copy and persist it (configuration changes are announced)."""
        old = cibdoc.version_of(self.cib)
        self.cib = cib
        new = cibdoc.version_of(cib)
        self.persist()
        if new[:2] != old[:2]:
            log.info("CIB %s", cibdoc.version_text(new), extra={"EVENT": "cib-changed"})
        if new != old:
            self.emit("cib", cibdoc.version_text(new))
        self._update_status()

    def persist(self) -> None:
        try:
            self.store.save(cibdoc.to_text(self.cib))
        except OSError as exc:
            log.error("cannot persist the CIB in %s: %s", self.store.dir, exc, extra={"EVENT": "cib-persist-failed"})

    # -- attributes ---------------------------------------------------------------------------------
    def set_attribute(self, name: str, value: str | None) -> None:
        """A transient attribute of this node (e.g. pingd), sent to the DC (and again at every join)."""
        if value is None:
            self.attrs.pop(name, None)
        else:
            self.attrs[name] = value
        if self.dc:
            self.send(self.dc, "attr", name=name, value=value)

    # -- Crm1 backend methods -----------------------------------------------------------------------
    def _validate(self, cib: ET.Element) -> None:
        problem = cibdoc.old_schema_problem(cib)
        if problem:
            raise BadRequest("InvalidArgument", problem)
        try:
            parse_cib(cibdoc.to_text(cib), "<new CIB>")
        except ConfigError as exc:
            raise BadRequest("InvalidArgument", f"the new CIB is not valid: {exc}") from None

    async def modify_cib(self, edit: Callable[[ET.Element], None], reason: str = "") -> str:
        new = copy.deepcopy(self.cib)
        edit(new)
        self._validate(new)
        conf = new.find("configuration")
        return await self._forward("modify", conf=ET.tostring(conf, encoding="unicode"), reason=reason,
                                   admin_epoch=new.get("admin_epoch", "0"))

    async def replace_cib(self, xml: str) -> str:
        try:
            new = cibdoc.parse(xml)
        except ValueError as exc:
            raise BadRequest("InvalidArgument", str(exc)) from None
        self._validate(new)
        conf = new.find("configuration")
        return await self._forward("modify", conf=ET.tostring(conf, encoding="unicode"), reason="replace",
                                   admin_epoch=new.get("admin_epoch", self.cib.get("admin_epoch", "0")))

    async def cleanup(self, resource: str, node: str = "") -> None:
        if resource and self.cib is not None and parse_cib(self.cib_xml()).find(resource) is None:
            known = any(r.get("id") == resource for r in self.cib.iter("lrm_resource"))
            if not known:
                raise BadRequest("UnknownResource", f"no resource {resource!r} in the CIB")
        await self._forward("cleanup", rsc=resource, node=node)

    async def _forward(self, kind: str, **fields) -> str:
        if not self.dc:
            raise BadRequest("NotReady", "no DC elected yet; try again in a few seconds")
        self._req += 1
        req = f"{self.local_node}-{self.instance}-{self._req}"
        fut = self.loop.create_future()
        self._pending[req] = fut
        self.send(self.dc, kind, req=req, **fields)
        try:
            return await asyncio.wait_for(fut, FORWARD_TIMEOUT)
        except asyncio.TimeoutError:
            raise BadRequest("NotReady", f"the DC ({self.dc}) did not answer within {FORWARD_TIMEOUT:g} s") from None
        finally:
            self._pending.pop(req, None)

    # -- op results from the local executor ---------------------------------------------------------
    def report_result(self, rec: S.OpRecord) -> None:
        if self.dc:
            self.send(self.dc, "op_result", record=rec.to_dict())
