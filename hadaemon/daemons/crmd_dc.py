"""The DC role: join, the master CIB (changes replicated before they are acknowledged), scheduling,
running transitions through each node's LRM, recording results, fencing."""
from __future__ import annotations

import asyncio
import copy
import logging
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Set

from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import join as J
from hadaemon.core.crm import status as S
from hadaemon.core.crm import transition as T
from hadaemon.core.errors import BadRequest
from hadaemon.core.lrm import results as R
from hadaemon.daemons.crmd_changes import CibChanges
from hadaemon.daemons.crmd_fencing import Fencing
from hadaemon.daemons.crmd_transitions import ACTION_MARGIN, CHAIN_ACTIONS, Transitions  # noqa: F401

__all__ = ["DcRole"]

log = logging.getLogger("ha-crmd")

JOIN_TIMEOUT = 5.0
RECHECK_INTERVAL = 60.0


class DcRole(CibChanges, Transitions):
    """Everything this node does while it is the DC of its partition; close() when it stops being one."""

    def __init__(self, node, voters, round_: int):
        self.node = node
        self.loop = node.loop
        self.round = round_
        self.voters = tuple(voters)
        self.join: J.Join | None = None
        self.joined: Set[str] = set()
        self.late: Dict[str, List[S.OpRecord]] = {}
        self.reports: Dict[str, dict] = {}
        self.pending_attrs: Dict[str, Dict[str, str | None]] = {}
        self.run: T.Run | None = None
        self.model = None               # the parsed scheduler input of the running transition
        self.lrm_ids: Dict[int, str] = {}       # action id -> the id the node's LRM knows the resource by
        self.config_ids: Dict[int, str] = {}    # action id -> the configured primitive (st:1 -> st)
        self.extra_meta: Dict[int, Dict[str, str]] = {}  # action id -> clone / notify / migration meta
        self.pending_schedule = False
        self.closed = False
        self._timers: List[asyncio.Handle] = []
        self._join_timer = None
        self._action_timer = None
        self._expiry_timer = None
        self._startup_timer = None
        self._flush_handle = None
        self._acks: Dict[int, tuple] = {}
        self._ack_seq = 0
        self._busy_streak = 0
        self.fencing = Fencing(self)

    @property
    def cib(self) -> ET.Element:
        return self.node.cib

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.loop.time()
        self.join = J.new_join(self.node.local_node, self.round, self.voters, now, JOIN_TIMEOUT)
        log.info("DC: join round %d with %s", self.round, " ".join(self.join.expected),
                 extra={"EVENT": "join-start"})
        for n in self.join.expected:
            self.node.send(n, "join_offer", round=self.round, dc=self.node.local_node, instance=self.node.instance)
        self._join_timer = self.loop.call_later(JOIN_TIMEOUT + 0.05, self._join_step, J.Tick())
        self._timers.append(self.loop.call_later(RECHECK_INTERVAL, self._recheck))

    def close(self) -> None:
        self.closed = True
        for h in self._timers + [self._join_timer, self._action_timer, self._flush_handle, self._expiry_timer,
                                 self._startup_timer]:
            if h is not None:
                h.cancel()
        for _pending, fut in self._acks.values():
            if not fut.done():
                fut.set_exception(BadRequest("NotReady", "the DC changed while the update was replicated; "
                                             "check the CIB and retry"))
        self._acks.clear()
        if self.run is not None and not self.run.completed:
            log.info("transition %d abandoned: no longer DC", self.run.id, extra={"TRANSITION": self.run.id})
            self.node.set_transition(self.run.id, "idle", announce=False)
        self.fencing.close()

    def membership_changed(self, members, lost) -> None:
        for n in lost:
            for pending, fut in self._acks.values():
                pending.discard(n)
                if not pending and not fut.done():
                    fut.set_result(None)

    def _startup_waited(self) -> None:
        self._startup_timer = None
        self.schedule("initdead passed")

    def _recheck(self) -> None:
        if self.closed:
            return
        self.schedule("recheck")
        self._timers.append(self.loop.call_later(RECHECK_INTERVAL, self._recheck))

    # -- join ---------------------------------------------------------------------------------------
    def _join_step(self, event) -> None:
        if self.closed or self.join is None:
            return
        self.join, effects = J.step(self.join, event, self.loop.time())
        for e in effects:
            self._finalize(e)

    def _finalize(self, fin: J.Finalize) -> None:
        if self._join_timer is not None:
            self._join_timer.cancel()
        node = self.node
        cib = copy.deepcopy(node.cib)
        src = None
        if fin.cib_source != node.local_node:
            try:
                src = cibdoc.parse(self.reports[fin.cib_source]["cib"])
            except ValueError as exc:
                log.error("DC: the newest CIB, %s's, is unreadable (%s); keeping this node's", fin.cib_source,
                          exc, extra={"NODE": fin.cib_source, "EVENT": "cib-sync"})
        if src is not None:
            cib.remove(cib.find("configuration"))
            cib.insert(0, src.find("configuration"))
            cibdoc.set_version(cib, fin.version)
            log.info("DC: the newest CIB (%s) is %s's", cibdoc.version_text(fin.version), fin.cib_source,
                     extra={"NODE": fin.cib_source, "EVENT": "cib-sync"})
        configured = list(node.cfg.nodes) if node.cfg is not None and node.cfg.nodes else []
        cibdoc.ensure_nodes(cib, sorted(set(configured) | set(fin.joined) | set(node.members)))
        self.joined = set(fin.joined)
        known = {n.get("uname") or n.get("id") for n in cibdoc.section(cib, "nodes").findall("node")}
        startup_fencing = self._startup_fencing()
        for n in sorted(known):
            if n in self.joined:
                S.set_node_state(cib, n, in_ccm="true", crmd="online", join="member", expected="member")
                rep = self.reports.get(n, {})
                S.replace_lrm(cib, n, _lrm_of(rep))
                attrs = rep.get("attrs") or {}
                for name, value in attrs.items():
                    S.set_attribute(cib, n, name, value)
                if "shutdown" not in attrs:
                    S.set_attribute(cib, n, "shutdown", None)
                for rec in self.late.get(n, []):
                    self._apply_record(cib, n, rec)
                if n in self.reports:
                    for name, value in self.pending_attrs.get(n, {}).items():
                        S.set_attribute(cib, n, name, value)
                node.emit("node", n, "online")
            elif startup_fencing and not self._seen(n):
                # never seen since the cluster started: no node_state, so the scheduler takes it for
                # unclean and fences it before anything starts (startup-fencing, as Pacemaker)
                S.drop_node_state(cib, n)
            else:
                in_ccm = "true" if n in node.members else "false"
                S.set_node_state(cib, n, in_ccm=in_ccm, crmd="offline", join="down")
                S.set_attribute(cib, n, "shutdown", None)
        self.late.clear()
        self.pending_attrs.clear()
        cib.set("dc-uuid", cibdoc.node_id(cib, node.local_node))
        cib.set("have-quorum", "1" if node.has_quorum else "0")
        cibdoc.bump(cib, configuration=False)
        node.install_cib(cib)
        node.joined = True
        log.info("DC: join round %d complete: %s%s", self.round, " ".join(fin.joined),
                 f" (no answer from {' '.join(fin.missing)})" if fin.missing else "",
                 extra={"EVENT": "join-complete"})
        self.broadcast_cib()
        self.schedule("join complete")

    def _startup_fencing(self) -> bool:
        def on(name: str) -> bool:
            return (self.node.cib_option(name) or "true").lower() not in ("false", "no", "0", "off", "n")
        return on("stonith-enabled") and on("startup-fencing")

    def _seen(self, uname: str) -> bool:
        """Has the cluster seen the node since it started: a member now or since this crmd started,
        or recorded in the status section this node got from an earlier DC."""
        if uname in self.node.members or uname in getattr(self.node, "seen_members", ()):
            return True
        status = self.node.cib.find("status")
        return status is not None and any(ns.get("uname") == uname and ns.get("in_ccm") is not None
                                          for ns in status.findall("node_state"))

    def _startup_wait(self) -> float:
        """Seconds left of ha.cf's initdead while a node has not been seen yet and would be fenced for
        it (Pacemaker's dc-deadtime: nodes booting together get the time to appear); else 0."""
        if not self._startup_fencing():
            return 0.0
        status = self.cib.find("status")
        states = {ns.get("uname") for ns in status.findall("node_state")} if status is not None else set()
        unseen = [n.get("uname") or n.get("id") for n in cibdoc.section(self.cib, "nodes").findall("node")
                  if (n.get("uname") or n.get("id")) not in states]
        if not unseen:
            return 0.0
        initdead = float(getattr(self.node.cfg, "initdead", 30.0) or 0.0) if self.node.cfg is not None else 30.0
        left = getattr(self.node, "started_at", 0.0) + initdead - self.node.clock()
        return max(0.0, left)

    def _late_join(self, src: str, msg: dict) -> None:
        """A node that answered after the join was finalized joins on its own (its CIB is not
        considered: the cluster's is newer or was just chosen)."""
        if src not in self.node.members:
            return
        self.reports[src] = msg
        self.joined.add(src)
        cib = self.cib
        S.set_node_state(cib, src, in_ccm="true", crmd="online", join="member", expected="member")
        S.replace_lrm(cib, src, _lrm_of(msg))
        attrs = msg.get("attrs") or {}
        for name, value in attrs.items():
            S.set_attribute(cib, src, name, value)
        if "shutdown" not in attrs:
            S.set_attribute(cib, src, "shutdown", None)
        cibdoc.bump(cib, configuration=False)
        log.info("DC: %s joined late", src, extra={"NODE": src, "EVENT": "join-complete"})
        self.node.emit("node", src, "online")
        self.node.persist()
        self.broadcast_cib()
        self.schedule(f"{src} joined")

    # -- messages -----------------------------------------------------------------------------------
    def handle(self, src: str, msg: dict) -> None:
        t = msg["t"]
        if t == "join_report":
            if msg["round"] != self.round:
                return
            if self.join is not None and self.join.done:
                self._late_join(src, msg)
                return
            self.reports[src] = msg
            self.late[src] = []
            self.pending_attrs.pop(src, None)   # older than the report
            report = J.JoinReport(tuple(msg["version"]), msg.get("lrm", ""))
            self._join_step(J.Report(src, msg["round"], report))
        elif t == "op_result":
            self.on_record(src, S.OpRecord.from_dict(msg["record"]))
        elif t == "chain_skipped":
            self._chain_skipped(src, msg.get("tkeys") or [])
        elif t == "cib_ack":
            entry = self._acks.get(msg["ack"])
            if entry is not None:
                entry[0].discard(src)
                if not entry[0] and not entry[1].done():
                    entry[1].set_result(None)
        elif t == "fence_result":
            self.fencing.result(src, msg)
        elif t == "modify":
            asyncio.ensure_future(self._reply(src, msg, self._modify(msg)))
        elif t == "cleanup":
            asyncio.ensure_future(self._reply(src, msg, self._cleanup(msg.get("rsc", ""), msg.get("node", ""))))
        elif t == "attr":
            self.set_attribute(src, msg["name"], msg.get("value"))

    async def _reply(self, src: str, msg: dict, coro) -> None:
        try:
            version = await coro
        except BadRequest as exc:
            self.node.send(src, "modify_reply", req=msg["req"], kind=exc.kind, message=str(exc))
        else:
            self.node.send(src, "modify_reply", req=msg["req"], version=version)

    # -- results ------------------------------------------------------------------------------------
    def _apply_record(self, cib: ET.Element, node: str, rec: S.OpRecord) -> bool:
        if rec.operation == "delete":
            S.clear_lrm(cib, node, rec.rsc_id)
            return False
        fatal = (self.node.cib_option("start-failure-is-fatal") or "true").lower() not in ("false", "no", "0", "off")
        return S.record_op(cib, node, rec, int(time.time()), start_failure_is_fatal=fatal)

    def on_record(self, node: str, rec: S.OpRecord) -> None:
        if rec.operation == "notify":
            self._notified(node, rec)
            return
        if self.join is None or not self.join.done:
            if node in self.late:
                self.late[node].append(rec)
            return
        failed = self._apply_record(self.cib, node, rec)
        cibdoc.bump(self.cib, configuration=False)
        self._changed()
        self._emit_resource(node, rec, failed)
        key = S.parse_transition_key(rec.transition_key)
        run = self.run
        ours = (key is not None and key[3] == self.node.instance and run is not None and key[1] == run.id
                and not run.completed and run.states.get(key[0]) == T.RUNNING)
        if ours:
            news = ""
            if S.unexpected_probe(rec):   # an answer, not a failure: abort and recompute from it
                news = f"probe of {rec.rsc_id} on {node}: rc={rec.rc} (expected {rec.target_rc})"
                log.info("%s", news, extra={"RESOURCE": rec.rsc_id, "NODE": node})
            self._step(T.ActionDone(key[0], not failed, abort=news))
        elif failed or (rec.interval_ms > 0 and rec.op_status != S.EXEC_STATUS["cancelled"]):
            self.schedule(f"{rec.operation} of {rec.rsc_id} on {node}: rc={rec.rc}")

    def _tkey(self, aid: int) -> str:
        return S.transition_key(aid, self.run.id, self.run.actions[aid].target_rc, self.node.instance)

    def _chain_skipped(self, node: str, tkeys) -> None:
        """The node did not run these actions of a chain (an earlier one failed, or chain_stop)."""
        run = self.run
        ids = []
        for tkey in tkeys:
            key = S.parse_transition_key(str(tkey))
            if (key is not None and key[3] == self.node.instance and run is not None and key[1] == run.id
                    and key[0] in run.actions and run.actions[key[0]].node == node):
                ids.append(key[0])
        if ids:
            log.info("%s did not run %s", node, " ".join(run.actions[i].key for i in ids),
                     extra={"NODE": node, "TRANSITION": run.id, "EVENT": "chain-skipped"})
            self._step(T.ChainCancelled(tuple(ids)))

    def _notified(self, node: str, rec: S.OpRecord) -> None:
        """A clone notification's result: never recorded in the status section (as Pacemaker's
        controller, which does not record notify results) and never failing the transition (a
        notification is information; the agent's answer changes nothing)."""
        if rec.rc != R.OCF_SUCCESS or rec.op_status != S.EXEC_STATUS["done"]:
            log.warning("notify %s on %s: rc=%d op-status=%d (ignored)", rec.rsc_id, node, rec.rc, rec.op_status,
                        extra={"RESOURCE": rec.rsc_id, "NODE": node})
        key = S.parse_transition_key(rec.transition_key)
        run = self.run
        if (key is not None and key[3] == self.node.instance and run is not None and key[1] == run.id
                and not run.completed and run.states.get(key[0]) == T.RUNNING):
            self._step(T.ActionDone(key[0], True))

    def _emit_resource(self, node: str, rec: S.OpRecord, failed: bool) -> None:
        if failed:
            state = "Failed"
        elif rec.operation in ("start", "migrate_from") or (rec.operation == "monitor" and rec.rc == R.OCF_SUCCESS):
            state = "Started"
        elif rec.operation == "promote" or (rec.operation == "monitor" and rec.interval_ms == 0 and rec.rc == R.OCF_RUNNING_PROMOTED):
            state = "Promoted"
        elif rec.operation == "demote":
            state = "Unpromoted"
        elif rec.operation == "stop" or (rec.operation == "monitor" and rec.interval_ms == 0 and rec.rc == R.OCF_NOT_RUNNING):
            state = "Stopped"
        else:
            return
        if rec.operation == "monitor" and rec.interval_ms > 0 and not failed:
            return
        self.node.emit("resource", rec.rsc_id, node, state)

    def fenced(self, target: str) -> None:
        """target was fenced: its resources are known stopped, it is cleanly down."""
        S.set_node_state(self.cib, target, in_ccm="false", crmd="offline", join="down", expected="down")
        S.clear_lrm(self.cib, target)
        cibdoc.bump(self.cib, configuration=False)
        self._changed()
        self.node.emit("node", target, "offline")


def _lrm_of(report: dict):
    """The <lrm_resources> of a join report (None when empty or unreadable: the node gets re-probed)."""
    text = report.get("lrm") or ""
    if not text:
        return None
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        log.error("unreadable operation history in a join report (%s): the node is re-probed", exc,
                  extra={"EVENT": "join-complete"})
        return None
