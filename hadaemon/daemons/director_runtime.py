"""The director's runtime: config + health checks + wanted table -> backend, reloads, admin overrides."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Set, Tuple

from hadaemon.core.errors import BadRequest, ConfigError
from hadaemon.core.director.checks import plan_steps, unsupported_checks
from hadaemon.io.director_config import file_stamp, load_checked
from hadaemon.core.director.debounce import (
    Damping, RealDown, RealHeld, RealUp, SoftFailure, apply_maintenance, apply_on_checks, apply_results,
    carry_over, check_kind, initial_state,
)
from hadaemon.core.director.model import (
    STATUS_RELOADING, STATUS_RUNNING, STATUS_STARTING, STATUS_STOPPING, printable,
)
from hadaemon.core.director.monitor import has_monitorfile, monitor_lines
from hadaemon.core.director.table import (
    dest_key, fallback_commands, prepare_steps, table_changes, virtual_service, wanted_table,
)
from hadaemon.core.director.lvs_table import MAX_WEIGHT, Table, apply_ops, diff
from hadaemon.daemons.director_admin import DirectorAdmin
from hadaemon.daemons.director_views import DirectorViews
from hadaemon.io.lvs.base import Backend, BackendError

log = logging.getLogger("ha-ldirectord")
LOG_OPS = 32          # an apply with more ops logs one summary line (each op at debug level)
LOG_CHANGES = 100     # a batch with more up/down changes logs one summary line (each change at debug level)
REPORT_SLICE = 256    # events reported (logged, signalled) between two turns of the event loop
__all__ = ["Director", "BadRequest", "MAX_WEIGHT", "file_stamp"]


def _freeze_long_lived() -> None:
    """Move every object alive now (the config, the plan and what is derived from it: ~100,000 objects at
    5,000 reals) out of the cyclic garbage collector's reach (gc.freeze). A full collection walked all of
    them: 90-390 ms with the event loop stopped, every few seconds in a storm (measured with
    bench/loop_lag.py). They hold no reference cycles (a dropped config and plan leave nothing for the
    collector: they are freed by reference counting when a reload replaces them)."""
    import gc

    gc.freeze()
    # a storm makes and drops ~100,000 objects a second (results, health records, rows): with the default
    # 700 allocations per young collection the full collections came every second or two; every 5,000
    gc.set_threshold(5000, 10, 10)


class Director(DirectorViews, DirectorAdmin):
    """Keeps the kernel table equal to wanted_table(config, health) plus the admin's weight overrides.
    The read side (rows, listing, status) is in director_views, admin requests in director_admin.

    listeners: callables (kind, *args): ("real", virtual_key, dest_key, state, weight) on a health
    change, ("checked", results, maintenance) for each batch of check results (Result objects; the pairs
whose maintenance flag changed), ("table", keys)
    after the table changed (keys: the (service key, dest key) of the destinations changed, None when
    whole services changed), ("admin",) after an admin request changed a weight, ("reload", path) after
    a reload.

    Work per check result is proportional to what changed: results are folded in batches, only the
    reals that changed state are diffed against the table (table_changes), and the backend is
    programmed at most every `apply_interval` seconds with everything that changed meanwhile.
    Backend calls and config loads run on threads of their own (one each), so neither a slow
    `nft -f` nor a hanging name lookup can hold up the other; reloads are serialised and the newest
    file wins.
    """

    def __init__(self, config_path: str, backend: Backend, resync_interval: float = 30.0,
                 damping: Damping | None = None, apply_interval: float = 0.2, lookup_timeout: float = 3.0,
                 check_workers: int = 0):
        self.config_path = config_path
        self.backend = backend
        self.resync_interval = resync_interval   # re-read the kernel table this often (0: never)
        self.damping = damping                   # flap damping (None: off, the default)
        self.apply_interval = apply_interval     # at most one backend apply per this many seconds
        self.lookup_timeout = lookup_timeout     # per host name lookup in a config load
        self.check_workers = check_workers       # checker processes (0: checks run in this event loop)
        self._backend_pool = ThreadPoolExecutor(1, thread_name_prefix="director-backend")
        self._config_pool = ThreadPoolExecutor(1, thread_name_prefix="director-config")
        self._loader = None                      # the config loader process (False: not usable)
        self._changed: Set[tuple] = set()        # pairs whose health changed since the last apply
        self._full = True                        # the next reconcile diffs the whole table
        self._reload_waiters: List[asyncio.Future] = []
        self._reload_task: asyncio.Task | None = None
        self.config = None
        self.plan = None
        self.health = None
        self.current: Table = {}                       # the managed part of the kernel table
        self.overrides: Dict[Tuple[str, str], int] = {}  # (service key, dest key) -> weight
        self.listeners: List[Callable] = []
        self.stamp = (0.0, "")
        self.reloads = 0
        self.started_at = time.time()
        self._tasks: List[asyncio.Task] = []
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._events: List = []
        self.scheduler = None
        self.alerts = None
        self._autoreload = None
        self.daemon_status = STATUS_STARTING
        # execute=: the command that controls another instance (`... CONFIG start|stop|reload`);
        # None: do not manage instances (set by the daemon's main)
        self.instance_cmd: List[str] | None = None

    # -- threads ----------------------------------------------------------------------------------
    async def _backend_call(self, fn, *args):
        """A backend call on the backend's own thread (never queued behind name lookups)."""
        return await asyncio.get_running_loop().run_in_executor(self._backend_pool, fn, *args)

    async def _load(self, in_process: bool = False):
        """Read, parse and check the file off the event loop, then derive the plan and the values derived
        from it once per config (table entries, row keys) on the loop, in slices. Returns (config, plan,
        stamp); raises ConfigError. Host names are looked up with bounded waits (bounded_resolver).

        A reload reads and parses the file in a loader process (`in_process=False`): in a thread of this
        process, ~0.1 s of parsing at 5,000 reals shares the GIL with the event loop, which gives it up at
        every system call of a check and then waits for it (up to the switch interval, and far longer when
        the machine is busy and the thread holding it is not running): checks and D-Bus reads stalled at
        every reload. The first load (no checks running yet), or a loader that cannot start, uses the config
        thread. The config comes back pickled (~0.3 MB at 5,000 reals, ~7 ms to unpickle)."""
        loop = asyncio.get_running_loop()
        got = None
        if not in_process and self._loader is not False:
            try:
                got = await loop.run_in_executor(self._loader_pool(), load_checked, self.config_path,
                                                 self.lookup_timeout)
            except Exception as e:  # noqa: BLE001 - BrokenProcessPool, OSError...: read it here instead
                log.warning("config loader process failed (%s); reading the file in the daemon", e)
                if self._loader:
                    self._loader.shutdown(wait=False)
                self._loader = False
        if got is None:
            got = await loop.run_in_executor(self._config_pool, load_checked, self.config_path, self.lookup_timeout)
        if got[0] == "error":
            raise ConfigError(*got[1:])
        _, config, stamp = got
        # the plan and the values derived from it once per config (targets, table entries, row keys): ~80 ms of
        # pure Python at 5,000 reals, made here on the loop a chunk of reals per turn (a few ms each); on a
        # thread it competed with the loop for the GIL, and on a busy machine each hand-over of the GIL waits
        # until the thread holding it gets a CPU again (checks and D-Bus reads stalled for the whole load)
        steps = plan_steps(config)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                plan = done.value
                break
            await asyncio.sleep(0)
        for _ in prepare_steps(plan):
            await asyncio.sleep(0)
        self._row_index(plan)
        return config, plan, stamp

    def _loader_pool(self):
        if self._loader is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._loader = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._loader

    async def _start_loader(self) -> None:
        """Start the loader process in the background once running (a Python starting and importing the parser
        takes 0.2 s, seconds on a busy machine: not at the first reload)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._loader_pool(), os.getpid)
        except Exception as e:  # noqa: BLE001 - reloads then read the file in the daemon
            log.warning("config loader process failed (%s); reloads read the file in the daemon", e)
            if self._loader:
                self._loader.shutdown(wait=False)
            self._loader = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the config (ConfigError propagates), adopt the existing table, program it, start checks."""
        config, plan, self.stamp = await self._load(in_process=True)
        existing = await self._backend_call(self.backend.read)
        adopted = {}
        for v in config.virtuals:
            entry = existing.get(virtual_service(v).key)
            if entry is None:
                continue
            for r in v.reals:
                d = entry.dests.get(dest_key(v, r))
                if d is not None:
                    adopted[(v.key, r.key)] = d.weight > 0
        self._set_config(config, plan)
        self.health = initial_state(config, adopted, self.plan)
        self.current = {k: e for k, e in existing.items() if k in self._wanted_keys()}
        if adopted:
            log.info("adopted %d real server(s) from the existing table", len(adopted))
        from hadaemon.io.alerts import EmailAlerts

        self.alerts = EmailAlerts(config)
        await self.reconcile(startup=True)
        self._run_fallback_commands()
        await self._start_checks()
        self._tasks.append(asyncio.ensure_future(self._start_loader()))
        await self._instances("start", config.globals.execute)
        self.daemon_status = STATUS_RUNNING
        _freeze_long_lived()

    async def _instances(self, verb: str, children) -> None:
        if self.instance_cmd and children:
            from hadaemon.daemons.director_children import command_children

            await command_children(self.instance_cmd, verb, children)

    async def stop(self, cleanstop: bool | None = None) -> None:
        """Stop checking; remove the virtual services with cleanstop=yes (all when cleanstop=True)."""
        self.daemon_status = STATUS_STOPPING
        if self._loader:
            self._loader.shutdown(wait=False, cancel_futures=True)
            self._loader = False
        if self.config is not None:
            await self._instances("stop", self.config.globals.execute)
        if self.scheduler is not None:
            stopped = self.scheduler.stop()
            if asyncio.iscoroutine(stopped):      # checker processes
                await stopped
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.config is None:
            return
        keys = [virtual_service(v).key for v in self.config.virtuals
                if (v.cleanstop if cleanstop is None else cleanstop)]
        if keys:
            async with self._lock:
                try:
                    ops = await self._backend_call(self.backend.clear, keys)
                    log.info("cleanstop: removed %d virtual service(s) (%d ops)", len(keys), len(ops))
                except BackendError as e:
                    log.error("cleanstop failed: %s", e)

    async def reload(self) -> None:
        """Reload the file (SIGHUP, D-Bus Reload, autoreload) and wait for the outcome; BadRequest
        ("BadConfig") when the file is refused (the running configuration stays).

        Reloads are serialised and the newest file wins: a request made while a reload runs is
        served by the next reload, which reads the file after it; requests made meanwhile share that
        one reload (30 quick SIGHUPs cost at most two loads). So an older file is never applied
        after a newer one."""
        fut = asyncio.get_running_loop().create_future()
        self._reload_waiters.append(fut)
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.ensure_future(self._reload_loop())
        await fut

    async def _reload_loop(self) -> None:
        while self._reload_waiters:
            waiters, self._reload_waiters = self._reload_waiters, []
            try:
                await self._reload_once()
            except BadRequest as e:
                for w in waiters:
                    if not w.done():
                        w.set_exception(BadRequest(e.kind, str(e)))
            except Exception as e:  # noqa: BLE001 - a bug must not leave callers waiting
                log.exception("reload failed")
                for w in waiters:
                    if not w.done():
                        w.set_exception(BadRequest("BadConfig", f"reload failed: {e}"))
            else:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)

    async def _reload_once(self) -> None:
        """Load the config again; keep the old one (and raise BadRequest) when the new one is bad.
        Health of reals kept by the new config carries over, so nothing flaps."""
        try:
            config, plan, stamp = await self._load()
        except ConfigError as e:
            log.error("reload refused, keeping the running configuration: %s", e)
            raise BadRequest("BadConfig", str(e)) from None
        self.stamp = stamp
        self.daemon_status = STATUS_RELOADING
        old, old_plan = self.config, self.plan
        self._set_config(config, plan)
        self.health = carry_over(self.health, old, config, old_plan, self.plan)
        await asyncio.sleep(0)                    # let the loop serve what waited (checks, D-Bus)
        if self.alerts is not None:
            self.alerts.update_config(config)
        if self.instance_cmd:
            from hadaemon.daemons.director_children import reload_changes

            stop, again, start = reload_changes(old.globals.execute, config.globals.execute)
            await self._instances("stop", stop)
            await self._instances("reload_or_start", again)
            await self._instances("start", start)
        self.reloads += 1
        log.info("reloaded %s: %d virtual service(s)", self.config_path, len(config.virtuals))
        self._full = True
        await self.reconcile()
        await asyncio.sleep(0)
        self._run_fallback_commands()
        await self._start_checks()
        await asyncio.sleep(0)
        self.daemon_status = STATUS_RUNNING
        self._emit("reload", self.config_path)
        _freeze_long_lived()

    def _set_config(self, config, plan) -> None:
        self.config, self.plan = config, plan
        for w in config.warnings:
            log.warning("%s:%d: %s", config.path, w.line, w.message)
        for line, message in unsupported_checks(config):
            log.error("%s:%d: %s", config.path, line, message)

    def _wanted_keys(self) -> Set[str]:
        return {virtual_service(v).key for v in self.config.virtuals}

    # -- the table ---------------------------------------------------------------------------------
    def wanted(self, startup: bool = False) -> Table:
        return wanted_table(self.config, self.health, None if startup else self.current, self.plan,
                            self.overrides)

    async def reconcile(self, startup: bool = False) -> None:
        """Bring the table to what config + health + overrides want and apply the difference; only the
        reals that changed since the last apply are looked at, unless a full diff is due (start,
        reload, resync, after a backend error). On a backend error, re-read the table and retry."""
        async with self._lock:
            changed, self._changed = self._changed, set()
            if self._full or startup:
                self._full = False
                wanted = self.wanted(startup)
                ops = diff(self.current, wanted)
            else:
                wanted = None
                ops = table_changes(self.config, self.health, self.current, changed, self.plan, self.overrides)
            if not ops:
                return
            keys = None if wanted is not None else [(op.service.key, op.dest.key) for op in ops if hasattr(op, "dest")]
            if keys is not None and len(keys) != len(ops):
                keys = None                       # whole services changed
            try:
                await self._backend_call(self.backend.apply, ops)
                self.current = apply_ops(self.current, ops)
                # each op is logged; in a storm (hundreds per apply) one summary line, the ops at debug
                # level (every real's up/down is logged on its own anyway)
                level = logging.INFO if len(ops) <= LOG_OPS else logging.DEBUG
                if level == logging.DEBUG:
                    log.info("programmed %d changes (%s)", len(ops), ", ".join(
                        f"{n} {k}" for k, n in sorted(Counter(type(op).__name__ for op in ops).items())))
                if log.isEnabledFor(level):
                    for op in ops:
                        log.log(level, "%s %s%s", type(op).__name__, op.service.key,
                                f" {op.dest.key} weight {op.dest.weight}" if hasattr(op, "dest") else "",
                                extra={"VIRTUAL": op.service.key,
                                       **({"REAL": op.dest.key} if hasattr(op, "dest") else {})})
            except BackendError as e:
                log.error("backend %s: %s; re-reading the table", self.backend.name, e)
                self._full = True
                try:
                    existing = await self._backend_call(self.backend.read)
                except BackendError as e2:
                    log.error("backend %s: cannot read the table either: %s", self.backend.name, e2)
                    return
                keep = set(self.current) | (set(wanted) if wanted is not None else self._wanted_keys())
                self.current = {k: v for k, v in existing.items() if k in keep}
                asyncio.get_running_loop().call_later(1.0, self._dirty.set)   # retry from what is there
                keys = None
            self._emit("table", keys)

    # -- checks ------------------------------------------------------------------------------------
    async def _start_checks(self) -> None:
        """Start (or re-plan after a reload) the concurrent check scheduler and the helper loops. With
        check_workers, the checks run in that many processes (CheckWorkers, sharded by real id): this
        loop then only folds results, programs the table and answers D-Bus."""
        from hadaemon.io.checks.scheduler import CheckScheduler, raise_nofile_limit
        from hadaemon.io.checks.worker import CheckWorkers

        if isinstance(self.scheduler, CheckWorkers):
            await self.scheduler.reload(self.config, self.plan)
        elif self.scheduler is None:
            raise_nofile_limit()   # thousands of concurrent checks need thousands of sockets
            if self.check_workers > 0:
                self.scheduler = CheckWorkers(self.check_workers, self._on_results)
                await self.scheduler.start(self.config, self.plan)
            else:
                self.scheduler = CheckScheduler(self.plan, self._on_results, kind_for=self._kind_for)
                self._tasks.append(asyncio.ensure_future(self.scheduler.run()))
            self._tasks.append(asyncio.ensure_future(self._reconcile_loop()))
            self._tasks.append(asyncio.ensure_future(self._alert_loop()))
            if self.resync_interval > 0:
                self._tasks.append(asyncio.ensure_future(self._resync_loop()))
        else:
            self.scheduler.reload(self.plan)
        if self.config.globals.autoreload and (self._autoreload is None or self._autoreload.done()):
            self._autoreload = asyncio.ensure_future(self._autoreload_loop())
            self._tasks.append(self._autoreload)

    def _kind_for(self, pair) -> str | None:
        t = self.plan.targets.get(pair)
        return check_kind(t, self.health.get(pair)) if t is not None else None

    def _on_results(self, results, maintenance, _monotonic_now) -> None:
        """A batch from the scheduler (called in the event loop): fold it into the health state.
        Cost: proportional to the batch and to the reals that changed, not to the table."""
        plan, now = self.plan, time.time()
        events: List = []
        if maintenance:
            self.health, ev = apply_maintenance(plan, self.health, maintenance, now)
            events += ev
        self.health, ev = apply_on_checks(plan, self.health, now)
        events += ev
        self.health, ev = apply_results(plan, self.health, results, now, self.damping)
        events += ev
        if (results or maintenance) and self.listeners:
            self._emit("checked", results, maintenance)
        if results and has_monitorfile(plan):
            from hadaemon.io.alerts import append_lines

            append_lines(monitor_lines(plan, results, time.asctime(), os.getpid()))
        if not events:
            return
        changes = [e for e in events if isinstance(e, (RealUp, RealDown))]
        if changes:
            self._run_fallback_commands()
            # only an up/down change alters the wanted table: steady-state results cost no table work
            self._changed.update(e.pair for e in changes)
            self._events += events
            self._dirty.set()
        else:
            self._report(events)          # soft failures, held reals: logged now, nothing to program

    def _run_fallback_commands(self) -> None:
        from hadaemon.io.alerts import run_fallback_command

        self.health, commands = fallback_commands(self.config, self.health, self.plan)
        for cmd in commands:
            log.info("fallbackcommand: %s", cmd.command, extra={"VIRTUAL": cmd.virtual})
            asyncio.ensure_future(run_fallback_command(cmd))

    async def _reconcile_loop(self) -> None:
        """Program the table when something changed, at most every apply_interval seconds (longer when
        an apply takes long): in an event storm each apply carries every change made since the
        previous one."""
        loop = asyncio.get_running_loop()
        last, took = 0.0, 0.0
        while True:
            await self._dirty.wait()
            # at most apply_interval apart, and never more than a third of the time spent applying
            # (a whole-table backend such as nft at thousands of reals takes a good part of a second)
            wait = last + max(self.apply_interval, 3 * took) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            last = loop.time()
            try:
                await self.reconcile()
                took = loop.time() - last
            except Exception:  # noqa: BLE001 - keep directing; the next change retries
                log.exception("reconciling the table failed")
                self._full = True
                await asyncio.sleep(1.0)
                self._dirty.set()
            events, self._events = self._events, []
            storm = self._storm_summary(events)
            for i in range(0, len(events), REPORT_SLICE):   # thousands in a storm: let D-Bus and checks in
                if i:
                    await asyncio.sleep(0)
                self._report(events[i:i + REPORT_SLICE], storm)

    async def _resync_loop(self) -> None:
        """Re-read the kernel table now and then, so changes made behind our back are repaired."""
        while True:
            await asyncio.sleep(self.resync_interval)
            # the read is queued on the backend's thread while no apply is in flight, so it sees exactly
            # `expected` unless someone else changed the table; applies made while it runs (in a storm,
            # several) queue after it and do not make it look changed
            async with self._lock:
                expected = self.current
                pending = asyncio.get_running_loop().run_in_executor(self._backend_pool, self.backend.read)
            try:
                existing = await pending
            except BackendError as e:
                log.error("backend %s: cannot read the table: %s", self.backend.name, e)
                continue
            keys = set(expected) | self._wanted_keys()
            if {k: v for k, v in existing.items() if k in keys} == expected:
                continue
            async with self._lock:
                log.warning("the table was changed outside the director; restoring it")
                try:
                    existing = await self._backend_call(self.backend.read)
                except BackendError as e:
                    log.error("backend %s: cannot read the table: %s", self.backend.name, e)
                    continue
                self.current = {k: v for k, v in existing.items() if k in set(self.current) | self._wanted_keys()}
                self._full = True
                self._dirty.set()

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.alerts is not None:
                self.alerts.resend_due(time.time(), self.daemon_status)

    def _storm_summary(self, events) -> bool:
        """A batch with more than LOG_CHANGES up/down changes (an event storm) is logged as one summary
        line, each change at debug level (journald would drop most of thousands of lines a second anyway:
        its default rate limit is 10,000 per 30 s); listeners (D-Bus RealServerChanged) still get every
        one. True for such a batch."""
        ups = sum(1 for ev in events if type(ev) is RealUp)
        downs = sum(1 for ev in events if type(ev) is RealDown)
        if ups + downs <= LOG_CHANGES:
            return False
        log.info("event storm: %d real server state changes (%d up, %d down) since the last table update; "
                 "each one at debug level", ups + downs, ups, downs)
        return True

    def _report(self, events, storm: bool = False) -> None:
        """Log events and tell listeners; O(1) per event (`storm`: see _storm_summary)."""
        targets = self.plan.targets
        quiet = storm and not log.isEnabledFor(logging.DEBUG)
        up_level = logging.DEBUG if storm else logging.INFO
        down_level = logging.DEBUG if storm else logging.WARNING
        for ev in events:
            t = targets.get(ev.pair)
            if t is None:
                continue
            v, real = t.virtual, t.real
            skey, dkey = self._keys(v, real)
            entry = self.current.get(skey)
            weight = entry.dests[dkey].weight if entry and dkey in entry.dests else -1
            fields = {"VIRTUAL": skey, "REAL": dkey}
            detail = "" if quiet and type(ev) in (RealUp, RealDown) else printable(ev.detail, 300)
            if self.alerts is not None and isinstance(ev, (RealUp, RealDown)):
                self.alerts.notify(ev, time.time(), self.daemon_status)
            if isinstance(ev, RealUp):
                log.log(up_level, "real server %s of %s is up (%s); weight %d", dkey, skey, detail, weight,
                        extra=fields)
                self._emit("real", skey, dkey, self.real_state(v, real), weight)
            elif isinstance(ev, RealDown):
                state = "maintenance" if ev.maintenance else "down"
                log.log(down_level, "real server %s of %s is %s (%s); weight %d", dkey, skey, state, detail, weight,
                        extra=fields)
                self._emit("real", skey, dkey, self.real_state(v, real), weight)
            elif isinstance(ev, RealHeld):
                log.warning("real server %s of %s is flapping (%d changes in %gs): held down until stable (%s)",
                            dkey, skey, ev.changes, ev.window, detail, extra=fields)
            elif isinstance(ev, SoftFailure):
                log.info("real server %s of %s failed check %d/%d (%s)", dkey, skey, ev.failcount,
                         ev.failurecount, detail, extra=fields)

    async def _autoreload_loop(self) -> None:
        while self.config.globals.autoreload:
            await asyncio.sleep(1.0)
            mtime, digest = await asyncio.get_running_loop().run_in_executor(self._config_pool, file_stamp,
                                                                             self.config_path)
            if mtime == self.stamp[0] or not digest:
                continue
            if digest == self.stamp[1]:
                self.stamp = (mtime, digest)        # touched, not changed
                continue
            log.info("%s changed on disk: reloading", self.config_path)
            if self.config.globals.callback:
                from hadaemon.io.alerts import run_callback

                asyncio.ensure_future(run_callback(self.config, self.config_path))
            try:
                await self.reload()
            except BadRequest:
                self.stamp = (mtime, digest)        # do not retry the same bad file every second

    def _emit(self, kind: str, *args) -> None:
        for fn in list(self.listeners):
            try:
                fn(kind, *args)
            except Exception:  # a listener must not break the director
                log.exception("listener failed")
