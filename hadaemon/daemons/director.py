"""ha-ldirectord: the LVS director daemon (ldirectord.cf, health checks, IPVS or nftables, D-Bus)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from hadaemon.core.errors import ConfigError
from hadaemon.daemons.director_runtime import BadRequest, Director
from hadaemon.io.lvs.base import Backend, BackendError
from hadaemon.io.systemd import Notifier, setup_logging, watchdog_interval

DEFAULT_CONFIG = "/etc/ha.d/ldirectord.cf"
log = logging.getLogger("ha-ldirectord")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-ldirectord",
                                description="LVS director: health-checks real servers and keeps the "
                                            "IPVS (or nftables) table in sync with ldirectord.cf.")
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"ldirectord.cf (default {DEFAULT_CONFIG})")
    p.add_argument("--check-config", action="store_true", help="validate the configuration, then exit")
    p.add_argument("--backend", choices=("ipvs", "nft", "auto"), default="auto",
                   help="ipvs (kernel IPVS over netlink), nft (nftables DNAT) or auto (IPVS when the kernel "
                        "has it, else nft); default auto")
    p.add_argument("--pidfile", help="write the daemon's PID here (removed on exit)")
    p.add_argument("--no-dbus", action="store_true", help="do not export org.hadaemon.Director1")
    p.add_argument("--no-cleanstop", action="store_true",
                   help="leave the table in place on stop, whatever cleanstop says")
    p.add_argument("--debug", action="store_true", help="debug logging")
    return p


def make_backend(name: str) -> Backend:
    """The backend by name; 'auto' picks IPVS when the kernel has it, else nftables."""
    from hadaemon.io.lvs.nft import NftBackend

    if name in ("ipvs", "auto"):
        from hadaemon.io.lvs.ipvs import IPVSBackend

        reason = IPVSBackend.unavailable()
        if not reason:
            return IPVSBackend()
        if name == "ipvs":
            raise BackendError(reason + "; use --backend nft on kernels without IPVS")
        log.info("%s: using the nftables backend", reason)
    reason = NftBackend.unavailable()
    if reason:
        raise BackendError(reason)
    return NftBackend()


def check_config(path: str) -> int:
    from hadaemon.core.ldirectord.config import load_config

    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"ha-ldirectord: {e}", file=sys.stderr)
        return 1
    for w in config.warnings:
        print(f"{path}:{w.line}: warning: {w.message}", file=sys.stderr)
    print(f"{path}: configuration OK: {len(config.virtuals)} virtual service(s), "
          f"{sum(len(v.reals) for v in config.virtuals)} real server(s)")
    return 0


async def _run(args, notifier: Notifier) -> int:
    loop = asyncio.get_running_loop()
    try:
        backend = await asyncio.to_thread(make_backend, args.backend)
    except BackendError as e:
        log.error("%s", e)
        print(f"ha-ldirectord: {e}", file=sys.stderr)
        return 1
    director = Director(args.config, backend)
    try:
        await director.start()
    except ConfigError as e:
        print(f"ha-ldirectord: {e}", file=sys.stderr)
        return 1
    except BackendError as e:
        log.error("cannot program the table: %s", e)
        return 1
    bus = None
    if not args.no_dbus:
        try:
            from hadaemon.bus.director import export

            bus = await export(director)
        except Exception as e:  # no bus (namespace without dbus): run without D-Bus
            log.warning("D-Bus not available, running without org.hadaemon.Director1: %s", e)
    if args.pidfile:
        from hadaemon.io.files import write_atomic

        write_atomic(args.pidfile, f"{os.getpid()}\n".encode(), 0o644)
    stop = asyncio.Event()

    def on_hup():
        async def go():
            notifier.reloading()
            try:
                await director.reload()
            except BadRequest:
                pass
            notifier.ready(director.status_line())
        asyncio.ensure_future(go())

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    director.listeners.append(lambda kind, *a: notifier.status(director.status_line()) if kind != "reload" else None)
    notifier.ready(director.status_line())
    log.info("started: %s", director.status_line())
    wd = watchdog_interval()
    watchdog_task = None
    if wd:
        async def watchdog():
            while True:
                notifier.watchdog()
                await asyncio.sleep(wd)
        watchdog_task = asyncio.ensure_future(watchdog())
    await stop.wait()
    notifier.stopping()
    if watchdog_task:
        watchdog_task.cancel()
    await director.stop(cleanstop=False if args.no_cleanstop else None)
    if bus is not None:
        bus.disconnect()
    backend.close()
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass
    log.info("stopped")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.check_config:
        return check_config(args.config)
    setup_logging("ha-ldirectord", debug=args.debug)
    notifier = Notifier()
    try:
        return asyncio.run(_run(args, notifier))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
