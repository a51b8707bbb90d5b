"""ha-heartbeat: the membership and messaging daemon (asyncio shell around the membership core)."""
from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys

from hadaemon.core.heartbeat import membership as mb
from hadaemon.core.heartbeat.authkeys import load_authkeys
from hadaemon.core.errors import ConfigError
from hadaemon.core.heartbeat.hacf import load_hacf
from hadaemon.daemons.heartbeat_node import HeartbeatNode
from hadaemon.daemons.plumbing import Runtime, setup_logging, supervise_connection
from hadaemon.io.files import write_atomic
from hadaemon.io.udp import TransportError

__all__ = ["main", "load_configuration", "next_generation"]

DEFAULT_CONFIG = "/etc/ha.d/ha.cf"
DEFAULT_AUTHKEYS = "/etc/ha.d/authkeys"
DEFAULT_STATE_DIR = "/var/lib/hadaemon"

log = logging.getLogger("ha-heartbeat")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-heartbeat", description="hadaemon membership and messaging daemon.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"ha.cf path (default {DEFAULT_CONFIG})")
    p.add_argument("--authkeys", default=DEFAULT_AUTHKEYS, help=f"authkeys path (default {DEFAULT_AUTHKEYS})")
    p.add_argument("--node", help="local node name (default: uname -n)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"where the generation number is kept (default {DEFAULT_STATE_DIR})")
    p.add_argument("--check-config", action="store_true", help="validate ha.cf and authkeys, then exit")
    p.add_argument("--no-dbus", action="store_true", help="do not export org.hadaemon.Heartbeat1 (tests, bench)")
    p.add_argument("--debug", action="store_true", help="debug logging")
    return p


def load_configuration(config_path: str, authkeys_path: str, node: str | None):
    """(HaConfig, AuthKeys, local node name); raises ConfigError naming the file and line."""
    cfg = load_hacf(config_path)
    if cfg.stack == "corosync":   # nodes, links and keys are corosync.conf's (checked against corosync at start)
        return cfg, None, node or os.uname().nodename
    auth = load_authkeys(authkeys_path, check_mode=True)
    local = node or os.uname().nodename
    if cfg.nodes and local not in cfg.nodes:
        raise ConfigError(config_path, 0, f"the local node {local!r} is not listed in a 'node' directive "
                          f"(nodes: {', '.join(cfg.nodes)}); add 'node {local}' or pass --node")
    if not cfg.media:
        raise ConfigError(config_path, 0, "no communication medium: add 'bcast IF', 'mcast ...' or 'ucast IF PEER'")
    return cfg, auth, local


def timing_of(cfg) -> mb.Timing:
    return mb.Timing(keepalive=cfg.keepalive, warntime=cfg.warntime, deadtime=cfg.deadtime,
                     initdead=cfg.initdead)


def next_generation(state_dir: str) -> int:
    """Read, increment and persist (atomically) the generation in state_dir/generation."""
    path = os.path.join(state_dir, "generation")
    previous = 0
    try:
        with open(path) as f:
            previous = int(f.read().strip() or 0)
    except FileNotFoundError:
        previous = 0
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable (%s); starting a new generation sequence", path, exc)
    generation = previous + 1
    write_atomic(path, f"{generation}\n".encode(), 0o644)
    return generation


async def _run(args, cfg, auth, local) -> int:
    loop = asyncio.get_running_loop()
    rt = Runtime("ha-heartbeat")
    try:
        generation = next_generation(args.state_dir)
    except OSError as exc:
        print(f"ha-heartbeat: {args.state_dir}: cannot persist the generation: {exc.strerror}", file=sys.stderr)
        return 1
    # the node sends STATUS= through rt, so the READY=1 after a reload carries the current status
    failure = []
    if cfg.stack == "corosync":
        from hadaemon.daemons.heartbeat_corosync import CorosyncNode
        from hadaemon.io.corosync import CorosyncError, available

        missing = available()
        if missing:
            print(f"ha-heartbeat: stack corosync: {missing}", file=sys.stderr)
            return 1
        node = CorosyncNode(local, generation, loop=loop, notifier=rt, initdead=cfg.initdead)
        try:
            node.open()
        except CorosyncError as exc:
            print(f"ha-heartbeat: stack corosync: cannot use the local corosync: {exc} (is corosync.service "
                  "running?)", file=sys.stderr)
            return 1

        def lost(exc):   # corosync went away: stop with an error (Restart=on-failure starts us again)
            failure.append(exc)
            rt.stop.set()
        node.on_failure = lost
    else:
        node = HeartbeatNode(cfg, auth, local, generation, loop=loop, notifier=rt, state_dir=args.state_dir)
        try:
            node.open()
        except TransportError as exc:
            print(f"ha-heartbeat: {exc}", file=sys.stderr)
            return 1
    export = None
    if not args.no_dbus:
        from hadaemon.bus.heartbeat import Export

        export = Export(node)
        try:
            await export.connect()
        except Exception as exc:  # noqa: BLE001 - any bus failure is fatal at startup, with its reason
            node.close()
            print(f"ha-heartbeat: cannot export org.hadaemon.Heartbeat1 on the system bus: {exc}", file=sys.stderr)
            return 1

    def reload():   # SIGHUP; rt sends RELOADING=1 before and READY=1 after
        try:
            new_cfg, new_auth, _ = load_configuration(args.config, args.authkeys, local)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc,
                      extra={"EVENT": "reload-failed"})
            return
        if (new_cfg.realtime, new_cfg.rtprio) != (cfg.realtime, cfg.rtprio):
            log.warning("realtime/rtprio changed in %s: applied at the next start, not on reload", args.config,
                        extra={"EVENT": "config-warning"})
        try:
            node.reconfigure(new_cfg, new_auth)
        except TransportError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc,
                      extra={"EVENT": "reload-failed"})
        else:
            log.info("configuration reloaded from %s", args.config, extra={"EVENT": "reloaded"})

    rt.install_signals(reload=reload)
    node.start()
    if cfg.stack == "corosync":
        log.info("node %s generation %d started: links %s, stack corosync (nodeid %d)", local, generation,
                 " ".join(node.links), node.local_id, extra={"NODE": local, "EVENT": "start"})
    else:
        log.info("node %s generation %d started: links %s, keepalive %gs, deadtime %gs", local, generation,
                 " ".join(node.links), cfg.keepalive, cfg.deadtime, extra={"NODE": local, "EVENT": "start"})
    rt.ready(node.status_line())
    rt.start_watchdog()
    if export is not None:   # reconnect (and own the name again) whenever the bus is lost; membership goes on
        rt.spawn(supervise_connection(export.connect, export.wait_for_disconnect, export.close, rt.stop,
                                      "the D-Bus connection"))
    await rt.stop.wait()
    rt.stopping()
    log.info("stopping", extra={"NODE": local, "EVENT": "stop"})
    await rt.close()
    node.close()
    if export is not None:
        export.close()
    return 1 if failure else 0


def _log_files(cfg, debug: bool) -> None:
    """ha.cf `logfile` (INFO and up) and `debugfile` (everything): extra plain-text logs, as Heartbeat."""
    root = logging.getLogger()
    console_level = logging.DEBUG if debug else logging.INFO
    for h in root.handlers:
        h.setLevel(console_level)
    fmt = logging.Formatter("%(asctime)s ha-heartbeat[%(process)d] %(levelname)s: %(message)s")
    for path, level in ((cfg.logfile, logging.INFO), (cfg.debugfile, logging.DEBUG)):
        if not path:
            continue
        try:
            handler = logging.FileHandler(path)
        except OSError as exc:
            log.warning("%s: cannot open for logging: %s", path, exc.strerror)
            continue
        handler.setLevel(level)
        handler.setFormatter(fmt)
        root.addHandler(handler)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, auth, local = load_configuration(args.config, args.authkeys, args.node)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1
    warnings = list(cfg.warnings) + list(auth.warnings if auth is not None else ())
    if args.check_config:
        for w in warnings:
            print(w, file=sys.stderr)
        if cfg.stack == "corosync":
            print(f"{args.config}: OK (stack corosync: nodes and links from corosync.conf)")
        else:
            print(f"{args.config}: OK ({len(cfg.nodes)} nodes, links {' '.join(cfg.links)}); {args.authkeys}: OK")
        return 0
    setup_logging("ha-heartbeat", debug=args.debug or bool(cfg.debugfile))
    _log_files(cfg, args.debug)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` dumps the stack to stderr
    for w in warnings:
        log.warning("%s", w, extra={"EVENT": "config-warning"})
    from hadaemon.daemons import heartbeat_realtime

    # before the event loop and any thread: the policy is per thread, threads inherit it
    done, refused = heartbeat_realtime.apply(cfg.realtime, cfg.rtprio)
    for line in refused:
        log.warning("%s", line, extra={"EVENT": "realtime"})
    if done:
        log.info("scheduling: %s", ", ".join(done), extra={"EVENT": "realtime"})
    try:
        return asyncio.run(_run(args, cfg, auth, local))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
