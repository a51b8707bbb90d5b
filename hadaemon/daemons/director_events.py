"""The director's checks and events: the check scheduler (in the loop or in checker processes), check
results folded into the health state, events logged and sent to listeners, fallback commands and alerts.
A mixin of hadaemon.daemons.director_runtime.Director."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import List

from hadaemon.core.director.debounce import (
    RealDown, RealHeld, RealUp, SoftFailure, apply_maintenance, apply_on_checks, apply_results, check_kind,
)
from hadaemon.core.director.model import printable
from hadaemon.core.director.monitor import has_monitorfile, monitor_lines
from hadaemon.core.director.table import fallback_commands

log = logging.getLogger("ha-ldirectord")
LOG_CHANGES = 100     # a batch with more up/down changes logs one summary line (each change at debug level)
REPORT_SLICE = 256    # events reported (logged, signalled) between two turns of the event loop


class DirectorEvents:
    """Checks and events: scheduler start, results into health, reporting, fallback commands, alerts.
    Needs the Director's state (see director_runtime.Director)."""

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
