"""Running one agent action as a child process from a thread of its own: the same contract as
process.run_process (its own session and process group, or a transient systemd scope; a timeout that
SIGTERMs the whole group, then SIGKILLs it after KILL_GRACE; bounded output; the process's own exit,
not the end of its pipes, ends the action), but the spawn, the wait and the reads happen in a thread
that holds the interpreter lock only between system calls.

Why: through asyncio's subprocess machinery one action costs a dozen turns of the event loop (the
transports, a child-watcher thread, each pipe read, the exit), and each turn waits behind whatever
else the loop has to do (a DC's results, D-Bus, the first monitors): 3-15 ms per action in ha-crmd,
against ~1 ms for the process itself to start. Here the loop is involved once, when the result is
ready (docs/crm.md, "Failover timing").
"""
from __future__ import annotations

import asyncio
import errno
import os
import selectors
import signal
import subprocess
import threading
import time
from typing import Callable, Dict, Sequence

from hadaemon.io.lrm.process import KILL_GRACE, OUTPUT_LIMIT, Finished, _killpg, finished, scoped

__all__ = ["run_blocking", "run_process_threaded", "boost_thread", "SEQUENCE_NICE"]

_CANCEL_POLL_S = 0.05    # how soon a waiting action notices that its caller was cancelled
SEQUENCE_NICE = -10      # a chain's thread (LocalResourceManager.run_sequence), as a handoff's threads


def boost_thread(nice: int = SEQUENCE_NICE) -> bool:
    """Raise the calling thread's priority to nice (Linux: per thread; needs CAP_SYS_NICE, which
    units/ha-crmd.service grants). Agents it spawns still start at the process's own priority
    (run_blocking lowers the thread around the spawn: a child inherits its parent thread's nice)."""
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) > nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return True
    except (OSError, AttributeError):
        return False


def _spawn(argv, **kw) -> subprocess.Popen:
    """Popen from a thread at the process's own priority (the main thread's nice): a thread boosted by
    boost_thread must not hand its priority to the agent and the daemon the agent starts."""
    tid = threading.get_native_id()
    try:
        mine, base = os.getpriority(os.PRIO_PROCESS, tid), os.getpriority(os.PRIO_PROCESS, os.getpid())
    except OSError:
        mine = base = 0
    if mine >= base:
        return subprocess.Popen(argv, **kw)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, base)
    except OSError:
        pass
    try:
        return subprocess.Popen(argv, **kw)
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, mine)
        except OSError:
            pass


class _Child:
    """A spawned action: its exit through a pidfd (Linux >= 5.3), else by polling; its two pipes read
    into bounded buffers."""

    def __init__(self, proc: subprocess.Popen, limit: int):
        self.proc = proc
        self.limit = limit
        self.sel = selectors.DefaultSelector()
        self.bufs = (bytearray(), bytearray())
        self.open = 0
        for i, stream in enumerate((proc.stdout, proc.stderr)):
            if stream is not None:
                self.sel.register(stream.fileno(), selectors.EVENT_READ, i)
                self.open += 1
        self.pidfd = -1
        try:
            self.pidfd = os.pidfd_open(proc.pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            self.pidfd = -1
        self.exited = False

    def pump(self, wait_s: float, until_eof: bool = False) -> None:
        """Read what the pipes have and note the exit, waiting at most wait_s for something."""
        if self.pidfd < 0 and not self.exited:
            wait_s = min(wait_s, 0.002)      # no pidfd: poll the exit
        for key, _ in self.sel.select(max(0.0, wait_s)):
            if key.data == "exit":
                self.exited = True
                self.sel.unregister(key.fd)
                continue
            chunk = os.read(key.fd, 65536)
            if not chunk:
                self.sel.unregister(key.fd)
                self.open -= 1
                continue
            buf = self.bufs[key.data]
            buf += chunk
            if len(buf) > 2 * self.limit:
                del buf[:len(buf) - self.limit - 1]   # still longer than limit: bounded() marks the cut
        if self.pidfd < 0 and not self.exited and self.proc.poll() is not None:
            self.exited = True

    def wait_exit(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        """Until the process exited (True), the deadline passed or cancel was set (False)."""
        while not self.exited:
            if cancel is not None and cancel.is_set():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, _CANCEL_POLL_S) if cancel is not None else left)
        return True

    def drain(self, bound_s: float) -> None:
        """The pipes to their end, for at most bound_s (a daemon the action started may hold them)."""
        deadline = time.monotonic() + bound_s
        while self.open > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.pump(left)

    def close(self) -> None:
        self.sel.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_blocking(argv: Sequence[str], *, env: Dict[str, str], timeout_s: float, cwd: str = "/",
                 scope: str | None = None, kill_scope: Callable[[str, int], None] | None = None,
                 output_limit: int = OUTPUT_LIMIT, cancel: threading.Event | None = None) -> Finished:
    """process.run_process, blocking (call it from a thread). cancel: set by the caller to end the
    action early (the group is killed as on a timeout, but the result is not marked timed out).
    kill_scope(unit, signal) must be callable from this thread."""
    full = scoped(argv, scope)
    t0 = time.monotonic()
    if cancel is not None and cancel.is_set():   # cancelled before it began: nothing is spawned
        return Finished(None, 0, False, "", "cancelled before it started", 0,
                        spawn_error=OSError(errno.ECANCELED, "cancelled before it started"))
    try:
        proc = _spawn(full, env=env, cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
    except (OSError, subprocess.SubprocessError) as e:
        err = e if isinstance(e, OSError) else OSError(str(e))
        return Finished(None, 0, False, "", str(err), 0, spawn_error=err)
    try:
        child = _Child(proc, output_limit)
    except BaseException:   # (no descriptor left for the selector): the action must not outlive this
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        raise
    timed_out = False
    try:
        if not child.wait_exit(t0 + timeout_s, cancel):
            timed_out = not (cancel is not None and cancel.is_set())
            _kill_all(child, scope, kill_scope)
        # the action is over: children it left holding the pipes do not hold up the result
        child.drain(1.0 if not timed_out else 0.5)
        rc = proc.wait()
    finally:
        child.close()
    return finished(rc, timed_out, bytes(child.bufs[0]), bytes(child.bufs[1]),
                    int((time.monotonic() - t0) * 1000), output_limit)


def _kill_all(child: _Child, scope: str | None, kill_scope) -> None:
    """SIGTERM the action's group (and scope); once the process exited or KILL_GRACE passed, SIGKILL
    whatever is left of the group (as run_process: a child that ignores SIGTERM does not survive)."""
    pgid = child.proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if scope and kill_scope is not None:
            try:
                kill_scope(scope + ".scope", sig)
            except Exception:  # noqa: BLE001 - fall back to the process group
                pass
        _killpg(pgid, sig)
        if sig == signal.SIGTERM:
            child.wait_exit(time.monotonic() + KILL_GRACE)
    while not child.exited:
        child.pump(1.0)


async def run_process_threaded(argv: Sequence[str], *, env: Dict[str, str], timeout_s: float, cwd: str = "/",
                               scope: str | None = None, kill_scope=None,
                               output_limit: int = OUTPUT_LIMIT) -> Finished:
    """run_blocking in a daemon thread of its own, awaited. kill_scope: a coroutine function
    (unit, signal), run on this loop. When the awaiting task is cancelled, the action's group is
    killed (SIGTERM, then SIGKILL after KILL_GRACE) before the cancellation goes on."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    cancel = threading.Event()
    sync_kill = None
    if scope and kill_scope is not None:
        def sync_kill(unit: str, sig: int) -> None:
            asyncio.run_coroutine_threadsafe(kill_scope(unit, sig), loop).result(5.0)

    def done(result, error) -> None:
        if not fut.done():
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

    def body() -> None:
        result = error = None
        try:
            result = run_blocking(argv, env=env, timeout_s=timeout_s, cwd=cwd, scope=scope, kill_scope=sync_kill,
                                  output_limit=output_limit, cancel=cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            error = e
        try:
            loop.call_soon_threadsafe(done, result, error)
        except RuntimeError:   # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=body, name="lrm-action", daemon=True).start()
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        cancel.set()
        try:
            await asyncio.wait_for(asyncio.shield(fut), KILL_GRACE + 5)
        except BaseException:  # noqa: BLE001 - the cancellation goes on whatever the action did
            pass
        raise
