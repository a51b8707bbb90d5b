"""Runs one action of a resource agent for LocalResourceManager: an OCF or LSB script, a fence agent,
a systemd unit, or one of our agents in-process.

A part of hadaemon.io.lrm.LocalResourceManager (its base class); queueing and recurring ops are there.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from typing import Dict

from hadaemon.core.errors import BadRequest
from hadaemon.core.lrm import results as R
from hadaemon.core.lrm.ops import (
    BUILTIN_AGENTS, INFO_ACTIONS, OpRequest, OpResult, ResourceSpec, agent_path, exit_reason, interpret, lsb_action,
    ocf_environment, stonith_action, stonith_input,
)
from hadaemon.io.lrm.process import Finished, run_process
from hadaemon.io.lrm.process_thread import run_blocking, run_process_threaded

log = logging.getLogger("hadaemon.lrm")

# systemd-run's messages when it cannot start the transient scope (the command did not run)
_SCOPE_FAILED = ("Failed to start transient scope unit", "Failed to connect to bus", "Failed to create bus connection")
# The environment agents start from: the daemon's own, minus what must not leak into an agent.
_BASE_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def _base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _BASE_ENV_DROP and not k.startswith("OCF_")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def _unit_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)[:80]


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


class AgentRunner:
    """The agent-running half of LocalResourceManager (its attributes: ocf_root, lsb_dir, stonith_dir,
    use_systemd, in_process_agents, rsc_tmp_dir, systemd_dropin_dir, _systemd, _stonith_active,
    _scope_seq)."""

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
        plan = self._plan(rsc, op, started)
        if isinstance(plan, OpResult):
            return plan
        builtin, argv, env = plan
        if builtin:
            res = await self._run_builtin(builtin, rsc, op, env, started)
            if res is not None:
                return res
        fin = await self._spawn(rsc, op, argv, env)
        return self._finish(rsc, rsc.cls, op, fin, started)

    def _plan(self, rsc: ResourceSpec, op: OpRequest, started: float):
        """How an OCF or LSB action runs: (in-process module or None, the script's argv, its
        environment), or the OpResult of an agent that cannot run."""
        cls = rsc.cls
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
        builtin = None
        if cls == "ocf":
            env = ocf_environment(rsc, op, self.ocf_root, dict(_base_env(), HA_RSCTMP=self.rsc_tmp_dir))
            if self.in_process_agents:
                builtin = BUILTIN_AGENTS.get((rsc.provider, rsc.type))
                if builtin is None and (rsc.provider, rsc.type) in IN_PROCESS_SUBSTITUTES:
                    builtin = IN_PROCESS_SUBSTITUTES[(rsc.provider, rsc.type)]
                    # it acts as the script would: stop removes the address whoever added it, and
                    # the script's defaults apply where ours differ
                    env = dict(env, HADAEMON_IPADDR2_STOP_ANY="1")
                    for name, value in SUBSTITUTE_DEFAULTS.get((rsc.provider, rsc.type), {}).items():
                        env.setdefault(f"OCF_RESKEY_{name}", value)
            return builtin, [path, op.name], env
        return None, [path, lsb_action(op.name)], _base_env()

    def runs_blocking(self, rsc: ResourceSpec, op: OpRequest) -> bool:
        """Whether run_blocking() can run this op (from a thread): a one-shot action of an OCF or LSB
        agent (a service resource whose LSB script exists), with no start delay."""
        cls = rsc.cls
        if cls == "service":
            cls = "lsb" if os.path.exists(os.path.join(self.lsb_dir, rsc.type)) else ""
        return (cls in ("ocf", "lsb") and op.interval_ms == 0 and op.start_delay_ms <= 0
                and op.name not in INFO_ACTIONS)

    def run_blocking(self, rsc: ResourceSpec, op: OpRequest, loop: asyncio.AbstractEventLoop,
                     cancel=None) -> OpResult:
        """_run_agent for what runs_blocking() accepts, from a thread: a script is spawned and waited
        for right there, an in-process agent runs in a thread of its own (a timeout is reported as one;
        the thread cannot be killed). loop: the LRM's (a systemd scope is killed through it)."""
        started = time.time()
        if rsc.cls == "service":
            rsc = ResourceSpec(rsc.id, "lsb", None, rsc.type, rsc.params)
        plan = self._plan(rsc, op, started)
        if isinstance(plan, OpResult):
            return plan
        builtin, argv, env = plan
        if builtin:
            if cancel is not None and cancel.is_set():
                return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_SUCCESS, "cancelled", started=started)
            res = self._run_builtin_blocking(builtin, rsc, op, env, started)
            if res is not None:
                return res
        scope = self._scope_name(rsc, op)
        kill = None
        if scope:
            def kill(unit: str, sig: int) -> None:
                asyncio.run_coroutine_threadsafe(self._kill_unit(unit, sig), loop).result(5.0)
        timeout_s = op.timeout_ms / 1000.0
        fin = run_blocking(argv, env=env, timeout_s=timeout_s, scope=scope, kill_scope=kill, cancel=cancel)
        if _scope_ran(rsc, op, scope, fin) is False:
            fin = run_blocking(argv, env=env, timeout_s=timeout_s, cancel=cancel)
        return self._finish(rsc, rsc.cls, op, fin, started)

    def _scope_name(self, rsc: ResourceSpec, op: OpRequest) -> str | None:
        """The transient systemd scope an action runs in (None: a process group of its own)."""
        if self.use_systemd and op.name not in INFO_ACTIONS and shutil.which("systemd-run"):
            seq = next(self._scope_seq)   # itertools.count: atomic, also from run_blocking's threads
            return f"hadaemon-lrm-{_unit_safe(rsc.id)}-{_unit_safe(op.name)}-{os.getpid()}-{seq}"
        return None

    async def _spawn(self, rsc: ResourceSpec, op: OpRequest, argv, env, stdin: bytes | None = None) -> Finished:
        scope = self._scope_name(rsc, op)
        kill_scope = self._kill_unit if scope else None
        # without input, spawned and awaited from a thread of its own (process_thread: the event loop is
        # involved once per action, not a dozen times); fence agents, which read stdin, through asyncio
        run = run_process if stdin is not None else run_process_threaded
        kw = {"stdin": stdin} if stdin is not None else {}
        fin = await run(argv, env=env, timeout_s=op.timeout_ms / 1000.0, scope=scope, kill_scope=kill_scope, **kw)
        if _scope_ran(rsc, op, scope, fin) is False:
            return await run(argv, env=env, timeout_s=op.timeout_ms / 1000.0, **kw)
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
        call = _builtin_call(module, op, env)
        if call is None:
            return None
        agent, params, env, out = call
        t0 = time.monotonic()
        fut = asyncio.get_running_loop().run_in_executor(
            None, agent.execute, op.name, params, env, out)
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), op.timeout_ms / 1000.0)
        except asyncio.TimeoutError:
            return _builtin_timeout(rsc, op, out, started, t0)
        return _builtin_result(agent, result, rsc, op, out, started, t0)

    def _run_builtin_blocking(self, module: str, rsc: ResourceSpec, op: OpRequest, env: Dict[str, str],
                              started: float) -> OpResult | None:
        """_run_builtin from a thread (the agent runs in a thread of its own, joined up to the timeout)."""
        import threading

        call = _builtin_call(module, op, env)
        if call is None:
            return None
        agent, params, env, out = call
        t0 = time.monotonic()
        box: list = []

        def body() -> None:
            try:
                box.append((True, agent.execute(op.name, params, env, out)))
            except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
                box.append((False, e))

        worker = threading.Thread(target=body, name=f"agent-{rsc.id}", daemon=True)
        worker.start()
        worker.join(op.timeout_ms / 1000.0)
        if not box:
            return _builtin_timeout(rsc, op, out, started, t0)
        ok, value = box[0]
        if not ok:
            raise value
        return _builtin_result(agent, value, rsc, op, out, started, t0)

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


def _scope_ran(rsc: ResourceSpec, op: OpRequest, scope: str | None, fin: Finished) -> bool | None:
    """After an action run in a transient scope: False when systemd-run could not create the scope, so
    the agent never ran (logged; run it again without one); True when it ran (its output goes to the
    journal under the resource's name); None without a scope."""
    if not scope:
        return None
    if _scope_failed(fin):
        log.warning("%s %s: no transient scope (%s); running it in a process group", rsc.id, op.name,
                    fin.stderr.strip()[-200:], extra={"RESOURCE": rsc.id})
        return False
    _journal_output(rsc.id, op.name, fin)
    return True


def _scope_failed(fin: Finished) -> bool:
    """systemd-run exited 1 with only its own complaint: the agent never ran."""
    lines = fin.stderr.strip().splitlines()
    return (fin.exit_code == 1 and not fin.stdout.strip() and 0 < len(lines) <= 3
            and any(m in fin.stderr for m in _SCOPE_FAILED))


def _with(res: OpResult, **changes) -> OpResult:
    from dataclasses import replace
    return replace(res, **changes)



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


def _builtin_call(module: str, op: OpRequest, env: Dict[str, str]):
    """(agent module, params, env, output buffer) to run one of our agents in-process, or None when it
    hands this action to its script (handles())."""
    import importlib
    import io

    from hadaemon.agents.ocf import params_from_env

    agent = importlib.import_module(module)
    params = params_from_env(env)
    handles = getattr(agent, "handles", None)
    if handles is not None and not handles(op.name, params, env):
        return None
    env = dict(env, HADAEMON_IN_PROCESS="1")    # the agent keeps no forked helpers (threads instead)
    return agent, params, env, io.StringIO()


def _builtin_timeout(rsc: ResourceSpec, op: OpRequest, out, started: float, t0: float) -> OpResult:
    msg = f"{op.name} timed out after {op.timeout_ms} ms"
    return OpResult(rsc.id, op.name, op.interval_ms, R.OCF_ERR_GENERIC, "timeout", output=out.getvalue(),
                    started=started, exec_ms=int((time.monotonic() - t0) * 1000), exit_reason=msg)


def _builtin_result(agent, result, rsc: ResourceSpec, op: OpRequest, out, started: float,
                    t0: float) -> OpResult | None:
    """The OpResult of an in-process agent's result (None: DELEGATE, the script runs the action)."""
    delegate = getattr(agent, "DELEGATE", None)
    if delegate is not None and result == delegate:
        return None
    rc = R.ocf_to_ocf(result.rc)
    return OpResult(rsc.id, op.name, op.interval_ms, rc, "done", output=out.getvalue(), started=started,
                    exec_ms=int((time.monotonic() - t0) * 1000), exit_reason=result.reason)
