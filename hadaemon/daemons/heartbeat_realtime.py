"""ha.cf `realtime` / `rtprio`: run ha-heartbeat as a soft real-time process, as Heartbeat did.

Heartbeat (cluster-glue's cl_make_realtime) put itself in SCHED_RR at `rtprio` (default: the lowest
real-time priority, 1) and locked itself in memory, so that heartbeats go out and are read on time
whatever else the machine runs: a CFS task, even at nice -10, waits behind every runnable task of its
weight, and on a loaded host that is longer than a sub-second deadtime.

`apply(realtime, rtprio)` does the same for the calling process before any thread exists (the policy is
per thread; threads created later inherit it, the heartbeat sender's among them: so no
SCHED_RESET_ON_FORK, which the kernel applies to new threads too; the daemon runs no child process),
SCHED_RR, then mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) when the process may lock without
a limit (CAP_IPC_LOCK, or RLIMIT_MEMLOCK unlimited): pages are locked as they are touched, never paged
out, and nothing is pre-faulted. With a finite limit it does not lock (MCL_FUTURE would make later
allocations fail once the limit is reached). Anything refused is reported, never fatal: the daemon then
runs at normal priority. `realtime off` returns a process started real-time (e.g. by `chrt`) to
SCHED_OTHER.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from typing import List, Tuple

__all__ = ["apply", "current", "sender_priority", "DEFAULT_RTPRIO"]

DEFAULT_RTPRIO = 1   # Heartbeat's: sched_get_priority_min(SCHED_RR) when rtprio is not set
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
CAP_IPC_LOCK = 14
RT_POLICIES = (os.SCHED_RR, os.SCHED_FIFO)
_NAMES = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_RR: "SCHED_RR", os.SCHED_FIFO: "SCHED_FIFO",
          getattr(os, "SCHED_BATCH", 3): "SCHED_BATCH", getattr(os, "SCHED_IDLE", 5): "SCHED_IDLE"}


def current() -> Tuple[str, int]:
    """(policy name, priority) of the calling thread, e.g. ("SCHED_RR", 1)."""
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    return _NAMES.get(policy, str(policy)), os.sched_getparam(0).sched_priority


def _may_lock_unlimited() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    if int(line.split()[1], 16) >> CAP_IPC_LOCK & 1:
                        return True
                    break
    except OSError:
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return soft == resource.RLIM_INFINITY


def _mlockall() -> str | None:
    """Lock the process in memory; None when done, else why not."""
    if not _may_lock_unlimited():
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return (f"not locked in memory: RLIMIT_MEMLOCK is {soft // 1024} KiB and no CAP_IPC_LOCK "
                "(LimitMEMLOCK=infinity or CAP_IPC_LOCK allows it)")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    for flags in (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT, MCL_CURRENT):   # MCL_ONFAULT: Linux 4.4 and later
        if libc.mlockall(flags) == 0:
            return None
        err = ctypes.get_errno()
        if err != 22:   # EINVAL: MCL_ONFAULT unknown to this kernel; try MCL_CURRENT alone
            break
    return f"not locked in memory: mlockall: {os.strerror(err)}"


def apply(realtime: bool, rtprio: int | None) -> Tuple[List[str], List[str]]:
    """Set the calling process's scheduling per ha.cf; (what was done, what was refused) as log lines.

    realtime on: SCHED_RR at `rtprio`, or at the real-time priority it already has (a unit or `chrt`
    chose it) when rtprio is unset, else DEFAULT_RTPRIO; then lock memory when allowed.
    realtime off: SCHED_OTHER if the process is real-time now (rtprio is then ignored)."""
    done: List[str] = []
    refused: List[str] = []
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    prio = os.sched_getparam(0).sched_priority
    if realtime:
        want = rtprio if rtprio is not None else (prio if policy in RT_POLICIES else DEFAULT_RTPRIO)
        want = max(os.sched_get_priority_min(os.SCHED_RR), min(want, os.sched_get_priority_max(os.SCHED_RR)))
        if (policy, prio) != (os.SCHED_RR, want):
            try:
                os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(want))
            except OSError as exc:
                refused.append(f"realtime on: cannot run as SCHED_RR priority {want}: {exc.strerror} (needs "
                               "CAP_SYS_NICE or LimitRTPRIO=; running as " f"{current()[0]})")
            else:
                done.append(f"SCHED_RR priority {want}")
        else:
            done.append(f"SCHED_RR priority {want} (already)")
        if not refused:
            why = _mlockall()
            if why:
                refused.append(why)
            else:
                done.append("locked in memory")
    elif policy in RT_POLICIES:
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError as exc:
            refused.append(f"realtime off: cannot leave {_NAMES.get(policy)}: {exc.strerror}")
        else:
            done.append("SCHED_OTHER (realtime off)")
    return done, refused


def sender_priority() -> str | None:
    """In the heartbeat sender thread: one real-time priority above the thread it was started from, so that
    a busy event loop at the daemon's priority (this daemon's or another one's: SCHED_RR does not preempt an
    equal priority) never delays a heartbeat. Nothing when the daemon is not real-time or already at the
    top; a refusal leaves the inherited priority. Returns what was done, or None."""
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    prio = os.sched_getparam(0).sched_priority
    if policy not in RT_POLICIES or prio >= os.sched_get_priority_max(policy):
        return None
    try:
        os.sched_setscheduler(0, policy, os.sched_param(prio + 1))
    except OSError as exc:
        return f"stays at priority {prio}: {exc.strerror}"
    return f"{_NAMES.get(policy)} priority {prio + 1}"
