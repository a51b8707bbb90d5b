"""The node's side of transitions: runs the DC's operations and fencing requests through the LRM,
keeps this node's own operation history (what it reports at every join) and reports results.
Chains of actions and handoffs are in crmd_chains.Chains (a mixin of LocalExecutor)."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import xml.etree.ElementTree as ET
from typing import Dict, Tuple

from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import status as S
from hadaemon.daemons.crmd_chains import (  # noqa: F401  (importable from here)
    ARMED_WAIT_S, HOLD_MAX_S, QUICK_SWITCH_S, Chains, HeldOps,
)
from hadaemon.daemons.crmd_sequence import _FETCHING, Sequences

__all__ = ["LocalExecutor", "record_of"]

log = logging.getLogger("ha-crmd")
META_WAIT_S = 10.0          # the longest a start's record waits for its agent's meta-data (first time only)


def record_of(res, digest: str, rsc: dict, meta: dict | None = None) -> S.OpRecord:
    """An OpRecord from an LRM OpResult (meta: the op's meta attributes, for a migration's nodes)."""
    key = S.parse_transition_key(res.user_data or "")
    target = key[2] if key else (7 if res.op == "monitor" and res.interval_ms == 0 else 0)
    meta = meta or {}
    migrating = res.op in ("migrate_to", "migrate_from")
    return S.OpRecord(res.rsc_id, res.op, res.interval_ms, res.rc, S.exec_status_code(res.status),
                      res.call_id, res.user_data or "", target, res.exec_ms, res.queue_ms,
                      int(res.started or time.time()), digest, rsc.get("cls", ""), rsc.get("provider") or "",
                      rsc.get("type", ""), (getattr(res, "exit_reason", "") or "")[:200],
                      meta.get("migrate_source", "") if migrating else "",
                      meta.get("migrate_target", "") if migrating else "")


class LocalExecutor(Chains, Sequences):
    """Runs operations for the DC through hadaemon.io.lrm.LocalResourceManager."""

    def __init__(self, node, lrm_factory=None):
        self.node = node
        self.lrm_factory = lrm_factory
        self.lrm = None
        self.history = cibdoc.empty_cib()    # only this node's node_state: its own operation history
        self._ops: Dict[Tuple[str, str, int], Tuple[str, dict]] = {}   # recurring key -> (digest, rsc)
        self._tasks: set = set()
        # (cls, provider, type) -> reload_parameters() of its meta-data (None: cannot reload); missing
        # while not fetched yet, _FETCHING while it is
        self._reload_info: Dict[Tuple[str, str, str], object] = {}
        self._reload_fetch: Dict[Tuple[str, str, str], asyncio.Future] = {}
        self._stopped: set = set()           # transition keys of chained actions not to start
        self._chained: set = set()           # transition keys of chained actions not started yet
        self._gates: Dict[str, Tuple[str, asyncio.Future]] = {}   # leader's tkey -> (its node, a follower's wait)
        self._released: Dict[Tuple[str, str], float] = {}     # (node, tkey) told before the follower arrived
        self._release_sent: Dict[str, float] = {}             # tkeys whose followers were told
        self._triggers: Dict[str, Tuple] = {}   # leader's tkey -> (armed start's trigger, cancel, its key)
        self._keys = None                       # authkeys for release frames (False: unavailable)
        self._listening: Dict[str, object] = {}   # leader's tkey -> socket receiving its release frame
        # leader's tkey -> (event, state) of a follower chain's thread waiting for the handoff (crmd_sequence)
        self._follow_gates: Dict[str, Tuple] = {}
        self._quick: set = set()                  # armed handoffs (a short GIL switch interval meanwhile)
        self._chain_runs = 0                      # chains running on this node
        self._held = HeldOps(HOLD_MAX_S)          # recurring ops held meanwhile: (src, msg)
        self._hold_timer = None

    async def start(self) -> None:
        if self.lrm_factory is not None:
            self.lrm = self.lrm_factory(self._on_result)
        else:
            from hadaemon.io.lrm import LocalResourceManager

            self.lrm = LocalResourceManager(self._on_result)
        if getattr(self.lrm, "in_process_agents", False):
            from hadaemon.io import handoff

            handoff.helper()   # the handoff helper process, ready before the first handoff (root only)

    async def close(self) -> None:
        self._held.release_all()   # dropped: nothing runs any more
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        for t in list(self._tasks):
            t.cancel()
        if self.lrm is not None:
            await self.lrm.close()

    def history_xml(self) -> str:
        lr = S.lrm_resources(self.history, self.node.local_node)
        return ET.tostring(lr, encoding="unicode")

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- requests from the DC -----------------------------------------------------------------------
    def handle(self, src: str, msg: dict) -> None:
        t = msg["t"]
        if t == "op":
            if not self._hold(src, msg):
                self._spawn(self._run_op(src, msg))
        elif t == "ops":
            self._spawn(self._run_chain(src, msg))
        elif t == "chain_stop":
            self._stopped.update(str(k) for k in msg.get("tkeys") or () if k in self._chained)
            self._wake_gates()
        elif t == "release":
            self._release(src, str(msg.get("tkey", "")))
        elif t == "fence":
            self._spawn(self._fence(src, msg))
        elif t == "forget":
            rid = msg.get("rsc") or None
            self._run_held(self._held.release_all() if rid is None else self._held.release_for(rid), "forget")
            S.clear_lrm(self.history, self.node.local_node, msg.get("rsc") or None)

    def _record(self, rec: S.OpRecord, report: bool = True) -> None:
        if rec.operation != "notify":   # notifications are not part of the history (Pacemaker's neither)
            S.record_op(self.history, self.node.local_node, rec, int(time.time()))
        if report:
            self.node.report_result(rec)

    async def _run_op(self, src: str, msg: dict) -> S.OpRecord | None:
        r, o = msg["rsc"], msg["op"]
        if self._held.holds(r["id"]) and not self._recurring(o):
            await self._release_held_for(r["id"], o["name"])   # its recurring ops held meanwhile come first
        ctx = self._op_context(msg)
        rsc, name, interval, tkey, target, now, base = (ctx.rsc, ctx.name, ctx.interval, ctx.tkey, ctx.target,
                                                        ctx.now, ctx.base)
        if name == "cancel":
            self.lrm.cancel(rsc.id, o.get("cancel_op", "monitor"), interval)
            self._ops.pop((rsc.id, o.get("cancel_op", "monitor"), interval), None)
            self._record(S.OpRecord(rsc.id, o.get("cancel_op", "monitor"), interval, 0, S.EXEC_STATUS["cancelled"],
                                    0, tkey, target, last_run=now, **base))
            return
        if name == "delete":
            await self.lrm.stop_all_recurring(rsc.id)
            S.clear_lrm(self.history, self.node.local_node, rsc.id)
            self.node.report_result(S.OpRecord(rsc.id, "delete", 0, 0, 0, 0, tkey, target, last_run=now, **base))
            return
        self._op_started(ctx)
        if self._changes_state(ctx):
            await self._stop_recurring_of(rsc.id)
        ctx.reload_info = self._reload_of(rsc)
        if name == "reload-agent" and isinstance(ctx.reload_info, tuple) and ctx.reload_info[0] == "reload":
            # an agent older than OCF 1.1 reloads with "reload" (do_lrm_rsc_op)
            ctx.name = name = "reload"
            ctx.op = dataclasses.replace(ctx.op, name=name)
        op = ctx.op
        if interval > 0:
            self._ops[(rsc.id, name, interval)] = (msg.get("digest", ""), r)
        try:
            res = await self.lrm.execute(rsc, op)
        except Exception as exc:  # noqa: BLE001 - an LRM refusal becomes a failed operation
            log.error("%s %s: %s", name, rsc.id, exc, extra={"RESOURCE": rsc.id})
            rec = S.OpRecord(rsc.id, name, interval, 1, S.EXEC_STATUS["error"], 0, tkey, target,
                             last_run=now, digest=msg.get("digest", ""), exit_reason=str(exc)[:200], **base)
            self._record(rec)
            return rec
        return await self._op_finished(ctx, res)

    def _reload_of(self, rsc):
        """What the agent's meta-data says about reloads (hadaemon.core.lrm.metadata.reload_parameters),
        for the start entry's op-force-restart / op-restart-digest (the controller's append_restart_list)
        and reload-agent's name. Fetched once per agent in the background, from its first operation on
        (a probe, as a rule): that probe is recorded without them; a start recorded while the fetch is
        still under way waits for it. Without them a parameter change restarts instead of reloading."""
        if rsc.cls != "ocf":
            return None
        agent = (rsc.cls, rsc.provider or "", rsc.type)
        if agent not in self._reload_info:
            self._reload_info[agent] = _FETCHING
            self._reload_fetch[agent] = asyncio.ensure_future(self._fetch_reload_info(agent))
            self._tasks.add(self._reload_fetch[agent])
            self._reload_fetch[agent].add_done_callback(self._tasks.discard)
        return self._reload_info.get(agent)

    async def _reload_fetched(self, rsc):
        """_reload_of once the fetch under way has ended (a start recorded while the agent's meta-data
        is still being read, the first time only, waits for it: at most META_WAIT_S)."""
        task = self._reload_fetch.get((rsc.cls, rsc.provider or "", rsc.type))
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), META_WAIT_S)
            except Exception:  # noqa: BLE001 - timed out or failed: recorded without the restart list
                pass
        return self._reload_of(rsc)

    async def _fetch_reload_info(self, agent) -> None:
        from hadaemon.core.lrm.metadata import reload_parameters

        try:
            xml = await self.lrm.meta_data(agent[0], agent[1] or None, agent[2])
        except Exception as exc:  # noqa: BLE001 - no meta-data: this agent's parameter changes restart it
            log.debug("meta-data of %s: %s", ":".join(agent), exc)
            self._reload_info[agent] = None
            return
        self._reload_info[agent] = reload_parameters(xml)

    def _on_result(self, res) -> None:
        """A recurring operation's changed result (or its cancellation), reported by the LRM."""
        digest, r = self._ops.get((res.rsc_id, res.op, res.interval_ms), ("", {}))
        if res.status == "cancelled":
            self._ops.pop((res.rsc_id, res.op, res.interval_ms), None)
        rec = record_of(res, digest, r)
        if S.is_failure(rec):
            log.warning("%s %s every %d ms: rc=%d (%s)", res.op, res.rsc_id, res.interval_ms, res.rc, res.status,
                        extra={"RESOURCE": res.rsc_id, "EVENT": "op-failed"})
        self._record(rec)

    async def _fence(self, src: str, msg: dict) -> None:
        from hadaemon.io.lrm import ResourceSpec

        d = msg["device"]
        dev = ResourceSpec(d["id"], "stonith", None, d["type"], dict(d.get("params", {})))
        target, action = msg["target"], msg.get("action", "reboot")
        log.warning("fencing %s (%s) with %s", target, action, dev.id,
                    extra={"NODE": target, "RESOURCE": dev.id, "EVENT": "fence-start"})
        try:
            res = await self.lrm.fence(dev, action, target, int(msg.get("timeout_ms", 60000)))
            ok = res.status == "done" and res.rc == 0
            text = f"rc={res.rc} ({res.status}) {getattr(res, 'exit_reason', '') or ''}".strip()
        except Exception as exc:  # noqa: BLE001
            ok, text = False, str(exc)
        log.log(logging.WARNING if ok else logging.ERROR, "fencing %s with %s: %s", target, dev.id,
                "done" if ok else f"failed: {text}", extra={"NODE": target, "EVENT": "fence-done"})
        self.node.send(src, "fence_result", id=msg["id"], ok=ok, text=text, target=target)
