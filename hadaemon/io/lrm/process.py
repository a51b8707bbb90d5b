"""Running one agent action as a child process: its own process group (or, under systemd, its own
transient scope unit), a timeout that kills the whole group or unit, bounded output capture."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Dict, List, Sequence

from hadaemon.core.lrm.ops import bounded

log = logging.getLogger("hadaemon.lrm")

OUTPUT_LIMIT = 256 * 1024   # per stream; meta-data of the biggest agents is ~40 KiB
KILL_GRACE = 2.0            # seconds between SIGTERM and SIGKILL of a timed-out action


@dataclass
class Finished:
    exit_code: int | None   # None when killed by a signal or not run
    signal: int
    timed_out: bool
    stdout: str
    stderr: str
    exec_ms: int
    spawn_error: OSError | None = None


async def _read_bounded(stream: asyncio.StreamReader | None, buf: bytearray, limit: int) -> bytes:
    """Read a stream to its end into buf (readable at any time), keeping about its last `limit` bytes."""
    if stream is None:
        return b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > 2 * limit:
            del buf[:len(buf) - limit - 1]   # still longer than limit: bounded() marks the cut
    return bytes(buf)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def run_process(argv: Sequence[str], *, env: Dict[str, str], timeout_s: float,
                      stdin: bytes | None = None, cwd: str = "/",
                      scope: str | None = None,
                      kill_scope: Callable[[str, int], Awaitable[None]] | None = None,
                      output_limit: int = OUTPUT_LIMIT) -> Finished:
    """Run argv in a new session (its own process group); on timeout (or when the awaiting task is
    cancelled) SIGTERM the whole group, then SIGKILL it after KILL_GRACE.

    With `scope`, argv is started through `systemd-run --scope --unit=SCOPE` so the action gets a
    transient unit (cgroup) of its own, and `kill_scope(unit, signal)` kills the whole unit, which
    also reaches processes that left the process group.
    """
    full = scoped(argv, scope)
    t0 = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *full, env=env, cwd=cwd, start_new_session=True,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as e:
        return Finished(None, 0, False, "", str(e), 0, spawn_error=e)
    pgid = proc.pid
    bufs = (bytearray(), bytearray())
    readers = asyncio.gather(_read_bounded(proc.stdout, bufs[0], output_limit),
                             _read_bounded(proc.stderr, bufs[1], output_limit))
    if stdin is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        proc.stdin.close()
    timed_out = False
    exited = _ExitWatch(proc)

    async def kill_all() -> None:
        if scope and kill_scope is not None:
            try:
                await kill_scope(scope + ".scope", signal.SIGTERM)
            except Exception as e:  # noqa: BLE001 - fall back to the process group
                log.debug("killing %s through systemd failed: %s", scope, e)
        _killpg(pgid, signal.SIGTERM)
        try:
            await asyncio.wait_for(exited.wait(), KILL_GRACE)
        except asyncio.TimeoutError:
            pass
        if scope and kill_scope is not None:
            try:
                await kill_scope(scope + ".scope", signal.SIGKILL)
            except Exception as e:  # noqa: BLE001
                log.debug("killing %s through systemd failed: %s", scope, e)
        _killpg(pgid, signal.SIGKILL)

    try:
        try:
            # the process's own exit, not the end of its pipes: asyncio's Process.wait() also waits
            # for stdout/stderr to close, which a daemon the action started may keep open forever
            await asyncio.wait_for(exited.wait(), timeout_s)
        except asyncio.TimeoutError:
            timed_out = True
            await kill_all()
            await exited.wait()
        # the action is over: children it left holding the pipes do not hold up the result
        try:
            out, err = await asyncio.wait_for(asyncio.shield(readers), 1.0 if not timed_out else 0.5)
        except asyncio.TimeoutError:
            readers.cancel()
            readers.add_done_callback(_retrieve)
            out, err = bytes(bufs[0]), bytes(bufs[1])
        if readers.done() and not readers.cancelled():
            # pipes closed and the process gone: Process.wait() returns as soon as it is reaped
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
        await exited.reaped()
    except asyncio.CancelledError:
        await asyncio.shield(_cancel_cleanup(kill_all, exited, readers))
        raise
    finally:
        exited.close()
        if not readers.done() or readers.cancelled():
            _close_transport(proc)
    return finished(proc.returncode, timed_out, out, err, int((time.monotonic() - t0) * 1000), output_limit)


def scoped(argv: Sequence[str], scope: str | None) -> List[str]:
    """argv, started through `systemd-run --scope --unit=SCOPE` when scope is given."""
    if not scope:
        return list(argv)
    return ["systemd-run", "--scope", "--quiet", "--collect", f"--unit={scope}",
            "--property=KillMode=control-group", "--"] + list(argv)


def finished(rc: int | None, timed_out: bool, out: bytes, err: bytes, exec_ms: int, limit: int) -> Finished:
    """The Finished of a process that ended with returncode rc (negative: killed by that signal)."""
    if rc is not None and rc < 0:
        return Finished(None, -rc, timed_out, bounded(out, limit), bounded(err, limit), exec_ms)
    return Finished(rc, 0, timed_out, bounded(out, limit), bounded(err, limit), exec_ms)


class _ExitWatch:
    """Waits for a child's exit through a pidfd (Linux >= 5.3), else by polling its returncode."""

    def __init__(self, proc):
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.fd = -1
        self.event = asyncio.Event()
        try:
            self.fd = os.pidfd_open(proc.pid)
            self.loop.add_reader(self.fd, self._ready)
        except (AttributeError, OSError):
            self.fd = -1

    def _ready(self) -> None:
        self.event.set()
        self.loop.remove_reader(self.fd)

    async def wait(self) -> None:
        """Until the process has exited (it may not be reaped yet)."""
        if self.fd >= 0:
            await self.event.wait()
        else:
            await self.reaped()

    async def reaped(self) -> int:
        """Until asyncio's child watcher has reaped it (right after its exit): the returncode."""
        delay = 0.002
        while self.proc.returncode is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return self.proc.returncode

    def close(self) -> None:
        if self.fd >= 0:
            if not self.event.is_set():
                self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


def _close_transport(proc) -> None:
    """Close our ends of the pipes a leftover child still holds (else the transport is collected
    later, possibly after its loop closed)."""
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        try:
            transport.close()
        except Exception:  # noqa: BLE001
            pass


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


async def _cancel_cleanup(kill_all, exited, readers) -> None:
    if exited.proc.returncode is None:
        await kill_all()
        try:
            await asyncio.wait_for(exited.wait(), KILL_GRACE + 5)
        except asyncio.TimeoutError:
            pass
    readers.cancel()
    readers.add_done_callback(_retrieve)
