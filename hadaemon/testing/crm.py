"""ha-heartbeat + ha-crmd on a namespace Cluster: per-node views, seed CIB, waits and a dual-active observer.

Every node of the netns Cluster runs ha-heartbeat and ha-crmd on its own private D-Bus bus (as
HeartbeatCluster does), with its own ha.cf (``crm respawn``, ``auto_failback``), state directory and
seed CIB file.

Nodes share one file system and one PID namespace
-------------------------------------------------
Namespaces give each node its own network, but not its own /run: an LSB script's pidfile, the
Dummy agent's state file (/run/resource-agents) or a Filesystem mount would be seen by every node, so
a probe on admin2 would find admin1's service "running". So each node also gets its own **mount
namespace**, held by an *anchor* process (``sleep infinity`` started with ``ip netns exec NS unshare
--mount --propagation private``); ha-crmd (and hence every agent it runs, and every daemon those
start) is started inside it with ``nsenter -t ANCHOR -m -n``. In that mount namespace:

- ``/run`` (and so ``/var/run``, ``/run/lock``, ``/run/resource-agents``) is a bind mount of the
  node's own directory ``<workdir>/crm/<node>/run``: pidfiles, agent state files and sockets are
  per node, and the harness reads them from the host at that path;
- ``/etc/init.d``, ``/usr/lib/ocf`` and ``/usr/sbin`` are overlay mounts: the host's directories with
  the cluster's additions on top (LSB scripts such as ``httpd`` and ``mysqld``, the ``ocf:hadaemon``
  agents, ``fence_hadaemon``), so the CIB names agents exactly as on a real node (``lsb:httpd``);
- mounts made by agents (ocf:heartbeat:Filesystem) stay private to the node (propagation private):
  admin1 mounting the shared store does not make it appear mounted on admin2.

Each node also gets its own UTS namespace (hostname = node name), as separate machines would.

The mount namespace lives as long as the anchor: ha-crmd killed -9 and restarted finds its agents'
mounts and processes as it left them. Powering a node off (PowerSwitch, fence_hadaemon) kills every
process in its network namespace, the anchor included, like a power cut; powering on starts a new
anchor (empty /run contents are kept: they are files in the node directory, cleared on power-on as a
reboot would) and the daemons.

The observer of every node's ground truth (VIPs, mounts, pidfiles) is hadaemon.testing.observer's.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.observer import NodeView, Observer, _read, dummy, mounted, pidfile, runfile, vip
from hadaemon.testing.power import PowerSwitch
from hadaemon.testing.procs import REPO_ROOT, CommandError, Proc, base_env, run_cmd, wait_until

__all__ = ["CrmCluster", "Observer", "vip", "mounted", "pidfile", "dummy", "runfile", "CRM_BUS", "CRM_PATH", "CRM_IFACE"]

CRM_BUS = "org.hadaemon.Crm1"
CRM_PATH = "/org/hadaemon/Crm1"
CRM_IFACE = "org.hadaemon.Crm1"
AGENTS_DIR = Path(REPO_ROOT) / "agents"

# The anchor's set-up, run by sh inside the new mount namespace. $1 = node dir; overlays only for the
# directories that have additions.
_ANCHOR_SH = r"""
set -e
d=$1
hostname "$2"
mount --bind "$d/run" /run
mkdir -p /run/lock /run/resource-agents /run/hadaemon
for pair in "initd:/etc/init.d" "ocf:/usr/lib/ocf" "sbin:/usr/sbin"; do
  src=$d/overlay/${pair%%:*}; dst=${pair#*:}
  if [ -d "$src" ] && [ -n "$(ls -A "$src")" ]; then
    mount -t overlay overlay -o "lowerdir=$src:$dst" "$dst"
  fi
done
echo anchor-ready
exec sleep infinity
"""


class CrmCluster:
    """Runs ha-heartbeat + ha-crmd on every node of a netns Cluster (see the module docstring).

    cib: the seed CIB text written to each node's seed file (ha-crmd --cib).
    initd: {script name: text} installed in every node's /etc/init.d (lsb:NAME).
    ocf: {provider: {agent: path}} installed in /usr/lib/ocf/resource.d/PROVIDER (python agents of this
         repository get a wrapper running them with this interpreter). By default the repository's
         IPaddr2 and ldirectord as ocf:hadaemon:*.
    fencing: run a PowerSwitch (socket at .power_socket) and install fence_hadaemon in /usr/sbin.
    """

    def __init__(self, cluster, cib: str, keepalive: str = "200ms", deadtime: str = "2",
                 initdead: str | None = None, warntime: str | None = None, auto_failback: str = "on",
                 extra: Sequence[str] = (), initd: Dict[str, str] | None = None,
                 ocf: Dict[str, Dict[str, str]] | None = None, fencing: bool = True,
                 nodes: Sequence[str] | None = None, crmd_args: Sequence[str] = ()):
        self.c = cluster
        self.nodes = list(nodes or cluster.nodes)
        self.cib_text = cib
        extra = ["crm respawn", f"auto_failback {auto_failback}", *extra]
        self.hb = HeartbeatCluster(cluster, keepalive=keepalive, deadtime=deadtime, warntime=warntime,
                                   initdead=initdead, extra=extra, nodes=self.nodes)
        self.initd = dict(initd or {})
        default_ocf = {"hadaemon": {"IPaddr2": str(AGENTS_DIR / "IPaddr2"),
                                    "ldirectord": str(AGENTS_DIR / "ldirectord")}}
        self.ocf = default_ocf if ocf is None else ocf
        self.crmd_args = list(crmd_args)
        self.anchors: Dict[str, Proc] = {}
        self.crmd: Dict[str, Proc] = {}
        self.power_socket = cluster.workdir / "power.sock"
        self.switch: PowerSwitch | None = None
        if fencing:
            self.switch = PowerSwitch(self.power_socket).start()
            for n in self.nodes:
                self.switch.add(n, cluster.netns(n), on_hook=self._powered_on)
        self._auto_start_on_power = True
        self._cut: set = set()
        for n in self.nodes:
            self._prepare(n)

    # -- per-node files ----------------------------------------------------------------------------
    def dir(self, node: str) -> Path:
        return self.c.workdir / "crm" / node

    def rundir(self, node: str) -> Path:
        return self.dir(node) / "run"

    def state_dir(self, node: str) -> Path:
        return self.dir(node) / "state"

    def seed_path(self, node: str) -> Path:
        return self.dir(node) / "seed-cib.xml"

    def hacf(self, node: str) -> Path:
        return self.hb.dir(node) / "ha.cf"

    def _prepare(self, node: str) -> None:
        d = self.dir(node)
        for sub in ("run", "state", "overlay/initd", "overlay/ocf", "overlay/sbin"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.seed_path(node).write_text(self.cib_text)
        for name, text in self.initd.items():
            p = d / "overlay" / "initd" / name
            p.write_text(text)
            p.chmod(0o755)
        for provider, agents in self.ocf.items():
            pd = d / "overlay" / "ocf" / "resource.d" / provider
            pd.mkdir(parents=True, exist_ok=True)
            for name, path in agents.items():
                p = pd / name
                if _read(path).startswith("#!/usr/bin/python3"):
                    # the repository's python agents need this interpreter (its packages)
                    p.write_text(f"#!/bin/sh\nexport PYTHONPATH={REPO_ROOT}\nexec {sys.executable} {path} \"$@\"\n")
                else:
                    shutil.copyfile(path, p)
                p.chmod(0o755)
        if self.switch is not None:
            p = d / "overlay" / "sbin" / "fence_hadaemon"
            shutil.copyfile(AGENTS_DIR / "fence_hadaemon", p)
            p.chmod(0o755)
        self.hb.write_config(node)

    def set_cib(self, text: str) -> None:
        """Change the seed CIB (used by nodes whose state dir has no CIB yet)."""
        self.cib_text = text
        for n in self.nodes:
            self.seed_path(n).write_text(text)

    # -- processes ---------------------------------------------------------------------------------
    def anchor_pid(self, node: str) -> int | None:
        a = self.anchors.get(node)
        return a.pid if a is not None and a.alive() else None

    def start_anchor(self, node: str) -> Proc:
        old = self.anchors.get(node)
        if old is not None and old.alive():
            return old
        run = self.rundir(node)
        for child in run.iterdir():  # a boot starts with an empty /run
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink()
        script = self.dir(node) / "anchor.sh"
        script.write_text(_ANCHOR_SH)
        before = old.output().count("anchor-ready") if old is not None else 0
        p = self.c.spawn(node, ["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh",
                                str(script), str(self.dir(node)), node], name="mntns-anchor")
        self.anchors[node] = p
        try:
            wait_until(lambda: p.output().count("anchor-ready") > before or not p.alive(), 10,
                       message=f"{node}'s mount namespace")
        except TimeoutError:
            pass
        if not p.alive():
            raise RuntimeError(f"{node}: mount namespace set-up failed:\n{p.output()[-2000:]}") from None
        return p

    def in_node(self, node: str, argv: Sequence[str]) -> List[str]:
        """argv run inside the node's network + mount namespaces (the node's view of the world)."""
        pid = self.anchor_pid(node)
        if pid is None:
            raise RuntimeError(f"{node} is not running (no mount-namespace anchor)")
        return ["nsenter", "-t", str(pid), "-m", "-n", "-u", "--", *map(str, argv)]

    def run(self, node: str, argv: Sequence[str], check: bool = False, timeout: float = 60,
            env: Dict[str, str] | None = None, input: str | None = None):
        return run_cmd(self.in_node(node, argv), check=check, timeout=timeout, env=base_env(env), input=input)

    def crmd_argv(self, node: str) -> List[str]:
        return [sys.executable, "-m", "hadaemon.daemons.crmd", "--config", str(self.hacf(node)), "--node", node,
                "--state-dir", str(self.state_dir(node)), "--cib", str(self.seed_path(node)), "--no-systemd",
                *self.crmd_args]

    def start_crmd(self, node: str, timeout: float = 30) -> Proc:
        log = self.c.workdir / "logs" / f"{node}-ha-crmd.log"
        old = self.crmd.get(node)
        if old is not None and old.alive():
            # not Proc.terminate: that also kills every process carrying the Proc's token, i.e. the
            # services the agents started, which must outlive ha-crmd (KillMode=process)
            old.signal(signal.SIGTERM)
            if old.wait(timeout) is None:
                old.kill9()
        p = Proc(self.in_node(node, self.crmd_argv(node)), log, env=base_env(self.c.dbus_env(node)),
                 name=f"{node}/ha-crmd", cwd=str(self.c.workdir))
        self.c._procs.append(p)
        self.crmd[node] = p
        return p

    def _ensure_bus(self, node: str) -> None:
        """The node's dbus-daemon runs in its network namespace: a power-off killed it; start it again."""
        bus = self.c._buses.get(node)
        if bus is not None and (bus.proc is None or not bus.proc.alive()):
            bus.close()
            for stale in (bus.socket_path, bus.workdir / "dbus-daemon.log"):  # start() waits for the log line
                try:
                    os.replace(stale, str(stale) + ".before-power-off")
                except FileNotFoundError:
                    pass
            bus.start()

    def start_node(self, node: str) -> None:
        self._ensure_bus(node)
        self.start_anchor(node)
        self.hb.start(node)
        self.hb.wait_started(node)
        self.start_crmd(node)

    def start_all(self, wait: bool = True, timeout: float = 90) -> None:
        for n in self.nodes:
            self.start_anchor(n)
            self.hb.start(n)
        for n in self.nodes:
            self.hb.wait_started(n)
        for n in self.nodes:
            self.start_crmd(n)
        if wait:
            for n in self.nodes:
                self.wait_crm_name(n, timeout)
            self.wait_dc(timeout=timeout)

    def stop_node(self, node: str, timeout: float = 60) -> None:
        """A clean shutdown: ha-crmd (stops its resources, or hands them over), then heartbeat, anchor."""
        p = self.crmd.get(node)
        if p is not None and p.alive():
            p.signal(signal.SIGTERM)
            if p.wait(timeout) is None:
                p.kill9()
        hbp = self.hb.procs.get(node)
        if hbp is not None:
            hbp.terminate(10)
        a = self.anchors.get(node)
        if a is not None:
            a.terminate(5)

    def kill_crmd(self, node: str) -> None:
        """kill -9 ha-crmd only (its agents' daemons and mounts stay, as with KillMode=process)."""
        self.crmd[node].kill9()

    def restart_crmd(self, node: str) -> Proc:
        return self.start_crmd(node)

    # -- faults ------------------------------------------------------------------------------------
    def cut(self, node: str) -> None:
        """Unplug the node's cables: its ports on the switch go down, so its links lose carrier. Unlike
        Cluster.cut (ip link set eth0 down inside the node), the node cannot undo this itself (the
        IPaddr2 agent brings its interface up when it adds an address)."""
        self._cut.add(node)
        for k in self.c._links_of(node, None):
            run_cmd(["ip", "-n", self.c.switch, "link", "set", self.c.port(node, k), "down"])

    def restore(self, node: str) -> None:
        for k in self.c._links_of(node, None):
            run_cmd(["ip", "-n", self.c.switch, "link", "set", self.c.port(node, k), "up"])
        self._cut.discard(node)

    def is_cut(self, node: str) -> bool:
        return node in self._cut

    def power_off(self, node: str) -> None:
        if self.switch is None:
            raise RuntimeError("fencing=False: no power switch")
        self.switch.off(node)

    def power_on(self, node: str) -> None:
        if self.switch is None:
            raise RuntimeError("fencing=False: no power switch")
        self.switch.on(node)

    def _powered_on(self, node: str) -> None:
        if not self._auto_start_on_power:
            return
        threading.Thread(target=self._boot, args=(node,), daemon=True).start()

    def _boot(self, node: str) -> None:
        try:
            for p in (self.crmd.get(node), self.hb.procs.get(node), self.anchors.get(node)):
                if p is not None:
                    p.terminate(2)
            self.start_node(node)
        except Exception as exc:  # noqa: BLE001 - reported through the node's missing daemons
            print(f"crm harness: booting {node} after power-on failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        self._auto_start_on_power = False
        for n in self.nodes:
            p = self.crmd.get(n)
            if p is not None:
                p.terminate(5)
        if self.switch is not None:
            self.switch.close()

    # characters of each daemon's output printed when a `with CrmCluster(...)` block fails
    FAILURE_LOG_TAIL = 6000

    def __enter__(self) -> CrmCluster:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Closes the cluster; when the block raised an Exception (a failed assert, an error; not a pytest
        skip or a KeyboardInterrupt), prints the daemons' logs first so a failing test shows them."""
        try:
            if exc_type is not None and issubclass(exc_type, Exception):
                print(self.logs(tail=self.FAILURE_LOG_TAIL))
        finally:
            self.close()

    # -- D-Bus / hactl -----------------------------------------------------------------------------
    def busctl(self, node: str, *args: str, check: bool = True, timeout: float = 30):
        return run_cmd(["busctl", f"--address={self.c.dbus(node)}", *args], check=check, timeout=timeout)

    def call(self, node: str, method: str, signature: str = "", *args: str, check: bool = True,
             timeout: float = 60):
        """busctl call org.hadaemon.Crm1 /org/hadaemon/Crm1 org.hadaemon.Crm1 METHOD SIG ARGS..."""
        argv = ["--json=short", "call", CRM_BUS, CRM_PATH, CRM_IFACE, method]
        if signature:
            argv += [signature, *map(str, args)]
        return self.busctl(node, *argv, check=check, timeout=timeout)

    def call_joined(self, node: str, method: str, signature: str = "", *args: str, timeout: float = 60):
        """call() for a CIB change, repeated while the DC refuses it with NotReady ("the DC is still joining
        the nodes"): right after a DC change the join is not complete yet and a change is refused by design."""
        last = []

        def accepted():
            cp = self.call(node, method, signature, *args, check=False, timeout=timeout)
            last[:] = [cp]
            if cp.returncode == 0:
                return cp
            if "still joining the nodes" in cp.stderr:
                return None
            raise CommandError(cp.returncode, [method, signature, *args], cp.stdout, cp.stderr)
        try:
            return wait_until(accepted, timeout, interval=0.3, message=f"{method} accepted by {node}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last: {last[0].stderr if last else ''}") from None

    def hactl(self, node: str, *args: str, check: bool = False, timeout: float = 60):
        return run_cmd([sys.executable, "-m", "hadaemon.cli.hactl", *args], check=check, timeout=timeout,
                       env=base_env(self.c.dbus_env(node)))

    def has_crm_name(self, node: str) -> bool:
        cp = self.busctl(node, "--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                         "org.freedesktop.DBus", "NameHasOwner", "s", CRM_BUS, check=False)
        return cp.returncode == 0 and json.loads(cp.stdout)["data"][0] is True

    def wait_crm_name(self, node: str, timeout: float = 60) -> None:
        p = self.crmd[node]
        wait_until(lambda: self.has_crm_name(node) or not p.alive(), timeout, interval=0.2,
                   message=f"{CRM_BUS} on {node}'s bus")
        if not p.alive():
            raise RuntimeError(f"ha-crmd on {node} exited:\n{p.output()[-3000:]}")

    def status(self, node: str) -> dict:
        """The daemon's view on node: the Status property of org.hadaemon.Crm1 (the status dict of the
        contract, as JSON); {} if it does not answer."""
        cp = self.busctl(node, "--json=short", "get-property", CRM_BUS, CRM_PATH, CRM_IFACE, "Status", check=False,
                         timeout=30)
        if cp.returncode != 0:
            return {}
        try:
            value = json.loads(cp.stdout)["data"]
            return json.loads(value) if isinstance(value, str) else value
        except (ValueError, KeyError, TypeError):
            return {}

    def resource_nodes(self, node: str, rsc: str) -> List[str]:
        """Where node's daemon says rsc (a primitive, group or group member) runs."""
        def find(items):
            for r in items or []:
                if isinstance(r, dict):
                    if r.get("id") == rsc:
                        return r
                    hit = find(r.get("members"))
                    if hit:
                        return hit
            return None
        r = find(self.status(node).get("resources"))
        return sorted(r.get("nodes") or []) if r else []

    def dc(self, node: str) -> str:
        return self.status(node).get("dc") or ""

    def wait_dc(self, nodes: Sequence[str] | None = None, timeout: float = 90) -> str:
        """Wait until every given node (default: all with a running crmd) names the same DC."""
        nodes = list(nodes or [n for n in self.nodes if n in self.crmd and self.crmd[n].alive()])
        seen: Dict[str, str] = {}

        def agreed():
            for n in nodes:
                seen[n] = self.dc(n)
            vals = set(seen.values())
            return len(vals) == 1 and "" not in vals and next(iter(vals))
        try:
            return wait_until(agreed, timeout, interval=0.3, message=f"one DC named by {nodes}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen {seen}") from None

    def wait_idle(self, node: str, timeout: float = 90) -> dict:
        """Wait until node reports no transition in progress; returns its status."""
        last: Dict[str, dict] = {}

        def idle():
            st = last["s"] = self.status(node)
            t = st.get("transition") or {}
            return st and st.get("dc") and t.get("state") in (None, "", "idle", "complete", "done")
        try:
            wait_until(idle, timeout, interval=0.3, message=f"{node} idle")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last {last.get('s')}") from None
        return last["s"]

    def wait_resource(self, rsc: str, nodes: Sequence[str], observer: str | None = None,
                      timeout: float = 60) -> None:
        """Wait until the daemon's view (Status of org.hadaemon.Crm1 on observer, default the DC) says rsc runs
        exactly on nodes; the ground truth is the Observer's business."""
        want = sorted(nodes)
        seen: Dict[str, List[str]] = {}

        def ok():
            who = observer or self.dc(self.nodes[0]) or self.nodes[0]
            seen["v"] = self.resource_nodes(who, rsc)
            return seen["v"] == want
        try:
            wait_until(ok, timeout, interval=0.3, message=f"{rsc} on {want} in the CRM's status")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen {seen.get('v')}") from None

    def cib_file(self, node: str) -> str:
        """The CIB node persisted in its state directory ('' if none yet)."""
        return _read(self.state_dir(node) / "cib.xml")

    def logs(self, nodes: Sequence[str] | None = None, tail: int = 4000) -> str:
        out = []
        for n in nodes or self.nodes:
            for what, p in (("ha-crmd", self.crmd.get(n)), ("ha-heartbeat", self.hb.procs.get(n))):
                if p is not None:
                    out.append(f"----- {n} {what} -----\n{p.output()[-tail:]}")
        return "\n".join(out)

    def observer(self, probes: Dict[str, Callable[[NodeView], bool]], interval: float = 0.025) -> Observer:
        return Observer(self, probes, interval)


def send_signal(p: Proc, sig: int = signal.SIGTERM) -> None:
    p.signal(sig)
