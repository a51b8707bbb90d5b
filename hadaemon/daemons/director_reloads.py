"""The director's reloads: the config file read in a loader process, the plan derived on the event loop in
slices, reloads serialised (the newest file wins), autoreload. A mixin of
hadaemon.daemons.director_runtime.Director."""
from __future__ import annotations

import asyncio
import logging
import os

from hadaemon.core.director.checks import plan_steps, unsupported_checks
from hadaemon.core.director.debounce import carry_over
from hadaemon.core.director.model import STATUS_RELOADING, STATUS_RUNNING
from hadaemon.core.director.table import prepare_steps
from hadaemon.core.errors import BadRequest, ConfigError
from hadaemon.io.director_config import file_stamp, load_checked

log = logging.getLogger("ha-ldirectord")


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


class DirectorReloads:
    """Reloads: config loading (loader process, plan in slices), serialised reloads, autoreload.
    Needs the Director's state (see director_runtime.Director)."""

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
