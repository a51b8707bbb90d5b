"""The local resource manager: runs resource agents for ha-crmd.

Classes ocf, lsb, systemd, service and stonith. Actions on one resource are serialised (a start and
a monitor of the same resource never run at once); recurring operations are rescheduled after each
run and reported through `on_result` only when their result changes. Decisions (environments,
result mapping, recurring bookkeeping) live in hadaemon.core.lrm; this module runs processes.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from typing import Callable, Dict, List, Tuple

from hadaemon.core.errors import BadRequest
from hadaemon.core.lrm import results as R
from hadaemon.core.lrm.metadata import lsb_metadata, systemd_metadata
from hadaemon.core.lrm.queue import ResourceQueues
from hadaemon.core.lrm.ops import (
    BUILTIN_AGENTS, INFO_ACTIONS, OpRequest, OpResult, OpTable, Recurring, ResourceSpec, agent_path, check_spec, exit_reason,
    interpret, lsb_action, ocf_environment, stonith_action, stonith_input, systemd_unit_name,
)
from hadaemon.io.lrm.process import Finished, run_process

__all__ = ["LocalResourceManager", "ResourceSpec", "OpRequest", "OpResult", "systemd_available"]

log = logging.getLogger("hadaemon.lrm")

META_DATA_TIMEOUT_MS = 30000
# ocf-directories' HA_RSCTMP: agents keep state files there (Dummy-RSC.state, IPaddr2's...). Like
# pacemaker-execd (CRM_RSCTMP_DIR), the LRM creates it when it starts: /run is empty after a boot.
DEFAULT_RSC_TMP_DIR = "/run/resource-agents"
# systemd-run's messages when it cannot start the transient scope (the command did not run)
_SCOPE_FAILED = ("Failed to start transient scope unit", "Failed to connect to bus", "Failed to create bus connection")
# The environment agents start from: the daemon's own, minus what must not leak into an agent.
_BASE_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def systemd_available() -> bool:
    """systemd runs this machine (PID 1) and its bus socket exists."""
    return os.path.isdir("/run/systemd/system") and os.path.exists("/run/systemd/private")


def _base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _BASE_ENV_DROP and not k.startswith("OCF_")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def _unit_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)[:80]


class _Cancelled(Exception):
    pass


# Scripts whose parameters, actions and results one of our built-in agents reproduces; with
# in_process_agents the built-in runs instead of the script (still required to be installed).
# ocf:heartbeat:IPaddr2 forks ip, arping, send_arp... (0.5-1.5 s on a loaded node) where the
# in-process agent takes milliseconds: the largest part of a VIP failover.
# ocf:heartbeat:Filesystem: only bind mounts, and only the script's ordinary path (the module's
# handles() and DELEGATE hand everything else to the script).
IN_PROCESS_SUBSTITUTES = {("heartbeat", "IPaddr2"): "hadaemon.agents.ipaddr2",
                          ("heartbeat", "Filesystem"): "hadaemon.agents.filesystem"}
# the script's defaults where the built-in's differ (resource-agents' IPaddr2: run_arping=false;
# hadaemon:IPaddr2 probes for a collision, 0.2 s, by default)
SUBSTITUTE_DEFAULTS = {("heartbeat", "IPaddr2"): {"run_arping": "false"}}


class LocalResourceManager:
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
        self._scope_seq = 0
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
        bad = check_spec(rsc)
        if bad is not None:
            rc, status, msg = bad
            log.warning("%s %s: %s", rsc.id, op.name, msg, extra={"RESOURCE": rsc.id})
            return OpResult(rsc.id, op.name, op.interval_ms, rc, status, output=msg,
                            call_id=self._table.next_call_id(), user_data=op.user_data,
                            started=time.time(), exit_reason=msg)
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

    def recurring(self) -> List[Tuple[str, str, int]]:
        return self._table.keys()

    async def list_agents(self, cls: str | None = None, provider: str | None = None) -> List[str]:
        """The agents of a class (cls None: of every class this node runs, like `crm_resource
        --list-agents` without a standard); BadRequest for an unknown class."""
        if cls is None:
            names: set = set()
            for c in self.classes():
                names.update(await self.list_agents(c))
            return sorted(names)
        if cls == "ocf":
            providers = [provider] if provider else await self.list_providers()
            out: List[str] = []
            for p in providers:
                out.extend(_executables(os.path.join(self.ocf_root, "resource.d", p)))
            return sorted(out) if not provider else out
        if cls == "lsb":
            return _executables(self.lsb_dir)
        if cls == "stonith":
            return [n for n in _executables(self.stonith_dir) if n.startswith("fence_")]
        if cls == "systemd":
            if not self.systemd_class:
                return []
            client = await self._systemd_client()
            return await client.list_services()
        if cls == "service":
            names = set(_executables(self.lsb_dir))
            if self.systemd_class:
                names.update(await self.list_agents("systemd"))
            return sorted(names)
        raise BadRequest("InvalidArgument", f"unknown resource class {cls!r}")

    async def list_providers(self, agent: str | None = None) -> List[str]:
        """The OCF providers (with agent: those that have an agent of that name)."""
        base = os.path.join(self.ocf_root, "resource.d")
        try:
            found = sorted(n for n in os.listdir(base) if not n.startswith(".") and os.path.isdir(os.path.join(base, n)))
        except OSError:
            return []
        if agent is not None:
            found = [p for p in found if agent in _executables(os.path.join(base, p))]
        return found

    def classes(self) -> List[str]:
        """The resource classes this node can run (like `crm_resource --list-standards`)."""
        return ["ocf", "lsb", "service", "stonith"] + (["systemd"] if self.systemd_class else [])

    @property
    def systemd_class(self) -> bool:
        """Whether the systemd class is available (systemd runs here, or a client was given)."""
        return self.use_systemd or self._systemd is not None

    async def meta_data(self, cls: str, provider: str | None, type: str) -> str:
        """The agent's meta-data XML; BadRequest(InvalidArgument) for an unknown class / agent."""
        rsc = ResourceSpec(f"meta-data:{type}", cls, provider, type, {})
        bad = check_spec(rsc)
        if bad is not None:
            raise BadRequest("InvalidArgument", bad[2])
        if cls == "service":
            cls = await self._service_class(type)
            rsc = ResourceSpec(rsc.id, cls, None, type, {})
        if cls == "lsb":
            path = agent_path(rsc, self.ocf_root, self.lsb_dir)
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return lsb_metadata(type, f.read())
            except OSError as e:
                raise BadRequest("InvalidArgument", f"lsb agent {type}: {e.strerror}") from None
        if cls == "systemd":
            if not self.systemd_class:
                raise BadRequest("InvalidArgument", "systemd is not available on this node")
            client = await self._systemd_client()
            unit = systemd_unit_name(type)
            info = await client.unit_info(unit)
            if info is None:
                raise BadRequest("InvalidArgument", f"systemd unit {unit} not found")
            return systemd_metadata(unit, info.get("Description", ""))
        op = OpRequest("meta-data", timeout_ms=META_DATA_TIMEOUT_MS)
        res = await self._run_agent(rsc, op)
        if res.status != "done" or res.rc != R.OCF_SUCCESS:
            raise BadRequest("InvalidArgument",
                             f"{cls}:{provider or ''}:{type} meta-data failed: {R.rc_description(res.rc)} "
                             f"({res.status}) {res.exit_reason}".rstrip())
        return res.output

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

    # ---- running agents ----------------------------------------------------------------------
    async def _service_class(self, agent: str) -> str:
        if os.path.exists(os.path.join(self.lsb_dir, agent)):
            return "lsb"
        if self.systemd_class:
            return "systemd"
        return "lsb"

    async def _run_agent(self, rsc: ResourceSpec, op: OpRequest) -> OpResult:
        started = time.time()
        cls = rsc.cls
        if cls == "service":
            cls = await self._service_class(rsc.type)
            rsc = ResourceSpec(rsc.id, cls, None, rsc.type, rsc.params)
        if cls == "systemd":
            return await self._run_systemd(rsc, op, started)
        if cls == "stonith":
            return await self._run_stonith(rsc, op, started)
        path = agent_path(rsc, self.ocf_root, self.lsb_dir, self.stonith_dir)
        if not os.path.isfile(path):
            rc, status = R.OCF_ERR_INSTALLED, "not_installed"
            msg = f"{cls} agent {path} is not installed"
            return OpResult(rsc.id, op.name, op.interval_ms, rc, status, output=msg, started=started,
                            exit_reason=msg)
        if not os.access(path, os.X_OK):
            msg = f"{cls} agent {path} is not executable"
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_PERM, "error", output=msg, started=started,
                            exit_reason=msg)
        if cls == "ocf":
            env = ocf_environment(rsc, op, self.ocf_root, dict(_base_env(), HA_RSCTMP=self.rsc_tmp_dir))
            builtin = None
            if self.in_process_agents:
                builtin = BUILTIN_AGENTS.get((rsc.provider, rsc.type))
                if builtin is None and (rsc.provider, rsc.type) in IN_PROCESS_SUBSTITUTES:
                    builtin = IN_PROCESS_SUBSTITUTES[(rsc.provider, rsc.type)]
                    # it acts as the script would: stop removes the address whoever added it, and
                    # the script's defaults apply where ours differ
                    env = dict(env, HADAEMON_IPADDR2_STOP_ANY="1")
                    for name, value in SUBSTITUTE_DEFAULTS.get((rsc.provider, rsc.type), {}).items():
                        env.setdefault(f"OCF_RESKEY_{name}", value)
            if builtin:
                res = await self._run_builtin(builtin, rsc, op, env, started)
                if res is not None:
                    return res
            argv = [path, op.name]
        else:
            env = _base_env()
            argv = [path, lsb_action(op.name)]
        fin = await self._spawn(rsc, op, argv, env)
        return self._finish(rsc, cls, op, fin, started)

    async def _spawn(self, rsc: ResourceSpec, op: OpRequest, argv, env, stdin: bytes | None = None) -> Finished:
        scope = None
        kill_scope = None
        if self.use_systemd and op.name not in INFO_ACTIONS and shutil.which("systemd-run"):
            self._scope_seq += 1
            scope = f"hadaemon-lrm-{_unit_safe(rsc.id)}-{_unit_safe(op.name)}-{os.getpid()}-{self._scope_seq}"
            kill_scope = self._kill_unit
        fin = await run_process(argv, env=env, timeout_s=op.timeout_ms / 1000.0, stdin=stdin,
                                scope=scope, kill_scope=kill_scope)
        if scope and _scope_failed(fin):
            # systemd-run could not create the scope, so the agent never ran: run it without one
            log.warning("%s %s: no transient scope (%s); running it in a process group", rsc.id, op.name,
                        fin.stderr.strip()[-200:], extra={"RESOURCE": rsc.id})
            return await run_process(argv, env=env, timeout_s=op.timeout_ms / 1000.0, stdin=stdin)
        if scope:
            _journal_output(rsc.id, op.name, fin)
        return fin

    async def _kill_unit(self, unit: str, sig: int) -> None:
        client = await self._systemd_client()
        await client.kill_unit(unit, sig)

    def _finish(self, rsc: ResourceSpec, cls: str, op: OpRequest, fin: Finished, started: float) -> OpResult:
        if fin.spawn_error is not None:
            import errno
            if fin.spawn_error.errno in (errno.ENOENT, errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR):
                rc, status = R.OCF_ERR_INSTALLED, "not_installed"
            elif fin.spawn_error.errno in (errno.EACCES, errno.EPERM):
                rc, status = R.OCF_ERR_PERM, "error"
            else:
                rc, status = R.OCF_ERR_GENERIC, "error"
            msg = f"cannot run the agent: {fin.spawn_error}"
            return OpResult(rsc.id, op.name, op.interval_ms, rc, status, output=msg, started=started, exit_reason=msg)
        rc, status = interpret(cls, op.name, fin.exit_code, signal=fin.signal, timed_out=fin.timed_out)
        reason = exit_reason(fin.stderr)
        if fin.timed_out and not reason:
            reason = f"{op.name} timed out after {op.timeout_ms} ms"
        output = fin.stdout if op.name == "meta-data" else fin.stdout + fin.stderr
        return OpResult(rsc.id, op.name, op.interval_ms, rc, status, output=output, started=started,
                        exec_ms=fin.exec_ms, exit_reason=reason)

    async def _run_builtin(self, module: str, rsc: ResourceSpec, op: OpRequest, env: Dict[str, str],
                           started: float) -> OpResult | None:
        """One of our own agents run in a thread of this process: the same code as its OCF script,
        with the same parameters (from the same environment), so the same result without the
        interpreter start. A timeout is reported as one, but the thread cannot be killed.
        None when a substitute hands the action to the script (its handles() / DELEGATE)."""
        import importlib
        import io

        from hadaemon.agents.ocf import params_from_env

        agent = importlib.import_module(module)
        params = params_from_env(env)
        handles = getattr(agent, "handles", None)
        if handles is not None and not handles(op.name, params, env):
            return None
        env = dict(env, HADAEMON_IN_PROCESS="1")    # the agent keeps no forked helpers (threads instead)
        out = io.StringIO()
        t0 = time.monotonic()
        fut = asyncio.get_running_loop().run_in_executor(
            None, agent.execute, op.name, params, env, out)
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), op.timeout_ms / 1000.0)
        except asyncio.TimeoutError:
            msg = f"{op.name} timed out after {op.timeout_ms} ms"
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_GENERIC, "timeout", output=out.getvalue(),
                            started=started, exec_ms=int((time.monotonic() - t0) * 1000), exit_reason=msg)
        delegate = getattr(agent, "DELEGATE", None)
        if delegate is not None and result == delegate:
            return None
        rc = R.ocf_to_ocf(result.rc)
        return OpResult(rsc.id, op.name, op.interval_ms, rc, "done", output=out.getvalue(), started=started,
                        exec_ms=int((time.monotonic() - t0) * 1000), exit_reason=result.reason)

    # stonith: fence-agents programs, options on stdin
    async def _run_stonith(self, rsc: ResourceSpec, op: OpRequest, started: float) -> OpResult:
        path = agent_path(rsc, self.ocf_root, self.lsb_dir, self.stonith_dir)
        if not os.path.isfile(path):
            msg = f"fence agent {path} is not installed"
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_INSTALLED, "not_installed", output=msg,
                            started=started, exit_reason=msg)
        if op.name == "stop":
            self._stonith_active.pop(rsc.id, None)
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_SUCCESS, "done", started=started)
        if op.name == "monitor" and op.interval_ms == 0 and not self._stonith_active.get(rsc.id):
            # a probe: a fence device is "running" only where the cluster started it
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_NOT_RUNNING, "done", started=started)
        action = stonith_action(op.name)
        fin = await self._spawn(rsc, op, [path], dict(_base_env()),
                                stdin=stonith_input(rsc, action, op.meta.get("target", "")).encode())
        res = self._finish(rsc, "stonith", OpRequest(action, op.interval_ms, op.timeout_ms), fin, started)
        res = _with(res, op=op.name)
        if op.name == "start" and res.status == "done" and res.rc == R.OCF_SUCCESS:
            self._stonith_active[rsc.id] = True
        if op.name == "monitor" and op.interval_ms > 0 and not self._stonith_active.get(rsc.id):
            res = _with(res, rc=R.OCF_NOT_RUNNING)
        return res

    async def fence(self, rsc: ResourceSpec, action: str, target: str, timeout_ms: int = 60000) -> OpResult:
        """Run a fence device's on / off / reboot (or status) for target node; rc OCF_SUCCESS when it
        worked. Not serialised with the device's monitor (fence-agents handle their own locking)."""
        if action not in ("on", "off", "reboot", "status"):
            raise BadRequest("InvalidArgument", f"unknown fencing action {action!r}")
        op = OpRequest(action, timeout_ms=timeout_ms, meta={"target": target})
        return await self._run_stonith(rsc, op, time.time())

    # systemd units through org.freedesktop.systemd1
    async def _systemd_client(self):
        if self._systemd is None:
            from hadaemon.bus.systemd1 import Systemd1
            self._systemd = await Systemd1.connect()
            self._systemd.owned = True
        return self._systemd

    async def _run_systemd(self, rsc: ResourceSpec, op: OpRequest, started: float) -> OpResult:
        if not self.systemd_class:
            msg = "systemd is not available on this node"
            return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_INSTALLED, "not_installed", output=msg,
                            started=started, exit_reason=msg)
        from hadaemon.io.lrm.systemd import run_systemd_action
        client = await self._systemd_client()
        return await run_systemd_action(client, rsc, op, started, self.systemd_dropin_dir)


def _scope_failed(fin: Finished) -> bool:
    """systemd-run exited 1 with only its own complaint: the agent never ran."""
    lines = fin.stderr.strip().splitlines()
    return (fin.exit_code == 1 and not fin.stdout.strip() and 0 < len(lines) <= 3
            and any(m in fin.stderr for m in _SCOPE_FAILED))


def _with(res: OpResult, **changes) -> OpResult:
    from dataclasses import replace
    return replace(res, **changes)


def _executables(directory: str) -> List[str]:
    """Executable regular files in a directory (names not starting with '.'), sorted."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out = []
    for n in names:
        if n.startswith("."):
            continue
        p = os.path.join(directory, n)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            out.append(n)
    return sorted(out)


def _journal_output(rsc_id: str, action: str, fin: Finished) -> None:
    """Agent output into the journal under the resource's name (SYSLOG_IDENTIFIER=RSC)."""
    text = (fin.stdout + fin.stderr).strip()
    if not text:
        return
    try:
        from systemd import journal  # python3-systemd
    except ImportError:
        for line in text.splitlines()[-50:]:
            log.info("%s %s: %s", rsc_id, action, line, extra={"RESOURCE": rsc_id})
        return
    for line in text.splitlines()[-200:]:
        journal.send(line, SYSLOG_IDENTIFIER=rsc_id, RESOURCE=rsc_id, LRM_ACTION=action)
