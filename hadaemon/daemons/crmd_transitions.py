"""The DC's transitions: scheduling (the policy engine on a copy of the CIB), running the graph through
each node's LRM (one action, or a node's consecutive actions as a chain), timeouts.

A mixin of crmd_dc.DcRole (it uses its node, loop, cib, run, model, join, closed, fencing, the action
maps lrm_ids / config_ids / extra_meta, _apply_record(), _tkey() and _changed())."""
from __future__ import annotations

import copy
import logging
import time

from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.crm import cibdoc
from hadaemon.core.crm import clonemeta
from hadaemon.core.crm import status as S
from hadaemon.core.crm import transition as T
from hadaemon.core.crm.ops import next_failure_expiry, plan_op
from hadaemon.core.errors import ConfigError

__all__ = ["Transitions", "ACTION_MARGIN", "CHAIN_ACTIONS"]

log = logging.getLogger("ha-crmd")

ACTION_MARGIN = 5.0
CHAIN_ACTIONS = True    # send a node its consecutive actions at once (transition.py, "Chains")


class Transitions:
    """Scheduling and running transitions, for DcRole."""

    # -- scheduling ---------------------------------------------------------------------------------
    def schedule(self, reason: str) -> None:
        """Compute a new transition now, or abort the running one (it reschedules when it ends)."""
        if self.closed or self.join is None or not self.join.done:
            return
        if self.run is not None and not self.run.completed:
            self.pending_schedule = True
            self._step(T.Abort(reason))
            return
        self.pending_schedule = False
        wait = self._startup_wait()
        if wait > 0:
            if self._startup_timer is None:
                log.info("not scheduling for %.1f s: waiting for nodes not seen yet (initdead), then fencing "
                         "those still missing (startup-fencing)", wait, extra={"EVENT": "startup-wait"})
                self._startup_timer = self.loop.call_later(wait + 0.05, self._startup_waited)
            return
        self._compute(reason)

    def _compute(self, reason: str) -> None:
        from hadaemon.core.policy import schedule

        node = self.node
        cib = copy.deepcopy(self.cib)
        cibdoc.with_hacf_defaults(cib, getattr(node.cfg, "auto_failback", None))
        cib.set("have-quorum", "1" if node.has_quorum else "0")
        cib.set("dc-uuid", cibdoc.node_id(cib, node.local_node))
        text = cibdoc.to_text(cib)
        try:
            model = parse_cib(text, "<cib>")
            self.sched_now = int(time.time())  # rules with dates: the ops are planned at the same time
            transition = schedule(model, self.sched_now)
        except ConfigError as exc:
            log.error("cannot schedule: %s", exc, extra={"EVENT": "schedule-failed"})
            return
        except Exception:  # noqa: BLE001 - a scheduler bug must not leave the cluster unmanaged for good
            log.exception("the scheduler failed on this input; retrying in 5 s", extra={"EVENT": "schedule-failed"})
            try:
                node.store.archive_input(text)
            except OSError:
                pass
            self._timers.append(self.loop.call_later(5.0, self.schedule, "retry after a scheduler failure"))
            return
        graph = transition.graph
        self._plan_expiry(model)
        try:
            path = node.store.archive_input(text)
        except OSError as exc:
            path = f"(not archived: {exc.strerror})"
        if not graph.actions:
            self._busy_streak = 0
            node.set_transition(node.transition_seq, "idle")
            node._update_status()
            log.debug("nothing to do (input %s)", path, extra={"EVENT": "idle"})
            return
        node.transition_seq += 1
        tid = node.transition_seq
        timeouts = {}
        ws = getattr(transition, "_ws", None)
        self.lrm_ids = {a.id: clonemeta.lrm_id(a.rsc, ws) for a in graph.actions if a.rsc}
        self.config_ids = {a.id: clonemeta.config_id(a.rsc, ws) for a in graph.actions if a.rsc}
        self.extra_meta = clonemeta.action_meta(transition)
        for a in graph.actions:
            if a.kind == "rsc_op" and a.rsc and a.node and not a.pseudo:
                plan = plan_op(model, self.config_ids[a.id], a.task, a.interval_ms, a.node, now=self.sched_now)
                timeouts[a.id] = (plan.timeout_ms / 1000.0) if plan else 20.0
            elif a.kind == "crm_event" and a.task == "stonith":
                timeouts[a.id] = self.fencing.timeout_s(model)
        self.model = model
        self.run = T.from_graph(tid, graph, timeouts, ACTION_MARGIN, clonemeta.target_rcs(transition, model),
                                chain=CHAIN_ACTIONS)
        self._busy_streak += 1
        log.info("transition %d (%s): %d actions, input %s", tid, reason, len(graph.actions), path,
                 extra={"TRANSITION": tid, "EVENT": "transition-start"})
        for line in transition.summary:
            log.info("  %s", line.strip(), extra={"TRANSITION": tid})
        node.set_transition(tid, "running")
        node.emit("transition_start", tid)
        node._update_status()
        self._step(T.Started())

    def _plan_expiry(self, model) -> None:
        """Reschedule when the next failure-timeout expires (besides the periodic recheck)."""
        now = time.time()
        due = next_failure_expiry(model, int(now))
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if due is not None:
            self._expiry_timer = self.loop.call_later(max(0.0, due - now) + 1.0, self.schedule,
                                                      "failure-timeout expired")

    def _step(self, event) -> None:
        if self.run is None or self.closed:
            return
        now = self.loop.time()
        self.run, effects = T.step(self.run, event, now)
        for e in effects:
            if isinstance(e, T.Execute):
                self._execute(e.action)
            elif isinstance(e, T.ExecuteChain):
                self._execute_chain(e)
            elif isinstance(e, T.StopChain):
                self.node.send(e.node, "chain_stop", tkeys=[self._tkey(i) for i in e.action_ids])
            elif isinstance(e, T.TimedOut):
                self._timed_out(e.action)
            elif isinstance(e, T.Completed):
                self._completed(e)
        if self._action_timer is not None:
            self._action_timer.cancel()
            self._action_timer = None
        due = T.next_deadline(self.run)
        if due is not None:
            self._action_timer = self.loop.call_at(due + 0.01, self._step, T.Tick())

    def _completed(self, e: T.Completed) -> None:
        node = self.node
        level = logging.INFO if e.result == "complete" else logging.WARNING
        log.log(level, "transition %d %s%s", e.transition_id, e.result, f": {e.reason}" if e.reason else "",
                extra={"TRANSITION": e.transition_id, "EVENT": "transition-end"})
        # still "running" until the next computation finds nothing to do (then "idle")
        node.emit("transition_end", e.transition_id, e.result)
        delay = 0.0
        if self._busy_streak > 20:
            delay = 5.0
            log.error("20 transitions in a row without reaching a stable state; slowing down",
                      extra={"EVENT": "transition-loop"})
        elif e.result != "complete":
            delay = 0.1
        self._timers.append(self.loop.call_later(delay, self._after_completion))

    def _after_completion(self) -> None:
        if self.closed or (self.run is not None and not self.run.completed):
            return
        self.schedule("transition ended")

    def _execute(self, a: T.ActionSpec) -> None:
        if a.kind == "crm_event" and a.task == "stonith":
            self.fencing.fence(a, self.model)
            return
        if a.kind == "crm_event" and a.task == "do_shutdown":
            # its resources are stopped: it may leave, and is expected down (not fenced when it goes)
            if S.set_node_state(self.cib, a.node, expected="down"):
                cibdoc.bump(self.cib, configuration=False)
                self._changed()
            log.info("%s may shut down", a.node, extra={"NODE": a.node, "EVENT": "shutdown-ok"})
            self.node.send(a.node, "shutdown_ok")
            self.loop.call_soon(self._step, T.ActionDone(a.id, True))
            return
        if a.node not in self.joined:
            log.error("action %s: node %s is not a joined member", a.key, a.node, extra={"NODE": a.node})
            self.loop.call_soon(self._step, T.ActionDone(a.id, False))
            return
        self.node.send(a.node, "op", **self._op_fields(a))

    def _execute_chain(self, e: T.ExecuteChain) -> None:
        """Consecutive actions on one node: it runs them in order and reports each result. A follower
        (e.after) waits until the leading node tells it that action succeeded (handoff)."""
        first = e.steps[0].action
        if e.node not in self.joined:
            log.error("action %s: node %s is not a joined member", first.key, e.node, extra={"NODE": e.node})
            if e.after is None:
                self.loop.call_soon(self._step, T.ActionDone(first.id, False))
                self.loop.call_soon(self._step, T.ChainCancelled(tuple(s.action.id for s in e.steps[1:])))
            else:   # never started: it waits again (and the transition stops: a node is missing)
                self.loop.call_soon(self._step, T.ChainCancelled(tuple(s.action.id for s in e.steps)))
                self.loop.call_soon(self._step, T.Abort(f"{e.node} is not a joined member"))
            return
        fields = {}
        if e.after is not None:
            leader = self.run.actions[e.after]
            # the node gives up waiting (and reports the chain not run) before the DC's deadline
            wait = e.steps[0].deadline - e.steps[0].action.timeout_s - self.loop.time()
            fields = dict(after=self._tkey(e.after), after_node=leader.node or "", after_timeout_s=max(1.0, wait))
        self.node.send(e.node, "ops", ops=[self._op_fields(s.action) for s in e.steps], **fields)

    def _op_fields(self, a: T.ActionSpec) -> dict:
        tkey = S.transition_key(a.id, self.run.id, a.target_rc, self.node.instance)
        rid = self.lrm_ids.get(a.id, a.rsc)
        plan = plan_op(self.model, self.config_ids.get(a.id, a.rsc), a.task, a.interval_ms, a.node,
                       now=getattr(self, "sched_now", None)) if a.rsc else None
        extra = dict(self.extra_meta.get(a.id, {}))
        if a.target_rc:
            extra["op_target_rc"] = str(a.target_rc)
        if plan is not None:
            rsc = {"id": rid, "cls": plan.cls, "provider": plan.provider, "type": plan.type,
                   "params": plan.params}
            op = {"name": a.task, "interval_ms": a.interval_ms, "timeout_ms": plan.timeout_ms,
                  "start_delay_ms": plan.start_delay_ms, "meta": dict(plan.meta, **extra)}
            digest = plan.digest
        else:
            rsc = self._orphan_spec(rid, a.node)
            op = {"name": a.task, "interval_ms": a.interval_ms, "timeout_ms": 20000, "meta": dict(extra)}
            digest = ""
        if a.task == "cancel":
            op["cancel_op"] = "monitor"
        fields = dict(tkey=tkey, rsc=rsc, op=op, digest=digest, target_rc=a.target_rc)
        if a.id in self.run.handoffs:   # a follower waits for this one's success (handoff)
            fields["release_to"] = list(self.run.handoffs[a.id])
        return fields

    def _orphan_spec(self, rsc_id: str, node: str) -> dict:
        for r in S.lrm_resources(self.cib, node).findall("lrm_resource"):
            if r.get("id") == rsc_id:
                return {"id": rsc_id, "cls": r.get("class") or "ocf", "provider": r.get("provider"),
                        "type": r.get("type") or "", "params": {}}
        return {"id": rsc_id, "cls": "ocf", "provider": None, "type": "", "params": {}}

    def _timed_out(self, a: T.ActionSpec) -> None:
        log.error("%s on %s timed out (no result within %g s)", a.key, a.node, a.timeout_s + ACTION_MARGIN,
                  extra={"NODE": a.node or "", "RESOURCE": a.rsc or "", "TRANSITION": self.run.id})
        if a.kind == "rsc_op" and a.rsc and a.node and a.task != "notify":
            tkey = S.transition_key(a.id, self.run.id, a.target_rc, self.node.instance)
            rec = S.OpRecord(self.lrm_ids.get(a.id, a.rsc), a.task, a.interval_ms, 1, S.EXEC_STATUS["timeout"], 0, tkey, a.target_rc,
                             last_run=int(time.time()))
            self._apply_record(self.cib, a.node, rec)
            cibdoc.bump(self.cib, configuration=False)
            self._changed()
