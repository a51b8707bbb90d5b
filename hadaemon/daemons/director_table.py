"""The director's table: the wanted table against the kernel's, applied at a bounded rate with only what
changed, and the resync that repairs changes made behind its back. A mixin of
hadaemon.daemons.director_runtime.Director."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Set

from hadaemon.core.director.lvs_table import Table, apply_ops, diff
from hadaemon.core.director.table import table_changes, virtual_service, wanted_table
from hadaemon.daemons.director_events import REPORT_SLICE
from hadaemon.io.lvs.base import BackendError

log = logging.getLogger("ha-ldirectord")
LOG_OPS = 32          # an apply with more ops logs one summary line (each op at debug level)


class DirectorTable:
    """The table: wanted vs current, bounded-rate applies of what changed, resync.
    Needs the Director's state (see director_runtime.Director)."""

    def _wanted_keys(self) -> Set[str]:
        return {virtual_service(v).key for v in self.config.virtuals}

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
