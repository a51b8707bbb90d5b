"""A chain's actions run back to back from one thread (LocalResourceManager.run_sequence), the event
loop handling only their bookkeeping (history, reports to the DC, releases) as each result comes.

Through the loop, every action of a chain cost 3-15 ms more than its agent (the loop's turns for the
spawn, the pipes, the exit, the result, then the next action's way in), shared with whatever else
ha-crmd did meanwhile: a DC's handling of the other node's results, the first monitors, D-Bus. In a
failback that is six actions one after the other while the service is down (docs/crm.md, "Failover
timing"). From a thread the next action starts as soon as the previous one returned its expected
result; the thread needs the interpreter lock only between system calls, and gets it within the short
switch interval set while a sequence runs.

A mixin of crmd_lrm.LocalExecutor (its node, lrm, history, _ops, _chained, _stopped, _record,
_reload_of, _reload_fetched, _send_release)."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import time
from typing import List

from hadaemon.core.crm import status as S
from hadaemon.core.crm.ops import restart_fields
from hadaemon.daemons.crmd_chains import ARMED_WAIT_S

__all__ = ["Sequences", "OpContext", "SEQUENCE_SWITCH_S"]

log = logging.getLogger("ha-crmd")
SEQUENCE_SWITCH_S = 0.0001   # the GIL switch interval while a sequence runs (its thread waits for the lock
                             # at every system call; the loop would keep it 5 ms each time)
RECORD_DELAY_S = 0.05        # the longest a chain's result waits to be recorded while the chain goes on
_FETCHING = "fetching"       # a _reload_info value: the agent's meta-data is being read


@dataclasses.dataclass
class OpContext:
    """One DC operation request, parsed (what _run_op needs before and after the agent runs)."""

    msg: dict
    rsc: object            # hadaemon.io.lrm.ResourceSpec
    op: object             # hadaemon.io.lrm.OpRequest
    name: str
    interval: int
    tkey: str
    transition: str
    target: int
    now: int
    base: dict
    reload_info: object = None


class Sequences:
    """The bookkeeping halves of an operation, and chains run through run_sequence, for LocalExecutor."""

    def _op_context(self, msg: dict) -> OpContext:
        from hadaemon.io.lrm import OpRequest, ResourceSpec

        r, o = msg["rsc"], msg["op"]
        rsc = ResourceSpec(r["id"], r["cls"], r.get("provider"), r["type"], dict(r.get("params", {})))
        name, interval = o["name"], int(o.get("interval_ms", 0))
        tkey = msg["tkey"]
        key = S.parse_transition_key(tkey)
        op = OpRequest(name, interval, int(o.get("timeout_ms", 20000)), int(o.get("start_delay_ms", 0)),
                       dict(o.get("meta", {})), tkey)
        return OpContext(msg, rsc, op, name, interval, tkey, key[1] if key else "", key[2] if key else 0,
                         int(time.time()), dict(rsc_class=rsc.cls, rsc_provider=rsc.provider or "", rsc_type=rsc.type))

    def _op_started(self, ctx: OpContext, logged: bool = False) -> None:
        """The op-start log line and the pending entry of the history (not reported)."""
        if not logged:
            self._log_op_start(ctx)
        ctx.now = int(time.time())   # (a chain's op may start long after the chain arrived)
        if ctx.interval == 0 and ctx.name != "notify":
            self._record(S.OpRecord(ctx.rsc.id, ctx.name, 0, 193, S.EXEC_STATUS["pending"], -1, ctx.tkey, ctx.target,
                                    last_run=ctx.now, digest=ctx.msg.get("digest", ""), **ctx.base), report=False)

    @staticmethod
    def _log_op_start(ctx: OpContext) -> None:
        log.info("%s %s%s", ctx.name, ctx.rsc.id, f" every {ctx.interval} ms" if ctx.interval else "",
                 extra={"RESOURCE": ctx.rsc.id, "TRANSITION": ctx.transition, "EVENT": "op-start"})

    @staticmethod
    def _changes_state(ctx: OpContext) -> bool:
        """The controller's should_cancel_recurring: recurring ops stop before anything changes the
        resource's state (stop, start, promote, demote, migrate_to / migrate_from, reload), so a
        monitor cannot report the source of a migration "not running" before its stop."""
        return ctx.interval == 0 and ctx.name not in ("monitor", "notify", "meta-data", "validate-all")

    async def _stop_recurring_of(self, rsc_id: str) -> None:
        await self.lrm.stop_all_recurring(rsc_id)
        for k in [k for k in self._ops if k[0] == rsc_id]:
            del self._ops[k]

    async def _op_finished(self, ctx: OpContext, res) -> S.OpRecord:
        """The agent's result recorded, logged, reported to the DC; a handoff's followers released."""
        from hadaemon.daemons.crmd_lrm import record_of

        rec = record_of(res, ctx.msg.get("digest", ""), ctx.msg["rsc"], ctx.msg["op"].get("meta"))
        reload_info = ctx.reload_info
        if ctx.interval == 0 and reload_info == _FETCHING and ctx.name in ("start", "reload", "reload-agent",
                                                                           "promote", "migrate_from"):
            reload_info = await self._reload_fetched(ctx.rsc)
        if ctx.interval == 0 and isinstance(reload_info, tuple):
            listed, digest = restart_fields(reload_info[1], ctx.rsc.params)
            rec = dataclasses.replace(rec, restart_list=listed, restart_digest=digest)
        msg = ctx.msg
        if msg.get("release_to") and rec.op_status == S.EXEC_STATUS["done"] and rec.rc == rec.target_rc:
            # the follower waiting for this one starts (handoff), unless the agent told it already
            self._send_release(str(ctx.tkey), [str(p) for p in msg["release_to"]])
        self._release_sent.pop(str(ctx.tkey), None)
        level = logging.INFO if not S.is_failure(rec) else logging.WARNING
        log.log(level, "%s %s: rc=%d (%s)%s", ctx.name, ctx.rsc.id, res.rc, res.status,
                f" {rec.exit_reason}" if rec.exit_reason else "",
                extra={"RESOURCE": ctx.rsc.id, "TRANSITION": ctx.transition, "EVENT": "op-done"})
        self._record(rec)
        return rec

    def _sequence_ok(self, ops: List[dict]) -> bool:
        """Whether these chained ops can run through run_sequence (one-shot OCF / LSB actions)."""
        lrm = self.lrm
        if not hasattr(lrm, "run_sequence") or not ops:
            return False
        for o in ops:
            try:
                ctx = self._op_context(o)
            except (KeyError, TypeError, ValueError):   # malformed: _run_op says so, in its turn
                return False
            if ctx.name == "reload-agent" or not self._changes_state(ctx) or not lrm.runs_blocking(ctx.rsc, ctx.op):
                return False
        return True

    async def _run_sequence(self, ops: List[dict], keys: List[str], ready=None, gate=None,
                            before=None) -> int | None:
        """Run chained ops (all _sequence_ok) from one thread; the index of the first op not run
        (len(ops): all ran), or None when the LRM could not take them (a resource busy: nothing ran).
        ready: {index: threading.Event} an op waits for before it starts (its prepare). gate: a
        follower chain's handoff (event, state, bound): the first op waits for the event; with
        state["went"] (the armed start went: it runs and reports) it starts whatever _stopped says,
        else as _stopped says; not set within the bound: not started. before(): called in the thread
        before the first op starts (a handoff's leader waits there for its followers to arm)."""
        ctxs = [self._op_context(o) for o in ops]
        for ctx in ctxs:
            ctx.reload_info = self._reload_of(ctx.rsc)
        for rsc_id in dict.fromkeys(ctx.rsc.id for ctx in ctxs):
            if self._held.holds(rsc_id):   # its recurring ops held meanwhile come first (as in _run_op)
                await self._release_held_for(rsc_id, "a chain")
            await self._stop_recurring_of(rsc_id)
        loop = asyncio.get_running_loop()
        started = [False] * len(ops)
        ready = ready or {}
        abort = threading.Event()   # the sequence's consumer is gone (cancelled, an error): nothing starts

        def may_start(i: int) -> bool:   # the sequence's thread
            if i == 0 and gate is not None:
                event, state, bound = gate
                if not event.wait(bound) and not state.get("went"):
                    self._stopped.add(keys[0])
                    return False
                if state.get("abort"):
                    return False
                if state.get("went"):
                    self._stopped.discard(keys[0])
            if i == 0 and before is not None and keys[0] not in self._stopped and not abort.is_set():
                before()
            ev = ready.get(i)
            if ev is not None:
                ev.wait(ops_timeout(i))
            if abort.is_set() or keys[i] in self._stopped:
                return False
            self._chained.discard(keys[i])
            started[i] = True
            self._log_op_start(ctxs[i])
            loop.call_soon_threadsafe(self._op_started, ctxs[i], True)
            return True

        def ops_timeout(i: int) -> float:
            return ctxs[i].op.timeout_ms / 1000.0

        def go_on(i: int, res) -> bool:   # the sequence's thread
            return res.status == "done" and res.rc == ctxs[i].target

        ran = 0
        # Recording a result (the history, the report to the DC, on the DC the transition and the CIB)
        # is the loop's work beside the chain's thread, competing with it for the interpreter lock: a
        # chain's results are recorded once it ended (or failed), at most RECORD_DELAY_S after the
        # first, when the service is up. A handoff's leading chain records each at once but its last
        # (the release, which its agent already told the followers, frame and message): its DC (the
        # new node, in a failback) would otherwise handle them during the new node's part of the move.
        lead = any(o.get("release_to") for o in ops)
        pending: list = []
        lock = asyncio.Lock()
        timer: list = [None]

        async def record() -> None:
            async with lock:
                while pending:
                    i, res = pending.pop(0)
                    try:
                        rec = await self._op_finished(ctxs[i], res)
                        ok = rec.op_status == S.EXEC_STATUS["done"] and rec.rc == rec.target_rc
                    except Exception:  # noqa: BLE001 - the rest is not started; the ones started are still recorded
                        log.exception("recording %s %s failed", ctxs[i].name, ctxs[i].rsc.id)
                        ok = False
                    if not ok:
                        self._stopped.update(keys[i + 1:])

        def record_soon() -> None:
            timer[0] = None
            self._spawn(record())

        quick_switch(True)
        results = self.lrm.run_sequence([(c.rsc, c.op) for c in ctxs], go_on, may_start)
        try:
            async for i, res in results:
                ran = i + 1
                pending.append((i, res))
                last = i == len(ops) - 1
                if (lead and not last) or (last and not lead) or not go_on(i, res):
                    if timer[0] is not None:
                        timer[0].cancel()
                        timer[0] = None
                    await record()
                elif timer[0] is None:
                    timer[0] = loop.call_later(RECORD_DELAY_S, record_soon)
        finally:
            abort.set()   # (the thread may wait in may_start: it starts nothing more)
            if gate is not None:
                gate[1]["abort"] = True
                gate[0].set()
            for ev in ready.values():
                ev.set()
            if timer[0] is not None:
                timer[0].cancel()
            await results.aclose()
            quick_switch(False)
            await record()   # whatever came and is not recorded yet
        if ran == 0 and not any(started):
            return None if not self._stopped.intersection(keys[:1]) else 0
        return ran

    def _armed_wait(self, ops):
        """For a handoff's leading chain (its last stop releases followers): what its thread does before
        the chain's first action, waiting (up to ARMED_WAIT_S) for every follower's "armed" frame.
        The client's outage begins with the first stop: waiting there, the service still runs while
        the new node prepares (its chain comes through ha-heartbeat ~10 ms after the DC sent it, then
        it prepares the address's start), instead of waiting with the service down before the last
        stop (the prepared stop still waits for the frames, queued in its own socket meanwhile)."""
        lead = [o for o in ops if o.get("release_to") and o["op"].get("name") == "stop"]
        keys = self._authkeys()
        if not lead or keys is None or not getattr(self.lrm, "in_process_agents", False):
            return None
        from hadaemon.io import handoff
        from hadaemon.io.lrm.prepare import _agent_call

        try:   # only an agent that arms its starts (in-process IPaddr2) has a follower that says "armed"
            call = _agent_call(self.lrm, *self._request(lead[-1]))
        except Exception:  # noqa: BLE001 - no wait then
            call = None
        if call is None or not hasattr(call[0], "armed_start"):
            return None

        tkey, peers = str(lead[-1]["tkey"]), [str(p) for p in lead[-1]["release_to"]]
        try:
            sock = handoff.listen_socket()
        except OSError as exc:
            log.warning("cannot listen for armed frames: %s", exc, extra={"EVENT": "handoff"})
            return None
        groups = [handoff.release_tails(keys, p, tkey, magic=handoff.ARMED) for p in peers]
        return _ArmedWait(sock, groups)


class _ArmedWait:
    """A leading chain's wait for its followers' "armed" frames (Sequences._armed_wait): called once from
    the chain's thread; close() (from the loop, afterwards) releases the socket if it was not."""

    def __init__(self, sock, groups):
        self.sock, self.groups = sock, groups
        self._lock = threading.Lock()
        self._running = False

    def __call__(self) -> None:
        from hadaemon.io import handoff

        with self._lock:
            sock = self.sock
            self._running = sock is not None
        if sock is None:
            return
        t0 = time.monotonic()
        try:
            ok = handoff.wait_frames(sock, self.groups, ARMED_WAIT_S)
        except OSError:
            ok = False
        with self._lock:
            self._running = False
        self.close()
        log.info("the new node's start is %s (waited %.1f ms before the chain)",
                 "armed" if ok else "not armed", (time.monotonic() - t0) * 1000, extra={"EVENT": "handoff"})

    def close(self) -> None:
        """Release the socket, unless the call is using it (it closes it when done, within ARMED_WAIT_S)."""
        with self._lock:
            if self._running:
                return
            sock, self.sock = self.sock, None
        if sock is not None:   # closing waits for an RCU grace period: not on the caller's time
            threading.Thread(target=sock.close, name="handoff-close", daemon=True).start()


GC_HOLD_MAX_S = 1.0   # the longest the automatic garbage collection stays off for sequences and handoffs


class _Quick:
    """quick_switch's state: its users now, and what the first one found (the switch interval, whether
    the collector was on); era counts the spells, so that a bound's timer acts only on its own."""

    lock = threading.Lock()
    users = 0
    interval = 0.005
    gc_was_on = True
    era = 0


def quick_switch(on: bool, interval: float = SEQUENCE_SWITCH_S) -> None:
    """While anyone needs it (counted: a sequence, an armed handoff): a short GIL switch interval, and
    no automatic cyclic garbage collection for at most GC_HOLD_MAX_S (a full one stopped every thread
    of ha-crmd for 25-30 ms before the start-up objects were frozen away, 3 ms after: it runs after the
    last one, when the service is up again, or once the bound passed: a handoff waiting for a slow
    stop, a sequence with a long start). The interval from before the first comes back after the last.
    Called from the event loop (the bound is a timer of its)."""
    import gc

    q = _Quick
    with q.lock:
        if on:
            if q.users == 0:
                q.interval, q.gc_was_on = sys.getswitchinterval(), gc.isenabled()
                q.era += 1
                gc.disable()
                try:
                    asyncio.get_running_loop().call_later(GC_HOLD_MAX_S, _gc_bound, q.era)
                except RuntimeError:   # (no loop: the bound is the last user's end)
                    pass
            sys.setswitchinterval(min(sys.getswitchinterval(), interval))
            q.users += 1
        elif q.users > 0:
            q.users -= 1
            if q.users == 0:
                sys.setswitchinterval(q.interval)
                if q.gc_was_on:
                    gc.enable()


def _gc_bound(era: int) -> None:
    """GC_HOLD_MAX_S passed since the first user of this spell: the collector runs again."""
    import gc

    q = _Quick
    with q.lock:
        if q.era == era and q.users > 0 and q.gc_was_on:
            gc.enable()
