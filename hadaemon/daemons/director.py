"""ha-ldirectord: the LVS director daemon (ldirectord.cf, health checks, IPVS or nftables, D-Bus)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from hadaemon.core.errors import ConfigError
from hadaemon.daemons.director_runtime import BadRequest, Director
from hadaemon.io.lvs import make_backend
from hadaemon.io.lvs.base import BackendError
from hadaemon.daemons.plumbing import Runtime, setup_logging

DEFAULT_CONFIG = "/etc/ha.d/ldirectord.cf"
RUN_DIR = "/run/hadaemon"
# ldirectord's command-line verbs (`ldirectord [CONFIG] start`), as the ClusterLabs OCF agent uses them
COMMANDS = ("start", "stop", "restart", "try-restart", "reload", "force-reload", "status", "configtest")
log = logging.getLogger("ha-ldirectord")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-ldirectord",
                                description="LVS director: health-checks real servers and keeps the "
                                            "IPVS (or nftables) table in sync with ldirectord.cf.")
    p.add_argument("config", nargs="?", default=None, help=f"ldirectord.cf (default {DEFAULT_CONFIG})")
    p.add_argument("command", nargs="?", choices=COMMANDS,
                   help="ldirectord-style control: start (in the background), stop, restart, try-restart, "
                        "reload, force-reload, status (0 running, 3 stopped), configtest; without a command "
                        "the daemon runs in the foreground (systemd)")
    p.add_argument("--check-config", action="store_true", help="validate the configuration, then exit")
    p.add_argument("--backend", choices=("ipvs", "nft", "auto"), default="auto",
                   help="ipvs (kernel IPVS over netlink), nft (nftables DNAT) or auto (IPVS when the kernel "
                        "has it, else nft); default auto")
    p.add_argument("--pidfile", help="write the daemon's PID here (removed on exit)")
    p.add_argument("--no-dbus", action="store_true", help="do not export org.hadaemon.Director1")
    p.add_argument("--no-cleanstop", action="store_true",
                   help="leave the table in place on stop, whatever cleanstop says")
    p.add_argument("--resync-interval", type=float, default=30.0, metavar="SECONDS",
                   help="re-read the kernel table this often and repair changes made behind the "
                        "director's back (default 30, 0 = never)")
    p.add_argument("--flap-damping", metavar="COUNT/SECONDS", type=_damping, default=None,
                   help="hold a real server down when its state changes more than COUNT times within SECONDS, "
                        "until its checks have succeeded for SECONDS in a row (e.g. 4/60; default: off)")
    p.add_argument("--check-workers", type=int, default=0, metavar="N",
                   help="run the health checks in N processes (sharded by real server) instead of the daemon's "
                        "own event loop: for thousands of real servers on several cores (default 0)")
    p.add_argument("--debug", action="store_true", help="debug logging")
    return p


def _damping(text: str):
    from hadaemon.core.director.debounce import Damping

    count, sep, window = text.partition("/")
    try:
        damping = Damping(int(count), float(window))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COUNT/SECONDS (e.g. 4/60), got {text!r}") from None
    if not sep or damping.count < 1 or not 0 < damping.window <= 86400:
        raise argparse.ArgumentTypeError(f"expected COUNT >= 1 and 0 < SECONDS <= 86400, got {text!r}")
    return damping


def check_config(path: str, quiet: bool = False) -> int:
    from hadaemon.io.director_config import load_config
    from hadaemon.core.director.table import check_table

    try:
        config = load_config(path)
        check_table(config)
    except ConfigError as e:
        print(f"ha-ldirectord: {e}", file=sys.stderr)
        return 1
    for w in config.warnings:
        print(f"{path}:{w.line}: warning: {w.message}", file=sys.stderr)
    from hadaemon.core.director.checks import unsupported_checks

    for line, message in unsupported_checks(config):
        print(f"{path}:{line}: warning: {message}", file=sys.stderr)
    if not quiet:
        print(f"{path}: configuration OK: {len(config.virtuals)} virtual service(s), "
              f"{sum(len(v.reals) for v in config.virtuals)} real server(s)")
    return 0


async def _run(args) -> int:
    rt = Runtime("ha-ldirectord")
    try:
        backend = await asyncio.to_thread(make_backend, args.backend)
    except BackendError as e:
        log.error("%s", e)
        return 1
    director = Director(args.config, backend, resync_interval=args.resync_interval, damping=args.flap_damping,
                        check_workers=max(0, args.check_workers))
    # execute=: other instances, controlled with ldirectord's verbs through this same program
    director.instance_cmd = [sys.executable, "-m", "hadaemon.daemons.director", "--backend", args.backend,
                             *(["--no-dbus"] if args.no_dbus else [])]
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

    async def reload():   # SIGHUP; rt sends RELOADING=1 before and READY=1 once this has finished
        try:
            await director.reload()
        except BadRequest:
            pass   # logged by the director, which keeps the running configuration
        rt.status(director.status_line())

    rt.install_signals(reload=reload)
    # STATUS= once per table change (not per event: a storm changes thousands of reals a second)
    director.listeners.append(lambda kind, *a: rt.status(director.status_line()) if kind == "table" else None)
    rt.ready(director.status_line())
    log.info("started: %s", director.status_line())
    rt.start_watchdog()
    await rt.stop.wait()
    rt.stopping()
    await rt.close()
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


def resolve_config(name: str | None) -> str:
    """ldirectord's search: NAME as /etc/ha.d/NAME, /etc/ha.d/conf/NAME, else as given."""
    if name is None:
        return DEFAULT_CONFIG
    if "/" not in name:
        for d in ("/etc/ha.d", "/etc/ha.d/conf"):
            if os.path.isfile(os.path.join(d, name)):
                return os.path.join(d, name)
    return name


def default_pidfile(config: str) -> str:
    return os.path.join(RUN_DIR, f"ldirectord.{os.path.basename(config)}.pid")


def running_pid(pidfile: str) -> int | None:
    """The PID in pidfile if it is a live ha-ldirectord."""
    try:
        pid = int(open(pidfile).read().strip())
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except (OSError, ValueError):
        return None
    return pid if (b"hadaemon.daemons.director" in cmdline or b"ldirectord" in cmdline) else None


def control(args) -> int:
    """ldirectord's verbs on the daemon named by the pidfile (LSB exit codes for status)."""
    import signal as sig
    import subprocess
    import time

    pidfile = args.pidfile or default_pidfile(args.config)
    pid = running_pid(pidfile)
    cmd = args.command
    if cmd == "status":
        if pid:
            print(f"ha-ldirectord for {args.config} is running with pid: {pid}", file=sys.stderr)
            return 0
        print(f"ha-ldirectord is stopped for {args.config}")
        return 1 if os.path.exists(pidfile) else 3
    if cmd in ("reload", "force-reload"):
        if not pid:
            print(f"ha-ldirectord is stopped for {args.config}", file=sys.stderr)
            return 7
        os.kill(pid, sig.SIGHUP)
        return 0
    if cmd in ("stop", "restart", "try-restart"):
        if not pid and cmd == "try-restart":
            return 0
        if pid:
            os.kill(pid, sig.SIGTERM)
            deadline = time.monotonic() + 60
            while running_pid(pidfile) == pid and time.monotonic() < deadline:
                time.sleep(0.1)
            if running_pid(pidfile) == pid:
                print(f"ha-ldirectord (pid {pid}) did not stop within 60 s", file=sys.stderr)
                return 1
        if cmd == "stop":
            return 0
        pid = None
    # start / restart
    if pid:
        return 0
    if check_config(args.config, quiet=True):
        return 1
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    argv = [sys.executable, "-m", "hadaemon.daemons.director", "--backend", args.backend, "--pidfile", pidfile]
    argv += ["--no-dbus"] if args.no_dbus else []
    argv += ["--no-cleanstop"] if args.no_cleanstop else []
    if args.flap_damping is not None:
        argv += ["--flap-damping", f"{args.flap_damping.count}/{args.flap_damping.window:g}"]
    argv += ["--resync-interval", f"{args.resync_interval:g}", "--check-workers", str(args.check_workers)]
    argv += ["--debug"] if args.debug else []
    logfile = _logfile(args.config)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(argv + [os.path.abspath(args.config)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True, cwd="/", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"ha-ldirectord exited with {proc.returncode} (see {logfile})", file=sys.stderr)
            return 1
        if running_pid(pidfile) == proc.pid:      # written once the table is programmed
            return 0
        time.sleep(0.1)
    print("ha-ldirectord did not finish starting within 60 s", file=sys.stderr)
    return 1


def _logfile(config: str) -> str:
    """Where a backgrounded daemon's output goes: the config's logfile= when it is a path."""
    from hadaemon.io.director_config import load_config

    try:
        path = load_config(config).globals.logfile
    except Exception:  # noqa: BLE001 - checked before; fall back to no log file
        path = ""
    return path if path.startswith("/") else os.devnull


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.config in COMMANDS and args.command is None:       # `ha-ldirectord start`
        args.config, args.command = None, args.config
    args.config = resolve_config(args.config)
    if args.check_config or args.command == "configtest":
        return check_config(args.config)
    if args.command:
        return control(args)
    setup_logging("ha-ldirectord", debug=args.debug)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
