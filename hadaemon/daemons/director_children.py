"""execute=: other ha-ldirectord instances started, reloaded and stopped with this one (ldirectord's ld_cmd_children)."""
from __future__ import annotations

import asyncio
import logging
import shlex
from typing import Iterable, List, Sequence, Tuple

log = logging.getLogger("ha-ldirectord")


def reload_changes(old: Iterable[str], new: Iterable[str]) -> Tuple[List[str], List[str], List[str]]:
    """(stop, reload_or_start, start) for the execute= lines before and after a reload."""
    old_set, new_set = set(old), set(new)
    return sorted(old_set - new_set), sorted(old_set & new_set), sorted(new_set - old_set)


async def _run(argv: Sequence[str], timeout: float) -> int:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        log.error("execute: %s timed out after %gs", " ".join(argv), timeout)
        return -1
    if proc.returncode:
        log.warning("execute: %s exited with %d: %s", " ".join(argv), proc.returncode,
                    err.decode(errors="replace").strip()[-300:])
    return proc.returncode


async def command_children(prefix: Sequence[str], verb: str, children: Iterable[str],
                           timeout: float = 90.0) -> None:
    """Run `PREFIX CHILD VERB` for each execute= value, one after the other, as ldirectord's system()
    does (the value is split like a shell word list, so `execute="other.cf"` works); `reload_or_start`
    reloads and starts the child when the reload fails (it was not running)."""
    for child in children:
        try:
            words = shlex.split(child)
        except ValueError as e:
            log.error("execute=%s: %s", child, e)
            continue
        if not words:
            continue
        log.info("execute: %s %s", child, verb)
        if verb == "reload_or_start":
            if await _run([*prefix, *words, "reload"], timeout) != 0:
                await _run([*prefix, *words, "start"], timeout)
        else:
            await _run([*prefix, *words, verb], timeout)
