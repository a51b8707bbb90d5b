"""The director's runtime: config + health checks + wanted table -> backend (state, start, stop); the parts by
responsibility are mixins in director_reloads, director_table, director_events, director_views, director_admin."""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Set, Tuple

from hadaemon.core.errors import BadRequest
from hadaemon.core.director.debounce import Damping, initial_state
from hadaemon.core.director.lvs_table import MAX_WEIGHT, Table
from hadaemon.core.director.model import STATUS_RUNNING, STATUS_STARTING, STATUS_STOPPING
from hadaemon.core.director.table import dest_key, virtual_service
from hadaemon.daemons.director_admin import DirectorAdmin
from hadaemon.daemons.director_events import DirectorEvents
from hadaemon.daemons.director_reloads import DirectorReloads, _freeze_long_lived
from hadaemon.daemons.director_table import DirectorTable
from hadaemon.daemons.director_views import DirectorViews
from hadaemon.io.director_config import file_stamp
from hadaemon.io.lvs.base import Backend, BackendError

log = logging.getLogger("ha-ldirectord")
__all__ = ["Director", "BadRequest", "MAX_WEIGHT", "file_stamp"]


class Director(DirectorReloads, DirectorTable, DirectorEvents, DirectorViews, DirectorAdmin):
    """Keeps the kernel table equal to wanted_table(config, health) plus the admin's weight overrides.
    This module holds its state, start and stop; by responsibility: reloads in director_reloads, the table in
    director_table, checks and events in director_events, the read side (rows, listing, status) in
    director_views, admin requests in director_admin.

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

    # -- the table ---------------------------------------------------------------------------------
    # -- checks ------------------------------------------------------------------------------------
    def _emit(self, kind: str, *args) -> None:
        for fn in list(self.listeners):
            try:
                fn(kind, *args)
            except Exception:  # a listener must not break the director
                log.exception("listener failed")
