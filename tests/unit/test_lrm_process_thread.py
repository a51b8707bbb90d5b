"""hadaemon.io.lrm.process_thread: an action spawned and awaited from a thread keeps run_process's
contract (exit code, signal, output, timeout killing the whole group, a daemon holding the pipes,
cancellation, a spawn error). Real processes, no mocks."""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import time

import pytest

from hadaemon.io.lrm import process as P
from hadaemon.io.lrm.process_thread import run_blocking, run_process_threaded

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_exit_code_and_output():
    fin = run_blocking(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], env=ENV, timeout_s=10)
    assert (fin.exit_code, fin.signal, fin.timed_out) == (3, 0, False)
    assert fin.stdout == "out\n" and fin.stderr == "err\n" and fin.spawn_error is None


def test_killed_by_a_signal():
    fin = run_blocking(["/bin/sh", "-c", "kill -USR1 $$; sleep 5"], env=ENV, timeout_s=10)
    assert fin.exit_code is None and fin.signal == signal.SIGUSR1 and not fin.timed_out


def test_missing_program_is_a_spawn_error():
    fin = run_blocking(["/nonexistent/agent", "start"], env=ENV, timeout_s=10)
    assert fin.exit_code is None and fin.spawn_error is not None and fin.spawn_error.errno == errno.ENOENT


def test_output_is_bounded():
    fin = run_blocking(["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"], env=ENV, timeout_s=10,
                       output_limit=1000)
    assert fin.exit_code == 0 and len(fin.stdout) < 1100 and fin.stdout.endswith("x")


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child"
    # a child that ignores SIGTERM: the group gets SIGKILL after the grace period
    script = f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; while :; do sleep 1; done' & wait"
    t0 = time.monotonic()
    fin = run_blocking(["/bin/sh", "-c", script], env=ENV, timeout_s=0.5)
    took = time.monotonic() - t0
    assert fin.timed_out and fin.exit_code is None
    assert 0.5 <= took < 0.5 + P.KILL_GRACE + 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_daemon_holding_the_pipes_does_not_hold_up_the_result(tmp_path):
    pidfile = tmp_path / "daemon"
    script = f"(sleep 30 & echo $! > {pidfile}); echo started"
    t0 = time.monotonic()
    fin = run_blocking(["/bin/sh", "-c", script], env=ENV, timeout_s=20)
    try:
        assert fin.exit_code == 0 and not fin.timed_out and fin.stdout == "started\n"
        assert time.monotonic() - t0 < 10       # the pipes' bound (1 s) passed, not the daemon's 30 s
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_threaded_result_and_the_loop_stays_free():
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        fin = await run_process_threaded(["/bin/sh", "-c", "sleep 0.3; echo done"], env=ENV, timeout_s=10)
        t.cancel()
        return fin, ticks

    fin, ticks = asyncio.run(main())
    assert fin.exit_code == 0 and fin.stdout == "done\n"
    assert ticks >= 5       # the loop ran other work while the action ran


def test_cancelling_the_awaiting_task_kills_the_group(tmp_path):
    pidfile = tmp_path / "child"
    script = f"sleep 30 & echo $! > {pidfile}; wait"

    async def main():
        task = asyncio.ensure_future(run_process_threaded(["/bin/sh", "-c", script], env=ENV, timeout_s=60))
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_same_result_as_run_process():
    argv = ["/bin/sh", "-c", "echo a; echo b >&2; exit 7"]

    async def both():
        return (await P.run_process(argv, env=ENV, timeout_s=10),
                await run_process_threaded(argv, env=ENV, timeout_s=10))

    a, b = asyncio.run(both())
    assert (a.exit_code, a.signal, a.timed_out, a.stdout, a.stderr) == \
        (b.exit_code, b.signal, b.timed_out, b.stdout, b.stderr)


def test_a_boosted_thread_spawns_agents_at_the_process_priority():
    """A chain's thread runs at nice -10 (boost_thread); what it spawns starts at the process's own
    priority, and the thread keeps its boost."""
    import threading

    from hadaemon.io.lrm.process_thread import boost_thread

    seen = {}

    def body():
        seen["boosted"] = boost_thread(-5)
        fin = run_blocking(["/bin/sh", "-c", "cut -d' ' -f19 /proc/$$/stat"], env=ENV, timeout_s=10)
        seen["child"] = int(fin.stdout.strip())
        seen["after"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=body)
    t.start()
    t.join(30)
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    if not seen["boosted"] or base <= -5:
        pytest.skip("cannot raise a thread's priority here (needs CAP_SYS_NICE)")
    assert seen["child"] == base and seen["after"] == -5
