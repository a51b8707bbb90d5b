"""ha-crmd: the cluster resource manager daemon (DC election, replicated CIB, transitions, LRM)."""
from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys
import xml.etree.ElementTree as ET

from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.cib.xmltree import parse_xml
from hadaemon.core.crm import cibdoc
from hadaemon.core.errors import ConfigError
from hadaemon.core.heartbeat.hacf import load_hacf
from hadaemon.daemons.plumbing import Runtime, setup_logging, supervise_connection
from hadaemon.io.cibstore import CibStore

__all__ = ["main", "load_configuration", "load_cib"]

DEFAULT_CONFIG = "/etc/ha.d/ha.cf"
DEFAULT_STATE_DIR = "/var/lib/hadaemon"
CRM_ON = ("respawn", "on", "yes", "true", "y", "1")

log = logging.getLogger("ha-crmd")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ha-crmd", description="hadaemon cluster resource manager.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"ha.cf path (default {DEFAULT_CONFIG})")
    p.add_argument("--node", help="local node name (default: uname -n)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"where the CIB and the scheduler inputs are kept (default {DEFAULT_STATE_DIR})")
    p.add_argument("--cib", help="seed CIB used when the state directory holds none")
    p.add_argument("--check-config", action="store_true", help="validate ha.cf and the CIB, then exit")
    p.add_argument("--no-systemd", action="store_true",
                   help="run agents as plain processes even when systemd is PID 1")
    p.add_argument("--agents-as-processes", action="store_true",
                   help="run every agent as a process (by default IPaddr2, ocf:heartbeat or ocf:hadaemon, "
                        "runs in a thread of ha-crmd: the same results without forking ip/arping)")
    p.add_argument("--debug", action="store_true", help="debug logging")
    return p


def load_configuration(path: str, node: str | None):
    """(HaConfig, local node name); raises ConfigError naming the file (and line)."""
    cfg = load_hacf(path)
    local = node or os.uname().nodename
    if cfg.nodes and local not in cfg.nodes:
        raise ConfigError(path, 0, f"the local node {local!r} is not listed in a 'node' directive "
                          f"(nodes: {', '.join(cfg.nodes)}); add 'node {local}' or pass --node")
    return cfg, local


def _parse_file(path: str) -> ET.Element:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot read: {exc.strerror}") from None
    try:
        cib = cibdoc.parse(data)
    except ValueError as exc:
        parse_xml(data, path)  # malformed XML: raises ConfigError(path, line, ...) with the line
        raise ConfigError(path, 0, str(exc)) from None
    problem = cibdoc.old_schema_problem(cib)
    if problem:
        raise ConfigError(path, 0, problem)
    parse_cib(data, path)  # raises ConfigError(path, line, ...) for what the scheduler cannot read
    return cib


def load_cib(store: CibStore, seed: str | None) -> tuple:
    """(CIB element, where it came from): the state directory's copy, else the seed, else empty.
    The status section is dropped: it is rebuilt when the nodes join."""
    if os.path.exists(store.path):
        cib, origin = _parse_file(store.path), store.path
        store.load()
    elif seed:
        cib, origin = _parse_file(seed), seed
    else:
        cib, origin = cibdoc.empty_cib(), "(empty)"
    cibdoc.strip_status(cib)
    return cib, origin


def _preload_agents(in_process: bool = True) -> None:
    """The in-process agents' imports (netlink, frames), then every object alive (the modules, classes
    and tables of the daemon and its libraries: ~200,000) moved out of the cyclic garbage collector's
    reach (gc.freeze): a full collection walked them all, 25-30 ms with every thread of ha-crmd stopped
    (measured with gc.callbacks during bench/failover.py), once in a while in the middle of a handoff."""
    import gc

    try:
        if in_process:
            import hadaemon.agents.filesystem  # noqa: F401
            import hadaemon.agents.ipaddr2  # noqa: F401
            import pyroute2  # noqa: F401
            import scapy.layers.l2  # noqa: F401
    except Exception:  # noqa: BLE001 - only a warm-up; the agent reports its own errors
        log.debug("agent preload failed", exc_info=True)
    finally:
        gc.freeze()


def _start_attrd(node, store: CibStore):
    """crm_attribute / crm_master / attrd_updater / crm_node for the agents this node runs: the tools
    in STATE_DIR/sbin (found through HA_SBIN_DIR and PATH, which agents inherit) and their socket."""
    from pathlib import Path

    from hadaemon.daemons.crmd_attrd import AttrdServer, install_tools, socket_name

    try:
        sbin = install_tools(Path(store.dir) / "sbin")
    except OSError as exc:
        log.error("cannot install the attribute tools for agents: %s", exc, extra={"EVENT": "attrd-failed"})
        return None
    os.environ["HADAEMON_ATTRD_SOCKET"] = socket_name(node.local_node)
    os.environ["HA_SBIN_DIR"] = str(sbin)
    path = os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if not path.startswith(str(sbin) + ":"):
        os.environ["PATH"] = f"{sbin}:{path}"
    server = AttrdServer(node)
    asyncio.ensure_future(server.start())
    return server


async def _run(args, cfg, local: str, cib: ET.Element, store: CibStore) -> int:
    from hadaemon.daemons.crmd_node import CrmNode
    from hadaemon.daemons.crmd_ping import Pinger

    rt = Runtime("ha-crmd")
    in_process = not args.agents_as_processes
    use_systemd = False if args.no_systemd else None

    def lrm_factory(on_result):
        from hadaemon.io.lrm import LocalResourceManager

        return LocalResourceManager(on_result, use_systemd=use_systemd, in_process_agents=in_process)

    # the first VIP start of a failover must not pay for importing netlink and frame building
    asyncio.get_running_loop().run_in_executor(None, _preload_agents, in_process)
    node = CrmNode(local, cfg, store, cib, lrm_factory=lrm_factory)
    node.status_cb = rt.status
    attrd = _start_attrd(node, store)

    def reload():
        try:
            new_cfg, _ = load_configuration(args.config, local)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc, extra={"EVENT": "reload-failed"})
            return
        node.cfg = new_cfg
        log.info("configuration reloaded from %s", args.config, extra={"EVENT": "reloaded"})
        if node.dc_role is not None:
            node.dc_role.schedule("ha.cf reloaded")

    rt.install_signals(reload=reload)
    rt.start_watchdog()
    export = None
    try:
        from hadaemon.bus.crm import Export
    except ImportError:
        Export = None
        log.warning("org.hadaemon.Crm1 is not available in this build", extra={"EVENT": "no-dbus-api"})
    if Export is not None:
        export = Export(node)
        try:
            await export.connect()
        except Exception as exc:  # noqa: BLE001 - any bus failure is fatal at start-up, with its reason
            print(f"ha-crmd: cannot export org.hadaemon.Crm1 on the system bus: {exc}", file=sys.stderr)
            return 1
        rt.spawn(supervise_connection(export.connect, export.wait_for_disconnect, export.close, rt.stop,
                                      "the D-Bus connection"))
    if cfg.ping:
        rt.spawn(Pinger(node, cfg).run(rt.stop))
    log.info("node %s started: CIB %s, state in %s", local, cibdoc.version_text(cibdoc.version_of(cib)),
             store.dir, extra={"NODE": local, "EVENT": "start"})
    rt.ready(node.status_line())
    runner = rt.spawn(node.run(rt.stop))
    await rt.stop.wait()
    rt.stopping()
    log.info("stopping", extra={"NODE": local, "EVENT": "stop"})
    await node.shutdown()
    runner.cancel()
    await node.close()
    store.close()       # what the writer thread still has queued reaches the disk before the exit
    if attrd is not None:
        attrd.close()
    if export is not None:
        export.close()
    await rt.close()
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, local = load_configuration(args.config, args.node)
        store = CibStore(args.state_dir)
        cib, origin = load_cib(store, args.cib)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1
    if (cfg.crm or "off").lower() not in CRM_ON:
        print(f"{args.config}: 'crm {cfg.crm}': the CRM is not enabled; add 'crm respawn' (or 'crm on') "
              "to run ha-crmd", file=sys.stderr)
        return 1
    if args.check_config:
        for w in cfg.warnings:
            print(w, file=sys.stderr)
        print(f"{args.config}: OK ({len(cfg.nodes)} nodes); CIB {origin}: OK "
              f"(epoch {cibdoc.version_text(cibdoc.version_of(cib))})")
        return 0
    try:
        store.check()
    except OSError as exc:
        print(f"ha-crmd: {args.state_dir}: {exc.strerror}", file=sys.stderr)
        return 1
    setup_logging("ha-crmd", debug=args.debug)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    for w in cfg.warnings:
        log.warning("%s", w, extra={"EVENT": "config-warning"})
    store.background = True     # the CIB and scheduler inputs are written by a thread (cibstore's doc)
    try:
        return asyncio.run(_run(args, cfg, local, cib, store))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
