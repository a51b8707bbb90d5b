"""Run every real server's check concurrently, each on its virtual's checkinterval, and hand results over in batches."""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import resource
import select
import time
import zlib
from typing import Callable, Dict, List, Mapping, Tuple

from hadaemon.core.director.checks import Pair, Plan, check_spec, maintenance_names
from hadaemon.core.director.debounce import RealHealth, Result, check_kind
from hadaemon.io.checks import run_check
from hadaemon.io.checks.probe import Prober, probe_for

log = logging.getLogger("hadaemon.checks")

ResultsCallback = Callable[[List[Result], Mapping[Pair, bool], float], None]


def shard_of(ident: str, shards: int) -> int:
    """Which of `shards` checker processes owns a check (stable across reloads)."""
    return zlib.crc32(ident.encode()) % shards


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each in-flight check holds a socket); the
    director calls this once at start. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def fd_budget(reserve: int = 128) -> int:
    """How many checks may be in flight given RLIMIT_NOFILE (each holds one socket)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, soft - reserve)


class CheckScheduler:
    """Keeps every distinct check (ldirectord real id) running: one in flight at most per id, the next
    one `checkinterval` after the previous started (or at once if it took longer), first runs spread
    over the interval. Results and maintenance changes go to `on_results(results, maintenance, now)`
    every `flush_interval` seconds, from the event loop; nothing here blocks the loop."""

    def __init__(self, plan: Plan, on_results: ResultsCallback,
                 kind_for: Callable[[Pair], str | None] | None = None,
                 max_concurrent: int | None = None, flush_interval: float = 0.1,
                 shard: Tuple[int, int] = (0, 1)):
        self._on_results = on_results
        self.burst = 32            # checks started per turn of the event loop (see _tick)
        self.quantum = 0.005
        self.shard, self.shards = shard
        self._kind_for = kind_for or self._default_kind
        self._budget = min(max_concurrent or 1 << 30, fd_budget())
        self._active = 0
        self._prober: Prober | None = None
        self._flush_interval = flush_interval
        self._heap: List[Tuple[float, int, str, int]] = []
        self._gen = 0
        self._seq = 0
        self._pending: List[Result] = []
        self._maintenance: Dict[Pair, bool] = {}
        self._maint_changes: Dict[Pair, bool] = {}
        self._maint_dirty = False
        self._tasks: set = set()
        self._stopped = asyncio.Event()
        self._loop = None
        self._timer = None
        self._specs: Dict[Tuple[str, str], tuple] = {}
        self._inflight: Dict[str, Tuple[float, float]] = {}    # ident -> (due, interval) of a running check
        self.checks_done = 0
        self.plan = plan
        self._schedule_all(time.monotonic())

    # ---- plan ---------------------------------------------------------------

    def _default_kind(self, pair: Pair) -> str | None:
        """The kind for a real with no health history (constant per pair: memoized)."""
        try:
            return self._kinds[pair]
        except KeyError:
            kind = self._kinds[pair] = check_kind(self.plan.targets[pair], RealHealth())
            return kind

    def _schedule_all(self, now: float, keep: Dict[str, float] | None = None) -> None:
        """Schedule every check of the plan: first runs spread over the interval; with `keep`
        (ident -> next due time, after a reload) a check that stays keeps its cadence."""
        self._gen += 1
        self._specs = {}
        self._kinds: Dict[Pair, str | None] = {}
        self._inflight = {}
        self._maint_names = None          # made at the first scan with a maintenancedir (_scan_maintenance)
        keep = keep or {}
        # one list heapified, not a push per check: this runs on the event loop at every reload
        heap, gen, seq, targets = [], self._gen, self._seq, self.plan.targets
        for ident, pairs in self.plan.groups.items():
            if self.shards > 1 and shard_of(ident, self.shards) != self.shard:
                continue
            interval = targets[pairs[0]].virtual.checkinterval
            due = keep.get(ident)
            if due is None or due > now + interval:
                due = now + (zlib.crc32(ident.encode()) % 1000) / 1000.0 * interval
            seq += 1
            heap.append((due, seq, ident, gen))
        heapq.heapify(heap)
        self._heap, self._seq = heap, seq
        if getattr(self, "_loop", None) is not None:
            self._arm()

    def reload(self, plan: Plan) -> None:
        """Switch to a new plan (after a config reload). Checks that stay keep their cadence (the next
        one when it was due; one in flight: an interval after it started); results of checks in flight
        are dropped."""
        keep: Dict[str, float] = {}
        for due, _, ident, gen in self._heap:
            if gen == self._gen:
                keep[ident] = due
        for ident, (due, interval) in self._inflight.items():
            keep.setdefault(ident, due + interval)
        self.plan = plan
        self._schedule_all(time.monotonic(), keep)

    def _push(self, due: float, ident: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, ident, self._gen))

    # ---- running ------------------------------------------------------------

    async def run(self) -> None:
        """Run until stop(); call from the director's event loop."""
        self._loop = asyncio.get_running_loop()
        self._timer = None
        if hasattr(select, "epoll"):
            self._prober = Prober(self._loop, self._probe_done)
        flusher = asyncio.ensure_future(self._flush_loop())
        self._arm()
        try:
            await self._stopped.wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            flusher.cancel()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(flusher, *self._tasks, return_exceptions=True)
            if self._prober is not None:
                self._prober.close()
                self._prober = None
            self._flush(time.monotonic())

    def stop(self) -> None:
        self._stopped.set()

    def _arm(self) -> None:
        """Arm one loop timer for the earliest due check: no task or wait per wake-up. Wake-ups are
        at least `quantum` apart, so at thousands of checks/s each one starts a batch of checks
        (a few ms late at most) instead of waking the loop for every check."""
        timer = self._timer
        if not self._heap or self._stopped.is_set():
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        when = max(self._heap[0][0], time.monotonic() + self.quantum)
        if timer is not None:
            if not isinstance(timer, asyncio.TimerHandle) or timer.when() <= when:
                return                    # a wake-up soon enough is already coming
            timer.cancel()
        self._timer = self._loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        started = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            if started >= self.burst:
                # let the loop poll I/O before starting more: a burst of connects must not delay
                # the answers of checks already in flight (their time counts against their timeout)
                self._timer = self._loop.call_soon(self._tick)
                return
            if self._active >= self._budget:
                # every socket we may open is in use: wait for checks in flight to end
                self._timer = self._loop.call_later(0.01, self._tick)
                return
            due, _, ident, gen = heapq.heappop(heap)
            if gen == self._gen and ident in self.plan.groups:
                self._start(ident, gen, due)
                started += 1
        self._arm()

    def _start(self, ident: str, gen: int, due: float) -> None:
        """Start the check of `ident`: plain HTTP on the prober's callbacks, the rest as a task."""
        try:
            plan = self.plan
            pair = plan.groups[ident][0]
            kind = None if self._maintenance.get(pair) else self._kind_for(pair)
            if kind is None:
                self._reschedule(ident, gen, due)
                return
            key = (ident, kind)
            entry = self._specs.get(key)
            if entry is None:
                t = plan.targets[pair]
                spec = check_spec(t.virtual, t.real, kind)
                probe = probe_for(spec) if self._prober is not None else None
                entry = self._specs[key] = (ident, pair, kind, spec, probe, t.virtual.checkinterval)
            self._active += 1
            self._inflight[ident] = (due, entry[5])
            if entry[4] is not None:
                self._prober.start(entry[4], (entry, gen, due))
            else:
                self._spawn(entry, gen, due)
        except Exception:  # noqa: BLE001 - one broken check must not stop its real's schedule
            log.exception("check of %s failed unexpectedly", ident)
            self._reschedule(ident, gen, due)

    def _spawn(self, entry: tuple, gen: int, due: float) -> None:
        task = self._loop.create_task(self._check(entry, gen, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _probe_done(self, token: tuple, ok, detail: str, duration: float) -> None:
        entry, gen, due = token
        if ok is None:                 # a redirect: the general path follows it (rare)
            self._spawn(entry, gen, due)
            return
        self._active -= 1
        if gen == self._gen:
            self._inflight.pop(entry[0], None)
            self._pending.append(Result(entry[1], entry[2], ok, detail, duration))
            self.checks_done += 1
            self._reschedule(entry[0], gen, due, entry[5])

    async def _check(self, entry: tuple, gen: int, due: float) -> None:
        ident, pair, kind, spec, _probe, interval = entry
        try:
            cr = await run_check(spec)
            if gen == self._gen:
                self._pending.append(Result(pair, kind, cr.ok, cr.detail, cr.duration))
                self.checks_done += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one broken check must not stop its real's schedule
            log.exception("check of %s failed unexpectedly", pair[1])
        finally:
            self._active -= 1
            if gen == self._gen:
                self._inflight.pop(ident, None)
            self._reschedule(ident, gen, due, interval)

    def _reschedule(self, ident: str, gen: int, due: float, interval: float | None = None) -> None:
        """Keep the cadence: the next check `interval` after this one was due, or now if late."""
        if gen != self._gen or self._stopped.is_set():
            return
        if interval is None:
            interval = self.plan.targets[self.plan.groups[ident][0]].virtual.checkinterval
        nxt = max(due + interval, time.monotonic())
        self._push(nxt, ident)
        if self._heap[0][2] == ident and self._loop is not None:
            self._arm()

    async def _flush_loop(self) -> None:
        last_scan = 0.0
        while True:
            await asyncio.sleep(self._flush_interval)
            now = time.monotonic()
            if now - last_scan >= 1.0:
                self._scan_maintenance()
                last_scan = now
            self._flush(now)

    def _flush(self, now: float) -> None:
        if not self._pending and not self._maint_dirty:
            return
        batch, self._pending = self._pending, []
        changes, self._maint_changes = self._maint_changes, {}
        self._maint_dirty = False
        try:
            # only the maintenance flags that changed: the consumer's work follows what changed
            self._on_results(batch, changes, now)
        except Exception:  # noqa: BLE001 - a consumer bug must not stop the checks
            log.exception("health result consumer failed")

    def _scan_maintenance(self) -> None:
        mdir = self.plan.config.globals.maintenancedir
        if not mdir:
            if self._maintenance:
                self._maint_changes.update({p: False for p, f in self._maintenance.items() if f})
                self._maintenance = {}
                self._maint_dirty = True
            return
        try:
            present = set(os.listdir(mdir))     # one syscall per scan (once a second), not one stat per real
        except OSError:
            present = set()
        if self._maint_names is None:
            self._maint_names = {pair: maintenance_names(t.real) for pair, t in self.plan.targets.items()
                                 if self.shards == 1 or shard_of(self.plan.identity[pair], self.shards) == self.shard}
        flags = {pair: any(n in present for n in names) for pair, names in self._maint_names.items()}
        if flags != self._maintenance:
            old = self._maintenance
            self._maint_changes.update({p: f for p, f in flags.items() if old.get(p, False) != f})
            self._maintenance = flags
            self._maint_dirty = True


async def check_all_once(plan: Plan, kind_for: Callable[[Pair], str | None] | None = None
                         ) -> List[Result]:
    """One concurrent round over every distinct check of `plan` (for `--check-once` and tests)."""
    from hadaemon.core.director.debounce import RealHealth, check_kind
    kind_for = kind_for or (lambda p: check_kind(plan.targets[p], RealHealth()))
    sem = asyncio.Semaphore(fd_budget())

    async def one(pair: Pair) -> Result | None:
        kind = kind_for(pair)
        if kind is None:
            return None
        t = plan.targets[pair]
        async with sem:
            cr = await run_check(check_spec(t.virtual, t.real, kind))
        return Result(pair, kind, cr.ok, cr.detail, cr.duration)

    out = await asyncio.gather(*(one(pairs[0]) for pairs in plan.groups.values()))
    return [r for r in out if r is not None]
