"""The local resource manager: runs resource agents for ha-crmd.

Classes ocf, lsb, systemd, service and stonith. Actions on one resource are serialised (a start and
a monitor of the same resource never run at once); recurring operations are rescheduled after each
run and reported through `on_result` only when their result changes. Decisions (environments,
result mapping, recurring bookkeeping) live in hadaemon.core.lrm; this module runs processes.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from typing import Callable, Dict, List, Tuple

from hadaemon.core.lrm import results as R
from hadaemon.core.lrm.ops import INFO_ACTIONS, OpRequest, OpResult, OpTable, Recurring, ResourceSpec, check_spec
from hadaemon.core.lrm.queue import ResourceQueues
from hadaemon.io.lrm.catalog import META_DATA_TIMEOUT_MS, AgentCatalog  # noqa: F401  (importable from here)
from hadaemon.io.lrm.process_thread import boost_thread
from hadaemon.io.lrm.runner import (  # noqa: F401  (importable from here: io/lrm/prepare.py uses them)
    IN_PROCESS_SUBSTITUTES, SUBSTITUTE_DEFAULTS, AgentRunner, _base_env, _with,
)

__all__ = ["LocalResourceManager", "ResourceSpec", "OpRequest", "OpResult", "systemd_available"]

log = logging.getLogger("hadaemon.lrm")

# ocf-directories' HA_RSCTMP: agents keep state files there (Dummy-RSC.state, IPaddr2's...). Like
# pacemaker-execd (CRM_RSCTMP_DIR), the LRM creates it when it starts: /run is empty after a boot.
DEFAULT_RSC_TMP_DIR = "/run/resource-agents"


def systemd_available() -> bool:
    """systemd runs this machine (PID 1) and its bus socket exists."""
    return os.path.isdir("/run/systemd/system") and os.path.exists("/run/systemd/private")


class _Cancelled(Exception):
    pass


class LocalResourceManager(AgentCatalog, AgentRunner):
    """Runs agents; see the module doc. All methods must be called from one asyncio loop."""

    def __init__(self, on_result: Callable[[OpResult], None], *, ocf_root: str = "/usr/lib/ocf",
                 lsb_dir: str = "/etc/init.d", use_systemd: bool | None = None,
                 stonith_dir: str = "/usr/sbin", systemd_client=None,
                 systemd_dropin_dir: str = "/run/systemd/system", in_process_agents: bool = False,
                 rsc_tmp_dir: str | None = None):
        self.on_result = on_result
        self.ocf_root = ocf_root
        self.lsb_dir = lsb_dir
        self.stonith_dir = stonith_dir
        self.use_systemd = systemd_available() if use_systemd is None else use_systemd
        self._systemd = systemd_client          # hadaemon.bus.systemd1.Systemd1 (connected lazily)
        self.systemd_dropin_dir = systemd_dropin_dir
        self.in_process_agents = in_process_agents   # run BUILTIN_AGENTS in a thread, not as a process
        self._table = OpTable()
        self._queues = ResourceQueues()
        self._turns: Dict[int, asyncio.Future] = {}   # op id -> its turn (waiting in its resource's queue)
        self._op_seq = 0
        self._tasks: Dict[Tuple[str, str, int], asyncio.Task] = {}
        self._waiting: Dict[int, asyncio.Future] = {}
        self._stonith_active: Dict[str, bool] = {}
        self._closed = False
        self._scope_seq = itertools.count(1)
        self.rsc_tmp_dir = rsc_tmp_dir or os.environ.get("HA_RSCTMP") or DEFAULT_RSC_TMP_DIR
        try:
            if not os.path.isdir(self.rsc_tmp_dir):
                os.makedirs(self.rsc_tmp_dir, mode=0o755, exist_ok=True)
                os.chmod(self.rsc_tmp_dir, 0o755)          # whatever the daemon's umask
        except OSError as exc:
            log.warning("cannot create the resource agents' temporary directory %s: %s", self.rsc_tmp_dir,
                        exc.strerror, extra={"EVENT": "rsctmp-failed"})

    # ---- public API --------------------------------------------------------------------------
    async def execute(self, rsc: ResourceSpec, op: OpRequest) -> OpResult:
        """Run a one-shot op and return its result; for interval > 0 schedule the recurring op and
        return the result of its first run (later results go to on_result when they change)."""
        bad = _bad_spec(rsc, op)
        if bad is not None:
            return _with(bad, call_id=self._table.next_call_id(), user_data=op.user_data)
        if op.interval_ms > 0:
            return await self._schedule_recurring(rsc, op)
        return await self._one_shot(rsc, op)

    def cancel(self, rsc_id: str, op: str, interval_ms: int) -> bool:
        """Cancel a recurring op (reported through on_result as cancelled) or a one-off op still
        waiting for its start delay / its turn (its execute() returns cancelled). False when there is
        no such op."""
        key = (rsc_id, op, interval_ms)
        entry = self._table.cancel(key)
        found = False
        if entry is not None:
            found = True
            self._stop_task(key)
            self._report(OpTable.cancelled_result(entry, time.time()))
        for token in self._table.cancel_waiting(key):   # waiting for a start delay
            fut = self._waiting.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_exception(_Cancelled())
                found = True
        for op_id in self._queues.waiting(key):         # waiting for the resource's turn
            turn = self._turns.pop(op_id, None)
            if turn is not None and not turn.done():
                turn.set_exception(_Cancelled())
                found = True
        return found

    async def stop_all_recurring(self, rsc_id: str) -> None:
        """Cancel every recurring op of the resource and wait until none of them runs any more."""
        await self._cancel_recurring(self._table.of_resource(rsc_id))

    async def run_sequence(self, steps: List[Tuple[ResourceSpec, OpRequest]], go_on: Callable[[int, OpResult], bool],
                           may_start: Callable[[int], bool] = lambda i: True):
        """Run one-shot ops back to back from one thread, the event loop not involved between them (a
        node's chain of a transition: each action starts once the previous one returned; docs/crm.md,
        "Failover timing"). An async generator of (index, OpResult), in order, each as soon as its op
        ended (the thread has gone on meanwhile); it yields nothing when a step's resource is busy (an
        op running or queued on it: nothing was run, the caller runs them the usual way).

        Every step must be one runs_blocking() accepts; the caller has stopped the resources'
        recurring ops. Each resource's turn (its queue) is taken for the whole sequence, so no other op
        of it runs in between; a resource's turn is given back after its last step. In the thread:
        may_start(i) before step i, go_on(i, result) after it (both cheap and thread-safe); False ends
        the sequence (the rest is not run). Closing the generator early (or cancelling its consumer)
        kills the running step's process group and runs no further step."""
        loop = asyncio.get_running_loop()
        turns: Dict[str, int] = {}
        for rsc, op in steps:
            if rsc.id in turns:
                continue
            self._op_seq += 1
            if not self._queues.submit(self._op_seq, (rsc.id, op.name, op.interval_ms)):
                self._grant(self._queues.withdraw(self._op_seq))
                for op_id in turns.values():
                    self._grant(self._queues.finish(op_id))
                return
            turns[rsc.id] = self._op_seq
        last = {rsc.id: i for i, (rsc, _op) in enumerate(steps)}
        call_ids = [self._table.next_call_id() for _ in steps]
        results: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def give_back(rsc_id: str) -> None:   # the loop
            op_id = turns.pop(rsc_id, None)
            if op_id is not None:
                self._grant(self._queues.finish(op_id))

        def ended(i: int, res: OpResult | None) -> None:   # the loop
            if res is None:                   # the thread ended: what it did not run gives its turns back
                for rsc_id in list(turns):
                    give_back(rsc_id)
            elif last[steps[i][0].id] == i:
                give_back(steps[i][0].id)
            results.put_nowait((i, res))

        def post(i: int, res: OpResult | None) -> None:
            try:
                loop.call_soon_threadsafe(ended, i, res)
            except RuntimeError:   # the loop is closed
                pass

        def body() -> None:
            boost_thread()   # runnable only between system calls: it must not wait for a CPU then
            try:
                for i, (rsc, op) in enumerate(steps):
                    if cancel.is_set() or self._closed or not may_start(i):
                        break
                    # started (may_start said so): from here on the step always gets a result
                    t0 = time.monotonic()
                    try:
                        if cancel.is_set() or self._closed:   # (while may_start waited): nothing is run
                            res = OpResult(rsc.id, op.name, op.interval_ms, R.OCF_SUCCESS, "cancelled",
                                           started=time.time())
                        else:
                            res = _bad_spec(rsc, op) or self.run_blocking(rsc, op, loop, cancel)
                        res = _with(res, call_id=call_ids[i], user_data=op.user_data,
                                    queue_ms=max(0, int((time.monotonic() - t0) * 1000) - res.exec_ms))
                        self._log_result(res)
                    except Exception as e:  # noqa: BLE001 - an executor bug must not take the CRM down
                        log.exception("%s %s failed in the executor", rsc.id, op.name, extra={"RESOURCE": rsc.id})
                        msg = f"executor error: {e}"
                        res = OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_GENERIC, "error", output=msg,
                                       call_id=call_ids[i], user_data=op.user_data, started=time.time(),
                                       exit_reason=msg)
                    post(i, res)
                    if cancel.is_set() or res.status == "cancelled" or not go_on(i, res):
                        break
            finally:
                post(-1, None)

        threading.Thread(target=body, name="lrm-sequence", daemon=True).start()
        try:
            while True:
                i, res = await results.get()
                if res is None:
                    return
                yield i, res
        finally:
            cancel.set()

    def recurring(self) -> List[Tuple[str, str, int]]:
        return self._table.keys()

    async def close(self) -> None:
        """Stop every recurring op (without reporting) and kill running actions."""
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for fut in list(self._waiting.values()) + list(self._turns.values()):
            if not fut.done():
                fut.set_exception(_Cancelled())
        self._waiting.clear()
        if self._systemd is not None and getattr(self._systemd, "owned", False):
            await self._systemd.close()

    # ---- one-shot ops ------------------------------------------------------------------------
    async def _one_shot(self, rsc: ResourceSpec, op: OpRequest) -> OpResult:
        key = (rsc.id, op.name, op.interval_ms)
        call_id = self._table.next_call_id()
        queued = time.monotonic()
        try:
            if op.start_delay_ms > 0:
                await self._wait_cancellable(key, op.start_delay_ms / 1000.0)
            if op.name in INFO_ACTIONS:
                res = await self._run_agent(rsc, op)
            else:
                # stop implies cancel: no recurring op of the resource survives its stop
                cancels = self._table.implied_cancels(rsc.id, op.name)
                if cancels:
                    await self._cancel_recurring(cancels)
                res = await self._locked_run(rsc, op, key)
        except _Cancelled:
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_SUCCESS, "cancelled", call_id=call_id,
                            user_data=op.user_data, started=time.time(),
                            queue_ms=int((time.monotonic() - queued) * 1000))
        res = _with(res, call_id=call_id, user_data=op.user_data,
                    queue_ms=max(0, int((time.monotonic() - queued) * 1000) - res.exec_ms))
        self._log_result(res)
        return res

    async def _wait_cancellable(self, key, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        token = id(fut)
        self._waiting[token] = fut
        self._table.wait(key, token)
        handle = loop.call_later(delay_s, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            handle.cancel()
            self._waiting.pop(token, None)
            self._table.done_waiting(key, token)

    async def _locked_run(self, rsc: ResourceSpec, op: OpRequest, key) -> OpResult:
        """Run the op in its resource's turn (core/lrm/queue.ResourceQueues decides whose turn it is)."""
        self._op_seq += 1
        op_id = self._op_seq
        if not self._queues.submit(op_id, key):
            turn = asyncio.get_running_loop().create_future()   # cancel() may fail it with _Cancelled
            self._turns[op_id] = turn
            try:
                await turn
            except BaseException:
                self._turns.pop(op_id, None)
                self._grant(self._queues.withdraw(op_id))
                raise
        try:
            return await self._run_agent(rsc, op)
        except (asyncio.CancelledError, _Cancelled):
            raise
        except Exception as e:  # noqa: BLE001 - an executor bug must not take the CRM down with it
            log.exception("%s %s failed in the executor", rsc.id, op.name, extra={"RESOURCE": rsc.id})
            msg = f"executor error: {e}"
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_GENERIC, "error", output=msg,
                            started=time.time(), exit_reason=msg)
        finally:
            self._grant(self._queues.finish(op_id))

    def _grant(self, op_id: int | None) -> None:
        """Wake the op whose turn it is now."""
        if op_id is None:
            return
        turn = self._turns.pop(op_id, None)
        if turn is not None and not turn.done():
            turn.set_result(None)

    # ---- recurring ops -----------------------------------------------------------------------
    async def _schedule_recurring(self, rsc: ResourceSpec, op: OpRequest) -> OpResult:
        entry, duplicate = self._table.schedule(rsc, op)
        key = entry.key
        first: asyncio.Future = asyncio.get_running_loop().create_future()
        if duplicate and key in self._tasks and not self._tasks[key].done():
            # the same monitor again (a duplicate): one op, new parameters; answer with a fresh run
            res = await self._locked_run(rsc, op, key)
            res = _with(res, call_id=entry.call_id, user_data=op.user_data)
            self._table.record(key, res)
            return res
        task = asyncio.ensure_future(self._recurring_loop(entry, first))
        self._tasks[key] = task
        task.add_done_callback(lambda t, k=key: self._tasks.get(k) is t and self._tasks.pop(k, None))
        # a task cancelled before its first step never runs its finally: its first result is then this
        task.add_done_callback(lambda t: first.done() or first.set_result(OpTable.cancelled_result(entry, time.time())))
        try:
            return await asyncio.shield(first)
        except asyncio.CancelledError:
            if first.done() and not first.cancelled():
                return first.result()
            raise

    async def _recurring_loop(self, entry: Recurring, first: asyncio.Future) -> None:
        key = entry.key
        try:
            if entry.op.start_delay_ms > 0:
                await asyncio.sleep(entry.op.start_delay_ms / 1000.0)
            while not self._closed:
                queued = time.monotonic()
                res = await self._locked_run(entry.rsc, entry.op, key)
                if entry.cancelled:
                    break
                res = _with(res, call_id=entry.call_id, user_data=entry.op.user_data,
                            queue_ms=max(0, int((time.monotonic() - queued) * 1000) - res.exec_ms))
                changed = self._table.record(key, res)
                if not first.done():
                    first.set_result(res)
                    self._log_result(res)
                elif changed:
                    self._log_result(res)
                    self._report(res)
                await asyncio.sleep(entry.op.interval_ms / 1000.0)
        except _Cancelled:
            pass
        finally:
            if not first.done():
                first.set_result(OpTable.cancelled_result(entry, time.time()))

    def _stop_task(self, key) -> asyncio.Task | None:
        task = self._tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()
        return task

    async def _cancel_recurring(self, keys) -> None:
        tasks = []
        for key in keys:
            entry = self._table.cancel(key)
            task = self._stop_task(key)
            if task is not None:
                tasks.append(task)
            if entry is not None:
                self._report(OpTable.cancelled_result(entry, time.time()))
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    def _report(self, res: OpResult) -> None:
        try:
            self.on_result(res)
        except Exception:  # noqa: BLE001 - a broken callback must not stop the executor
            log.exception("LRM result callback failed for %s", res.describe())

    def _log_result(self, res: OpResult) -> None:
        normal = (R.OCF_SUCCESS, R.OCF_NOT_RUNNING, R.OCF_RUNNING_PROMOTED)   # a promoted instance's 8 too
        level = logging.INFO if res.status == "done" and res.rc in normal else logging.WARNING
        if res.op == "monitor" and res.status == "done" and res.rc in normal:
            level = logging.DEBUG
        log.log(level, "%s_%s_%d: %s (%d ms)%s", res.rsc_id, res.op, res.interval_ms, res.describe(), res.exec_ms,
                f": {res.exit_reason}" if res.exit_reason else "", extra={"RESOURCE": res.rsc_id})


def _bad_spec(rsc: ResourceSpec, op: OpRequest) -> OpResult | None:
    """The result of an op whose resource definition is unusable (core.lrm.ops.check_spec), or None."""
    bad = check_spec(rsc)
    if bad is None:
        return None
    rc, status, msg = bad
    log.warning("%s %s: %s", rsc.id, op.name, msg, extra={"RESOURCE": rsc.id})
    return OpResult(rsc.id, op.name, op.interval_ms, rc, status, output=msg, started=time.time(), exit_reason=msg)
