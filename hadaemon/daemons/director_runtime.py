"""The director's runtime: config + health checks + wanted table -> backend, reloads, admin overrides."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from typing import Callable, Dict, List, Set, Tuple

from hadaemon.core.errors import BadRequest, ConfigError
from hadaemon.core.director.checks import make_plan, unsupported_checks
from hadaemon.io.director_config import load_config
from hadaemon.core.director.debounce import (
    RealDown, RealUp, SoftFailure, apply_maintenance, apply_on_checks, apply_results, carry_over, check_kind,
    initial_state,
)
from hadaemon.core.director.model import STATUS_RELOADING, STATUS_RUNNING, STATUS_STARTING, STATUS_STOPPING
from hadaemon.core.director.monitor import has_monitorfile, monitor_lines
from hadaemon.core.director.table import (
    check_table, dest_key, fallback_commands, health_by_dest, virtual_service, wanted_table,
)
from hadaemon.core.director.lvs_table import Service, Table, apply_ops, diff, format_table
from hadaemon.io.lvs.base import Backend, BackendError

log = logging.getLogger("ha-ldirectord")
MAX_WEIGHT = 65535


def file_stamp(path: str) -> Tuple[float, str]:
    """(mtime, sha256 of the content) of the config file; ('', '') parts when unreadable."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            return st.st_mtime, hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return 0.0, ""


class Director:
    """Keeps the kernel table equal to wanted_table(config, health) plus the admin's weight overrides.

    listeners: callables (kind, *args): ("real", virtual_key, dest_key, state, weight) on a health
    change, ("table",) after the table changed, ("reload", path) after a reload.
    """

    def __init__(self, config_path: str, backend: Backend, resync_interval: float = 30.0):
        self.config_path = config_path
        self.backend = backend
        self.resync_interval = resync_interval   # re-read the kernel table this often (0: never)
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

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the config (ConfigError propagates), adopt the existing table, program it, start checks."""
        config = await asyncio.to_thread(load_config, self.config_path)   # may resolve host names
        check_table(config)
        self.stamp = file_stamp(self.config_path)
        existing = await asyncio.to_thread(self.backend.read)
        adopted = {}
        for v in config.virtuals:
            entry = existing.get(virtual_service(v).key)
            if entry is None:
                continue
            for r in v.reals:
                d = entry.dests.get(dest_key(v, r))
                if d is not None:
                    adopted[(v.key, r.key)] = d.weight > 0
        self._set_config(config)
        self.health = initial_state(config, adopted, self.plan)
        self.current = {k: e for k, e in existing.items() if k in self._wanted_keys()}
        if adopted:
            log.info("adopted %d real server(s) from the existing table", len(adopted))
        from hadaemon.io.alerts import EmailAlerts

        self.alerts = EmailAlerts(config)
        await self.reconcile(startup=True)
        self._run_fallback_commands()
        self._start_checks()
        await self._instances("start", config.globals.execute)
        self.daemon_status = STATUS_RUNNING

    async def _instances(self, verb: str, children) -> None:
        if self.instance_cmd and children:
            from hadaemon.daemons.director_children import command_children

            await command_children(self.instance_cmd, verb, children)

    async def stop(self, cleanstop: bool | None = None) -> None:
        """Stop checking; remove the virtual services with cleanstop=yes (all when cleanstop=True)."""
        self.daemon_status = STATUS_STOPPING
        if self.config is not None:
            await self._instances("stop", self.config.globals.execute)
        if self.scheduler is not None:
            self.scheduler.stop()
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
                    ops = await asyncio.to_thread(self.backend.clear, keys)
                    log.info("cleanstop: removed %d virtual service(s) (%d ops)", len(keys), len(ops))
                except BackendError as e:
                    log.error("cleanstop failed: %s", e)

    async def reload(self) -> None:
        """Load the config again; keep the old one (and raise BadRequest) when the new one is bad.
        Health of reals kept by the new config carries over, so nothing flaps."""
        try:
            config = await asyncio.to_thread(load_config, self.config_path)   # may resolve host names
            check_table(config)
        except ConfigError as e:
            log.error("reload refused, keeping the running configuration: %s", e)
            raise BadRequest("BadConfig", str(e)) from None
        self.stamp = file_stamp(self.config_path)
        self.daemon_status = STATUS_RELOADING
        old = self.config
        self.health = carry_over(self.health, old, config)
        self._set_config(config)
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
        await self.reconcile()
        self._run_fallback_commands()
        self._start_checks()
        self.daemon_status = STATUS_RUNNING
        self._emit("reload", self.config_path)

    def _set_config(self, config) -> None:
        self.config, self.plan = config, make_plan(config)
        for w in config.warnings:
            log.warning("%s:%d: %s", config.path, w.line, w.message)
        for line, message in unsupported_checks(config):
            log.error("%s:%d: %s", config.path, line, message)

    def _wanted_keys(self) -> Set[str]:
        return {virtual_service(v).key for v in self.config.virtuals}

    # -- the table ---------------------------------------------------------------------------------
    def wanted(self, startup: bool = False) -> Table:
        table = wanted_table(self.config, self.health, None if startup else self.current, self.plan)
        up = {}
        for v in self.config.virtuals:
            for r in v.reals:
                up[(virtual_service(v).key, dest_key(v, r))] = self.health.get((v.key, r.key)).up
        for (skey, dkey), weight in self.overrides.items():
            entry = table.get(skey)
            if entry is None or dkey not in entry.dests:
                continue
            if weight == 0 or up.get((skey, dkey)):
                dests = dict(entry.dests)
                d = dests[dkey]
                dests[dkey] = type(d)(d.address, d.port, d.method, weight, d.lower, d.upper)
                table[skey] = Service(entry.service, dests)
        return table

    async def reconcile(self, startup: bool = False) -> None:
        """Diff the managed table against the wanted one and apply; on a backend error, re-read."""
        async with self._lock:
            wanted = self.wanted(startup)
            ops = diff(self.current, wanted)
            if not ops:
                return
            try:
                await asyncio.to_thread(self.backend.apply, ops)
                self.current = apply_ops(self.current, ops)
                for op in ops:
                    log.info("%s %s%s", type(op).__name__, op.service.key,
                             f" {op.dest.key} weight {op.dest.weight}" if hasattr(op, "dest") else "",
                             extra={"VIRTUAL": op.service.key,
                                    **({"REAL": op.dest.key} if hasattr(op, "dest") else {})})
            except BackendError as e:
                log.error("backend %s: %s; re-reading the table", self.backend.name, e)
                try:
                    existing = await asyncio.to_thread(self.backend.read)
                except BackendError as e2:
                    log.error("backend %s: cannot read the table either: %s", self.backend.name, e2)
                    return
                self.current = {k: v for k, v in existing.items() if k in set(wanted) | set(self.current)}
                asyncio.get_running_loop().call_later(1.0, self._dirty.set)   # retry from what is there
            self._emit("table")

    # -- checks ------------------------------------------------------------------------------------
    def _start_checks(self) -> None:
        """Start (or re-plan after a reload) the concurrent check scheduler and the helper loops."""
        from hadaemon.io.checks.scheduler import CheckScheduler, raise_nofile_limit

        if self.scheduler is None:
            raise_nofile_limit()   # thousands of concurrent checks need thousands of sockets
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
        """A batch from the scheduler (called in the event loop): fold it into the health state."""
        plan, now = self.plan, time.time()
        events: List = []
        self.health, ev = apply_maintenance(plan, self.health, maintenance, now)
        events += ev
        self.health, ev = apply_on_checks(plan, self.health, now)
        events += ev
        self.health, ev = apply_results(plan, self.health, [r for r in results if r.pair in plan.targets], now)
        events += ev
        if results and has_monitorfile(plan):
            from hadaemon.io.alerts import append_lines

            append_lines(monitor_lines(plan, results, time.asctime(), os.getpid()))
        self._run_fallback_commands()
        # only an up/down change alters the wanted table: steady-state results cost no table work
        if any(isinstance(e, (RealUp, RealDown)) for e in events):
            self._events += events
            self._dirty.set()
        elif events:
            self._report(events)          # soft failures: logged now, nothing to program

    def _run_fallback_commands(self) -> None:
        from hadaemon.io.alerts import run_fallback_command

        self.health, commands = fallback_commands(self.config, self.health, self.plan)
        for cmd in commands:
            log.info("fallbackcommand: %s", cmd.command, extra={"VIRTUAL": cmd.virtual})
            asyncio.ensure_future(run_fallback_command(cmd))

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - keep directing; the next change retries
                log.exception("reconciling the table failed")
                await asyncio.sleep(1.0)
                self._dirty.set()
            events, self._events = self._events, []
            self._report(events)

    async def _resync_loop(self) -> None:
        """Re-read the kernel table now and then, so changes made behind our back are repaired."""
        while True:
            await asyncio.sleep(self.resync_interval)
            try:
                existing = await asyncio.to_thread(self.backend.read)
            except BackendError as e:
                log.error("backend %s: cannot read the table: %s", self.backend.name, e)
                continue
            async with self._lock:
                mine = {k: v for k, v in existing.items() if k in set(self.current) | self._wanted_keys()}
                if mine != self.current:
                    log.warning("the table was changed outside the director; restoring it")
                    self.current = mine
            self._dirty.set()

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.alerts is not None:
                self.alerts.resend_due(time.time(), self.daemon_status)

    def _report(self, events) -> None:
        for ev in events:
            vkey, rkey = ev.pair
            v = self.plan.virtuals.get(vkey)
            real = next((r for r in v.reals if r.key == rkey), None) if v else None
            if real is None:
                continue
            skey, dkey = virtual_service(v).key, dest_key(v, real)
            entry = self.current.get(skey)
            weight = entry.dests[dkey].weight if entry and dkey in entry.dests else -1
            fields = {"VIRTUAL": skey, "REAL": dkey}
            if self.alerts is not None and isinstance(ev, (RealUp, RealDown)):
                self.alerts.notify(ev, time.time(), self.daemon_status)
            if isinstance(ev, RealUp):
                log.info("real server %s of %s is up (%s); weight %d", dkey, skey, ev.detail, weight, extra=fields)
                self._emit("real", skey, dkey, "up", weight)
            elif isinstance(ev, RealDown):
                state = "maintenance" if ev.maintenance else "down"
                log.warning("real server %s of %s is %s (%s); weight %d", dkey, skey, state, ev.detail, weight,
                            extra=fields)
                self._emit("real", skey, dkey, state, weight)
            elif isinstance(ev, SoftFailure):
                log.info("real server %s of %s failed check %d/%d (%s)", dkey, skey, ev.failcount,
                         ev.failurecount, ev.detail, extra=fields)

    async def _autoreload_loop(self) -> None:
        while self.config.globals.autoreload:
            await asyncio.sleep(1.0)
            mtime, digest = await asyncio.to_thread(file_stamp, self.config_path)
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

    # -- admin requests (D-Bus) -----------------------------------------------------------------------
    def _find(self, virtual: str, real: str):
        """(Virtual, Real, service key, dest key) for a virtual key / address:port and a real address[:port]."""
        matches = [v for v in self.config.virtuals
                   if virtual in (v.key, virtual_service(v).key, v.display, f"{v.protocol}:{v.display}")]
        if len(matches) != 1:
            known = ", ".join(virtual_service(v).key for v in self.config.virtuals)
            raise BadRequest("UnknownVirtual", f"no virtual service {virtual!r}"
                             + (" (ambiguous: give the protocol, e.g. tcp:ADDRESS:PORT)" if matches else "")
                             + f"; known: {known}")
        v = matches[0]
        reals = [r for r in v.reals if real in (dest_key(v, r), r.key, r.address)]
        if len(reals) != 1:
            raise BadRequest("UnknownReal", f"no real server {real!r} in {virtual_service(v).key}; known: "
                             + ", ".join(dest_key(v, r) for r in v.reals))
        return v, reals[0], virtual_service(v).key, dest_key(v, reals[0])

    async def set_weight(self, virtual: str, real: str, weight: int) -> None:
        if not 0 <= weight <= MAX_WEIGHT:
            raise BadRequest("InvalidArgument", f"weight must be 0..{MAX_WEIGHT}, got {weight}")
        v, r, skey, dkey = self._find(virtual, real)
        self.overrides[(skey, dkey)] = weight
        log.info("admin: weight of %s in %s set to %d", dkey, skey, weight, extra={"VIRTUAL": skey, "REAL": dkey})
        await self.reconcile()
        self._emit("real", skey, dkey, self.real_state(v, r), self._weight(skey, dkey))

    async def restore(self, virtual: str, real: str) -> None:
        v, r, skey, dkey = self._find(virtual, real)
        self.overrides.pop((skey, dkey), None)
        log.info("admin: %s in %s restored to its configured weight", dkey, skey,
                 extra={"VIRTUAL": skey, "REAL": dkey})
        await self.reconcile()
        self._emit("real", skey, dkey, self.real_state(v, r), self._weight(skey, dkey))

    # -- views -------------------------------------------------------------------------------------
    def _weight(self, skey: str, dkey: str) -> int:
        entry = self.current.get(skey)
        return entry.dests[dkey].weight if entry and dkey in entry.dests else -1

    def real_state(self, v, r) -> str:
        h = self.health.get((v.key, r.key))
        if h.maintenance:
            return "maintenance"
        if self.overrides.get((virtual_service(v).key, dest_key(v, r))) == 0:
            return "drained" if h.up else "down"
        return "up" if h.up else "down"

    def real_rows(self) -> List[tuple]:
        """(virtual, real, method, health, weight, configured weight, last ok, last detail, last time,
        overridden) for every real server and the fallback (health "fallback")."""
        rows = []
        for v in self.config.virtuals:
            skey = virtual_service(v).key
            seen = set()
            for r in v.reals:
                dkey = dest_key(v, r)
                if dkey in seen:
                    continue
                seen.add(dkey)
                h = self.health.get((v.key, r.key))
                rows.append((skey, dkey, r.method, self.real_state(v, r), self._weight(skey, dkey), r.weight,
                             bool(h.last_ok), h.last_detail or "", float(h.last_time or 0.0),
                             (skey, dkey) in self.overrides))
            fb = self.config.fallback_for(v)
            if fb is not None and dest_key(v, fb) not in seen:
                dkey = dest_key(v, fb)
                rows.append((skey, dkey, fb.method, "fallback", self._weight(skey, dkey), fb.weight,
                             True, "", 0.0, False))
        return rows

    def virtual_rows(self) -> List[tuple]:
        """(key, protocol, address, port, fwmark, scheduler, persistent, netmask, checktype, service)."""
        rows = []
        for v in self.config.virtuals:
            s = virtual_service(v)
            rows.append((s.key, s.protocol, s.address, s.port, s.fwmark, s.scheduler, s.persistent or 0,
                         s.netmask or "", v.checktype, v.service))
        return rows

    def status_line(self) -> str:
        up = sum(1 for p in self.plan.targets if self.health.get(p).up)
        return (f"{len(self.config.virtuals)} virtual service(s), {up}/{len(self.plan.targets)} real server(s) up, "
                f"backend {self.backend.name}")

    def listing(self) -> str:
        health = health_by_dest(self.config, self.health)
        return format_table(self.current, health)

    def _emit(self, kind: str, *args) -> None:
        for fn in list(self.listeners):
            try:
                fn(kind, *args)
            except Exception:  # a listener must not break the director
                log.exception("listener failed")
