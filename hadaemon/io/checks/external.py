"""external checks: run checkcommand VIP VPORT RIP RPORT (exit 0 = up), killed at the timeout."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Tuple


async def check_external(spec) -> Tuple[bool, str]:
    """Like ldirectord's system_timeout: exec (no shell), TERM on timeout, exit status 0 = up."""
    try:
        proc = await asyncio.create_subprocess_exec(
            spec.command, *spec.args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True)
    except OSError as e:
        return False, f"cannot run {spec.command}: {e.strerror}"
    try:
        rc = await proc.wait()
    except asyncio.CancelledError:
        _terminate(proc)
        raise
    return rc == 0, f"{os.path.basename(spec.command)} exited {rc}"


def _terminate(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    # reap in the background so no zombie is left
    asyncio.get_event_loop().create_task(_reap(proc))


async def _reap(proc) -> None:
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()


async def check_external_perl(spec) -> Tuple[bool, str]:
    """external-perl: ldirectord evaluates the file inside its own Perl; we run it with perl."""
    from dataclasses import replace
    return await check_external(replace(spec, command="/usr/bin/perl", args=(spec.command,) + spec.args))
