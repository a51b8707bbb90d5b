"""Daemon plumbing shared by every hadaemon daemon: signals, sd_notify, watchdog, logging, bus reconnects.

A daemon's `async` main does::

    rt = Runtime("ha-crmd")                  # Notifier from $NOTIFY_SOCKET (no-op outside systemd)
    rt.install_signals(reload=on_sighup)     # SIGTERM/SIGINT set rt.stop, SIGHUP calls on_sighup()
    rt.start_watchdog()                      # WATCHDOG=1 every WatchdogSec/2 from the event loop
    rt.ready("DC admin1, 2 members")         # READY=1 + STATUS=
    rt.spawn(supervise_connection(...))      # background tasks, cancelled by rt.close()
    await rt.stop.wait()
    rt.stopping(); await rt.close()

`setup_logging(ident, debug)` logs to journald with structured fields (pass them as
`extra={"NODE": ..., "RESOURCE": ..., "TRANSITION": ..., "EVENT": ...}`) when run by systemd, else
plain lines on stderr with the fields appended as `[NODE=x EVENT=y]`.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from typing import Awaitable, Callable, List

from hadaemon.io.systemd import Notifier, setup_logging, watchdog_interval

__all__ = ["Runtime", "Notifier", "setup_logging", "watchdog_interval", "supervise_connection"]

log = logging.getLogger("hadaemon.plumbing")


class Runtime:
    """Signals, sd_notify and the watchdog for one daemon process on the running event loop."""

    def __init__(self, ident: str, notifier: Notifier | None = None):
        self.ident = ident
        self.notifier = notifier or Notifier()
        self.stop = asyncio.Event()
        self._tasks: List[asyncio.Task] = []
        self._status = ""

    # -- signals ------------------------------------------------------------------------------------
    def install_signals(self, reload: Callable[[], Awaitable[None] | None] | None = None) -> None:
        """SIGTERM and SIGINT set self.stop; SIGHUP sends RELOADING=1, calls reload(), then READY=1 again
        (when reload is a coroutine function, READY=1 follows once its coroutine has finished)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        if reload is not None:
            async def finish(pending: Awaitable[None]):
                try:
                    await pending
                finally:
                    self.notifier.ready(self._status)

            def on_hup():
                self.notifier.reloading()
                pending = None
                try:
                    pending = reload()
                finally:
                    if inspect.isawaitable(pending):
                        self.spawn(finish(pending))
                    else:
                        self.notifier.ready(self._status)
            loop.add_signal_handler(signal.SIGHUP, on_hup)

    # -- sd_notify ----------------------------------------------------------------------------------
    def ready(self, status: str = "") -> None:
        self._status = status or self._status
        self.notifier.ready(self._status)

    def status(self, text: str) -> None:
        """STATUS= (only sent when it changed)."""
        if text != self._status:
            self._status = text
            self.notifier.status(text)

    def reloading(self) -> None:
        self.notifier.reloading()

    def stopping(self) -> None:
        self.notifier.stopping()

    # -- watchdog -----------------------------------------------------------------------------------
    def start_watchdog(self) -> float:
        """Ping WATCHDOG=1 every WatchdogSec/2 from the event loop (a hung loop stops the pings);
        returns the interval (0 when systemd set no watchdog)."""
        interval = watchdog_interval()
        if interval > 0:
            async def ping():
                while True:
                    self.notifier.watchdog()
                    await asyncio.sleep(interval)
            self.spawn(ping())
        return interval

    # -- tasks --------------------------------------------------------------------------------------
    def spawn(self, coro: Awaitable) -> asyncio.Task:
        """Run a background task that close() cancels; an exception in it is logged, not lost."""
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task failed: %r", self.ident, task.exception(),
                      exc_info=task.exception(), extra={"EVENT": "task-failed"})

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), []
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass


async def supervise_connection(connect: Callable[[], Awaitable[None]],
                               wait_lost: Callable[[], Awaitable[object]],
                               close: Callable[[], None], stop: asyncio.Event, what: str,
                               max_delay: float = 5.0) -> None:
    """Keep a connection up until stop is set: await wait_lost() (returns or raises when the connection
    is gone), then close() and connect() again with exponential back-off (0.1 s .. max_delay).
    The first connect() is the caller's (so it can fail the start-up); this only reconnects."""
    while not stop.is_set():
        try:
            await wait_lost()
            reason = "disconnected"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the connection's error ends up here
            reason = repr(exc)
        if stop.is_set():
            return
        log.error("lost %s (%s); reconnecting", what, reason, extra={"EVENT": "bus-lost"})
        close()
        delay = 0.1
        while not stop.is_set():
            try:
                await connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("reconnecting %s failed: %s", what, exc, extra={"EVENT": "bus-lost"})
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
            else:
                log.info("reconnected %s", what, extra={"EVENT": "bus-reconnected"})
                break
