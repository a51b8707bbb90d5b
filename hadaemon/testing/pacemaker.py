"""Debian's Pacemaker + Corosync on a namespace Cluster, for comparison benchmarks (bench/failover.py).

Each node gets a mount + UTS namespace held by an anchor process (as hadaemon.testing.crm does), where
/run, /dev/shm (libqb's IPC buffers), /var/lib/pacemaker, /var/log/pacemaker, /etc/corosync and
/var/lib/corosync are the node's own directories, /etc/init.d has the cluster's LSB scripts on top
(overlay) and the hostname is the node's name. corosync -f and pacemakerd run inside it (nsenter), so
the daemons of one node reach only that node's corosync (libqb's abstract sockets belong to the network
namespace, its shared memory to /dev/shm). The CIB is loaded with cibadmin in the node's namespaces.

The interface the hadaemon.testing.crm Observer needs (nodes, anchor_pid, rundir, is_cut) and cut /
restore (the node's switch ports) are the same as CrmCluster's, so the same observer and client measure
both stacks.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Sequence

from hadaemon.testing.crm import Observer
from hadaemon.testing.procs import Proc, base_env, run_cmd, wait_until

__all__ = ["PacemakerCluster", "pacemaker_missing"]

_ANCHOR_SH = r"""
set -e
d=$1
hostname "$2"
mount --bind "$d/run" /run
mkdir -p /run/lock /run/resource-agents /run/crm /run/corosync
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount --bind "$d/lib" /var/lib/pacemaker
mount --bind "$d/log" /var/log/pacemaker
mount --bind "$d/etc-corosync" /etc/corosync
mount --bind "$d/lib-corosync" /var/lib/corosync
if [ -n "$(ls -A "$d/initd")" ]; then
  mount -t overlay overlay -o "lowerdir=$d/initd:/etc/init.d" /etc/init.d
fi
echo anchor-ready
exec sleep infinity
"""


def pacemaker_missing() -> str | None:
    """None when pacemakerd, corosync, cibadmin, crm_mon, nsenter and unshare are installed."""
    for tool in ("pacemakerd", "corosync", "cibadmin", "crm_attribute", "crm_mon", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian: pacemaker, corosync, util-linux)"
    for d in ("/var/lib/pacemaker", "/var/log/pacemaker", "/etc/corosync", "/var/lib/corosync"):
        if not os.path.isdir(d):
            return f"{d} missing (mount point for the node's own copy)"
    return None


class PacemakerCluster:
    """corosync (token ms, two_node) + pacemakerd on every node of a netns Cluster."""

    def __init__(self, cluster, initd: Dict[str, str] | None = None, token: int = 1000,
                 nodes: Sequence[str] | None = None):
        self.c = cluster
        self.nodes = list(nodes or cluster.nodes)
        self.initd = dict(initd or {})
        self.token = token
        self.anchors: Dict[str, Proc] = {}
        self.procs: Dict[str, List[Proc]] = {}
        self._cut: set = set()

    # -- the Observer's interface ------------------------------------------------------------------
    def dir(self, node: str) -> Path:
        return Path(self.c.workdir) / "pcmk" / node

    def rundir(self, node: str) -> Path:
        return self.dir(node) / "run"

    def anchor_pid(self, node: str) -> int | None:
        a = self.anchors.get(node)
        return a.pid if a is not None and a.alive() else None

    def is_cut(self, node: str) -> bool:
        return node in self._cut

    def observer(self, probes, interval: float = 0.025) -> Observer:
        return Observer(self, probes, interval)

    # -- set-up --------------------------------------------------------------------------------------
    def corosync_conf(self) -> str:
        entries = "".join(f"    node {{\n        ring0_addr: {self.c.addr(n)}\n        name: {n}\n"
                          f"        nodeid: {i + 1}\n    }}\n" for i, n in enumerate(self.nodes))
        return ("totem {\n    version: 2\n    cluster_name: pcmkbench\n    transport: knet\n"
                f"    token: {self.token}\n    crypto_cipher: none\n    crypto_hash: none\n    ip_version: ipv4\n}}\n"
                "nodelist {\n" + entries + "}\n"
                "quorum {\n    provider: corosync_votequorum\n"
                + ("    two_node: 1\n" if len(self.nodes) == 2 else "") + "}\n"
                "system {\n    sched_rr: no\n}\n"
                "logging {\n    to_stderr: yes\n    to_syslog: no\n    to_logfile: no\n    timestamp: on\n}\n")

    def _prepare(self, node: str) -> None:
        import grp
        import pwd

        d = self.dir(node)
        for sub in ("run", "log", "etc-corosync", "lib-corosync", "initd", "lib/cib", "lib/pengine",
                    "lib/blackbox", "lib/cores"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        uid, gid = pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid
        for sub in ("lib", "lib/cib", "lib/pengine", "lib/blackbox", "lib/cores", "log"):
            os.chown(d / sub, uid, gid)
            os.chmod(d / sub, 0o770)
        (d / "etc-corosync" / "corosync.conf").write_text(self.corosync_conf())
        for name, text in self.initd.items():
            p = d / "initd" / name
            p.write_text(text)
            p.chmod(0o755)

    def in_node(self, node: str, argv: Sequence[str]) -> List[str]:
        pid = self.anchor_pid(node)
        if pid is None:
            raise RuntimeError(f"{node}: no mount-namespace anchor")
        return ["nsenter", "-t", str(pid), "-m", "-n", "-u", "--", *map(str, argv)]

    def run(self, node: str, argv: Sequence[str], timeout: float = 60, check: bool = False):
        return run_cmd(self.in_node(node, argv), check=check, timeout=timeout, env=base_env(None))

    def _spawn(self, node: str, argv: Sequence[str], name: str, env: Dict[str, str] | None = None) -> Proc:
        log = Path(self.c.workdir) / "logs" / f"{node}-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        p = Proc(self.in_node(node, argv), log, env=base_env(env), name=f"{node}/{name}", cwd=str(self.c.workdir))
        self.c._procs.append(p)
        self.procs.setdefault(node, []).append(p)
        return p

    def start_node(self, node: str) -> None:
        self._prepare(node)
        script = self.dir(node) / "anchor.sh"
        script.write_text(_ANCHOR_SH)
        a = self.c.spawn(node, ["unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", str(script),
                                str(self.dir(node)), node], name="pcmk-anchor")
        self.anchors[node] = a
        wait_until(lambda: "anchor-ready" in a.output() or not a.alive(), 10, message=f"{node}'s namespace")
        if not a.alive():
            raise RuntimeError(f"{node}: mount namespace set-up failed:\n{a.output()[-2000:]}")
        self._spawn(node, ["corosync", "-f"], "corosync")
        wait_until(lambda: self.run(node, ["corosync-cfgtool", "-s"], timeout=10).returncode == 0, 30,
                   interval=0.2, message=f"corosync on {node}")
        self._spawn(node, ["pacemakerd"], "pacemakerd",
                    env={"PCMK_logfile": "/var/log/pacemaker/pacemaker.log", "PCMK_logfacility": "none",
                         "PCMK_stderr": "1"})

    def start_all(self, timeout: float = 120) -> None:
        for n in self.nodes:
            self.start_node(n)
        wait_until(lambda: all(self.dc(n) for n in self.nodes), timeout, interval=0.5,
                   message="a Pacemaker DC seen by every node")

    def dc(self, node: str) -> str:
        """The DC's name as node's crm_mon sees it ('' when none or not answering)."""
        cp = self.run(node, ["crm_mon", "-1", "--output-as=xml"], timeout=20)
        if cp.returncode != 0:
            return ""
        import xml.etree.ElementTree as ET
        try:
            root = ET.fromstring(cp.stdout)
        except ET.ParseError:
            return ""
        dc = root.find("summary/current_dc")
        if dc is None or dc.get("present") != "true":
            return ""
        online = [n.get("name") for n in root.findall("nodes/node") if n.get("online") == "true"]
        return dc.get("name", "") if len(online) == len(self.nodes) else ""

    def configure(self, node: str, resources: str, constraints: str, options: Dict[str, str]) -> None:
        for name, value in options.items():
            self.run(node, ["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
                     check=True)
        self.run(node, ["cibadmin", "--replace", "--scope", "resources", "--xml-text",
                        f"<resources>{resources}</resources>"], check=True)
        self.run(node, ["cibadmin", "--replace", "--scope", "constraints", "--xml-text",
                        f"<constraints>{constraints}</constraints>"], check=True)

    def call(self, node: str, argv: Sequence[str]) -> None:
        self.run(node, argv, check=True)

    # -- faults --------------------------------------------------------------------------------------
    def cut(self, node: str) -> None:
        self._cut.add(node)
        for k in self.c._links_of(node, None):
            run_cmd(["ip", "-n", self.c.switch, "link", "set", self.c.port(node, k), "down"])

    def restore(self, node: str) -> None:
        for k in self.c._links_of(node, None):
            run_cmd(["ip", "-n", self.c.switch, "link", "set", self.c.port(node, k), "up"])
        self._cut.discard(node)

    def logs(self, tail: int = 3000) -> str:
        out = []
        for n in self.nodes:
            for p in self.procs.get(n, []):
                out.append(f"--- {p.name}\n{p.output()[-tail:]}")
            try:
                out.append(f"--- {n} pacemaker.log\n{(self.dir(n) / 'log' / 'pacemaker.log').read_text()[-tail:]}")
            except OSError:
                pass
        return "\n".join(out)

    def close(self) -> None:
        for n in self.nodes:
            for p in reversed(self.procs.get(n, [])):
                if p.alive():
                    p.terminate()
            a = self.anchors.get(n)
            if a is not None and a.alive():
                a.terminate()
        time.sleep(0)
