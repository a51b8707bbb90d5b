"""Checker worker processes: each runs the scheduler for a shard of the checks and streams results back.

A single asyncio loop is one CPU. With many thousands of checks per second the director can spread
them over processes (`CheckWorkers(n)`), sharded by ldirectord real id; each worker keeps its own
loop non-blocking and reports batches of results as JSON lines on stdout. The parent feeds the
results into the pure health core exactly as it would from an in-process CheckScheduler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import struct
import sys
import time
from typing import Callable, Dict, List, Mapping

from hadaemon.core.director.checks import Pair, make_plan
from hadaemon.core.director.debounce import Result, apply_results, check_kind, initial_state

log = logging.getLogger("hadaemon.checks")
ResultsCallback = Callable[[List[Result], Mapping[Pair, bool], float], None]
LINE_LIMIT = 64 << 20


# ---- in the worker process ----------------------------------------------------------------

async def _worker_main() -> None:
    from hadaemon.io.checks.scheduler import CheckScheduler, fd_budget  # noqa: F401
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    out = sys.stdout.buffer
    state: Dict[str, object] = {}
    sched: CheckScheduler | None = None
    task = None

    def kind_for(pair: Pair) -> str | None:
        t = state["plan"].targets[pair]
        return check_kind(t, state["health"].get(pair))

    def on_results(results, maintenance, now):
        if state["combined"]:
            # local health only to follow checktype=N (negotiate / connect alternation)
            state["health"], _ = apply_results(state["plan"], state["health"], results, now)
        index = state["index"]
        # pairs as their index in the plan (the parent has the same plan): no strings to rebuild
        msg = {"g": state["gen"],
               "r": [[index[r.pair], r.kind, r.ok, r.detail, round(r.duration, 6)] for r in results]}
        if maintenance != state.get("maint"):
            state["maint"] = maintenance
            msg["m"] = [[index[p], f] for p, f in maintenance.items()]
        out.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        out.flush()

    while True:
        try:
            head = await reader.readexactly(4)
        except asyncio.IncompleteReadError:
            break
        blob, shard, shards, gen = pickle.loads(await reader.readexactly(struct.unpack("!I", head)[0]))
        config = pickle.loads(blob)
        plan = make_plan(config)
        state["plan"], state["health"] = plan, initial_state(config, plan=plan)
        state["gen"], state["index"] = gen, {p: i for i, p in enumerate(plan.targets)}
        state["combined"] = any(v.checktype == "combined" for v in config.virtuals)
        if sched is None:
            sched = CheckScheduler(plan, on_results, kind_for=kind_for, shard=(shard, shards))
            task = asyncio.ensure_future(sched.run())
        else:
            sched.reload(plan)
    if sched is not None:
        sched.stop()
        await asyncio.wait_for(task, 30)


def worker_main() -> int:
    from hadaemon.io.checks.scheduler import raise_nofile_limit
    raise_nofile_limit()
    asyncio.run(_worker_main())
    return 0


# ---- in the director -------------------------------------------------------------------------

class CheckWorkers:
    """`n` checker processes sharing the checks; results arrive through `on_results` like an
    in-process CheckScheduler's (same signature), from the director's event loop. A worker that
    dies is started again with the current config."""

    def __init__(self, n: int, on_results: ResultsCallback):
        self.n, self.on_results = n, on_results
        self.procs: List[asyncio.subprocess.Process] = []
        self._readers: List[asyncio.Task] = []
        self._maint: Dict[Pair, bool] = {}
        self._config = None
        self._blob = b""                            # the config pickled once per generation
        self._gen = 0
        self._pairs: Dict[int, List[Pair]] = {}     # config generation -> pairs by plan index
        self._stopping = False
        self.checks_done = 0
        self.restarts = 0

    async def _spawn(self, i: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hadaemon.io.checks.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT, env=dict(os.environ))
        if i < len(self.procs):
            self.procs[i] = proc
        else:
            self.procs.append(proc)
        await self._send(i)
        self._readers.append(asyncio.ensure_future(self._read(i, proc)))

    def _set_config(self, config, plan=None) -> None:
        self._config = config
        self._blob = pickle.dumps(config)
        self._gen += 1
        self._pairs = {g: p for g, p in self._pairs.items() if g == self._gen - 1}   # late batches
        if plan is None or plan.config is not config:
            plan = make_plan(config)
        self._pairs[self._gen] = list(plan.targets)

    async def start(self, config, plan=None) -> None:
        """`plan`: make_plan(config) when the caller has it (saves making it again)."""
        self._set_config(config, plan)
        for i in range(self.n):
            await self._spawn(i)

    async def _send(self, i: int) -> None:
        blob = pickle.dumps((self._blob, i, self.n, self._gen))
        proc = self.procs[i]
        proc.stdin.write(struct.pack("!I", len(blob)) + blob)
        await proc.stdin.drain()

    async def reload(self, config, plan=None) -> None:
        self._set_config(config, plan)
        for i in range(len(self.procs)):
            try:
                await self._send(i)
            except (BrokenPipeError, ConnectionResetError):
                pass                      # a dying worker: its reader restarts it

    async def _read(self, i: int, proc) -> None:
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            msg = json.loads(line)
            pairs = self._pairs.get(msg["g"])
            if pairs is None:
                continue                  # from a config two reloads ago
            results = [Result(pairs[i], kind, ok, detail, dur) for i, kind, ok, detail, dur in msg["r"]]
            self.checks_done += len(results)
            if "m" in msg:
                for i, flag in msg["m"]:
                    self._maint[pairs[i]] = flag
            self.on_results(results, dict(self._maint), time.monotonic())
        await proc.wait()
        if not self._stopping:
            log.warning("checker worker %d (pid %d) exited with %s; starting it again", i, proc.pid,
                        proc.returncode)
            self.restarts += 1
            await asyncio.sleep(0.5)
            if not self._stopping:
                await self._spawn(i)

    def pids(self) -> List[int]:
        return [p.pid for p in self.procs]

    async def stop(self) -> None:
        self._stopping = True
        for proc in self.procs:
            if proc.stdin and not proc.stdin.is_closing():
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


if __name__ == "__main__":
    sys.exit(worker_main())
