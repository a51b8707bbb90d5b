"""What holds an asyncio program's event loop up: every callback the loop runs is timed (wall clock), and
each one that took longer than THRESHOLD is written down with its wall time, its duration and what it
was (a task's coroutine and the line it stopped at, or the callback's name); a 5 ms timer also records
how late it fires (the loop lag a newly arrived D-Bus call would see). Cheap enough to keep the timing
(two clock reads per callback).

    python bench/loop_lag.py OUT.json -m hadaemon.daemons.director --backend nft CONFIG

OUT.json (written at exit): {"slow": [[wall, ms, what], ...], "lag": [[wall, ms], ...] (lags over 2 ms),
"callbacks": N, "busy_ms": total ms in callbacks, "timed": {"module:Class.method": [[wall, ms], ...]}}.
Full (generation 2) garbage collections are recorded in "timed" as "gc:full collections" ([wall, ms,
collected]). LAG_TIME="module:Class.method,..." also times those functions on every call (e.g.
hadaemon.bus.director:RealServersSnapshot.get). LAG_CHECKS=1 records how late the director's check
scheduler starts checks ("checks:late": per 100 ms, the largest start - due, ms).
"""
from __future__ import annotations

import asyncio
import asyncio.events
import atexit
import importlib
import json
import os
import runpy
import sys
import time

THRESHOLD = 0.005


def _what(handle) -> str:
    cb = getattr(handle, "_callback", None)
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        frame = getattr(coro, "cr_frame", None)
        # the innermost awaited coroutine, where the step stopped
        inner, where = coro, ""
        while True:
            nxt = getattr(inner, "cr_await", None)
            if nxt is None or not hasattr(nxt, "cr_frame"):
                break
            inner = nxt
        f = getattr(inner, "cr_frame", None) or frame
        if f is not None:
            where = f" at {f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}"
        return f"task {getattr(coro, '__qualname__', coro)}{where}"
    name = getattr(cb, "__qualname__", None) or repr(cb)
    mod = getattr(cb, "__module__", "") or ""
    return f"{mod}.{name}"


def start(out: str) -> None:
    slow: list = []
    lag: list = []
    totals = {"n": 0, "busy": 0.0}
    run = asyncio.events.Handle._run
    clock = time.perf_counter

    def timed_run(self):
        t0 = clock()
        try:
            return run(self)
        finally:
            dt = clock() - t0
            totals["n"] += 1
            totals["busy"] += dt
            if dt > THRESHOLD and len(slow) < 200000:
                slow.append([round(time.time() - dt, 3), round(1000 * dt, 1), _what(self)])

    asyncio.events.Handle._run = timed_run

    timed: dict = {}
    for spec in filter(None, os.environ.get("LAG_TIME", "").split(",")):
        mod, _, path = spec.partition(":")
        owner = importlib.import_module(mod)
        *outer, attr = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        fn = getattr(owner, attr)
        calls = timed[spec] = []

        def wrapper(*a, _fn=fn, _calls=calls, **kw):
            t0 = clock()
            try:
                return _fn(*a, **kw)
            finally:
                if len(_calls) < 200000:
                    _calls.append([round(time.time(), 3), round(1000 * (clock() - t0), 2)])

        setattr(owner, attr, wrapper)

    orig_new_loop = asyncio.events.BaseDefaultEventLoopPolicy.new_event_loop

    def new_event_loop(policy):
        loop = orig_new_loop(policy)

        def tick(due):
            late = loop.time() - due
            if late > 0.002 and len(lag) < 200000:
                lag.append([round(time.time(), 3), round(1000 * late, 1)])
            nxt = loop.time() + 0.005
            loop.call_at(nxt, tick, nxt)

        first = loop.time() + 0.005
        loop.call_at(first, tick, first)
        return loop

    asyncio.events.BaseDefaultEventLoopPolicy.new_event_loop = new_event_loop

    def report() -> None:
        for fn in before_report:
            fn()
        with open(out, "w") as f:
            json.dump({"slow": slow, "lag": lag, "callbacks": totals["n"],
                       "busy_ms": round(1000 * totals["busy"]), "timed": timed}, f)

    import gc

    collections: list = []
    gc_start = {}

    def on_gc(phase, info):
        if phase == "start":
            gc_start["t"] = clock()
        elif info.get("generation") == 2 and "t" in gc_start and len(collections) < 100000:
            collections.append([round(time.time(), 3), round(1000 * (clock() - gc_start["t"]), 1),
                                info.get("collected", 0)])

    gc.callbacks.append(on_gc)
    timed["gc:full collections"] = collections
    before_report: list = []
    if os.environ.get("LAG_CHECKS"):
        # how late the director's check scheduler starts checks: per 100 ms of wall time, the largest
        # lateness (start - due) in ms, as "checks:late" [[wall, ms], ...]
        from hadaemon.io.checks import scheduler as sched

        late: dict = {}
        start_check = sched.CheckScheduler._start

        def timed_start(self, ident, gen, due, _start=start_check):
            lateness = time.monotonic() - due
            bucket = round(time.time(), 1)
            if lateness > late.get(bucket, -1.0):
                late[bucket] = lateness
            return _start(self, ident, gen, due)

        sched.CheckScheduler._start = timed_start

        late_out: list = []
        timed["checks:late"] = late_out

        def fill_late() -> None:
            late_out.extend([b, round(1000 * v, 1)] for b, v in sorted(late.items()))
        before_report.append(fill_late)
    atexit.register(report)


def main() -> None:
    out = sys.argv[1]
    start(out)
    if sys.argv[2] == "-m":
        sys.argv = [sys.argv[3], *sys.argv[4:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
