"""Corosync 3 on a namespace Cluster: one corosync per node, each in its network namespace and in a mount
namespace of its own where /etc/corosync, /var/lib/corosync and /run/corosync are the node's directories
(tests and bench of ha-heartbeat's `stack corosync`). Clients reach their node's corosync through libqb's
abstract unix sockets, which belong to the network namespace: ha-heartbeat run with Cluster.spawn in the
node's namespace talks to that node's corosync.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, Sequence, Tuple

from hadaemon.testing.procs import Proc, run_cmd, wait_until

__all__ = ["CorosyncCluster", "corosync_missing"]

MOUNTS = ("/etc/corosync", "/var/lib/corosync", "/run/corosync")


def corosync_missing() -> str | None:
    """None when corosync, corosync-quorumtool and unshare are installed, else what is missing."""
    for tool in ("corosync", "corosync-quorumtool", "corosync-cmapctl", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian: corosync, util-linux)"
    from hadaemon.io.corosync import available

    return available()


class CorosyncCluster:
    """Writes corosync.conf for every node of a hadaemon.testing.netns.Cluster and runs corosync -f.

    token: totem token timeout in ms (corosync adds token_coefficient, default 650 ms, per node above 2:
    the runtime token of 32 nodes is token + 19.5 s unless token_coefficient is given); links: knet links (one per cluster link used). Node ids are 1..N in
    the order of `nodes`.
    """

    def __init__(self, cluster, nodes: Sequence[str] | None = None, token: int = 1000, links: int = 1,
                 name: str = "hdtest", realtime: bool = False, token_coefficient: int | None = None):
        self.c = cluster
        self.nodes = list(nodes or cluster.nodes)
        self.token = token
        self.links = links
        self.name = name
        self.realtime = realtime
        self.token_coefficient = token_coefficient   # None: corosync's default (650 ms per node above 2)
        self.procs: Dict[str, Proc] = {}

    def nodeid(self, node: str) -> int:
        return self.nodes.index(node) + 1

    def dir(self, node: str) -> Path:
        d = self.c.workdir / "corosync" / node
        for sub in ("etc", "lib", "run"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        return d

    def conf_text(self) -> str:
        entries = []
        for n in self.nodes:
            rings = "".join(f"        ring{k}_addr: {self.c.addr(n, k)}\n" for k in range(self.links))
            entries.append(f"    node {{\n{rings}        name: {n}\n        nodeid: {self.nodeid(n)}\n    }}\n")
        return (
            "totem {\n    version: 2\n    cluster_name: " + self.name + "\n    transport: knet\n"
            f"    token: {self.token}\n"
            + ("" if self.token_coefficient is None else f"    token_coefficient: {self.token_coefficient}\n")
            + "    crypto_cipher: none\n    crypto_hash: none\n    ip_version: ipv4\n}\n"
            "nodelist {\n" + "".join(entries) + "}\n"
            "quorum {\n    provider: corosync_votequorum\n}\n"
            # no realtime scheduling unless asked: the test machine is shared
            + ("" if self.realtime else "system {\n    sched_rr: no\n}\n") +
            "logging {\n    to_stderr: yes\n    to_syslog: no\n    to_logfile: no\n    timestamp: on\n}\n")

    def start(self, node: str) -> Proc:
        d = self.dir(node)
        (d / "etc" / "corosync.conf").write_text(self.conf_text())
        for m in MOUNTS[:2]:
            Path(m).mkdir(parents=True, exist_ok=True)   # mount points (empty on the host if not there)
        # a tmpfs on /run first: corosync's lock file is /run/corosync.pid, outside /run/corosync
        binds = "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/corosync && " + " && ".join(
            f"mount --bind {d / sub} {m}" for sub, m in zip(("etc", "lib", "run"), MOUNTS))
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{binds} && exec corosync -f"]
        p = self.c.spawn(node, argv, name="corosync")
        self.procs[node] = p
        return p

    def start_all(self) -> None:
        for n in self.nodes:
            self.start(n)

    def quorumtool(self, node: str) -> str:
        cp = run_cmd(["ip", "netns", "exec", self.c.netns(node), "corosync-quorumtool", "-s"], check=False,
                     timeout=15)
        return cp.stdout

    def members_seen(self, node: str) -> int:
        """How many members node's corosync has in its ring (0 when it does not answer)."""
        for line in self.quorumtool(node).splitlines():
            if line.strip().startswith("Total votes:"):
                return int(line.split(":")[1])
        return 0

    def wait_ring(self, nodes: Sequence[str] | None = None, count: int | None = None, timeout: float = 60) -> None:
        nodes = list(nodes or self.nodes)
        want = count or len(self.nodes)
        for n in nodes:
            p = self.procs[n]
            wait_until(lambda n=n, p=p: self.members_seen(n) == want or not p.alive(), timeout, interval=0.3,
                       message=f"corosync on {n} to see {want} members")
            if not p.alive():
                raise RuntimeError(f"corosync on {n} exited:\n{p.output()[-3000:]}")

    def mounts(self, node: str) -> Tuple[str, Dict[str, str]]:
        """The running corosync's mount namespace (the /proc/PID/ns/mnt link) and, for each of MOUNTS, the
        root of the file system mounted there, from /proc/PID/mountinfo (fields 4 and 5)."""
        pid = self.procs[node].pid   # ip netns exec, unshare and sh all exec: the pid is corosync's
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if comm != "corosync":
            raise RuntimeError(f"{node}: pid {pid} is {comm!r}, not corosync")
        ns = os.readlink(f"/proc/{pid}/ns/mnt")
        roots: Dict[str, str] = {}
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            f = line.split()
            if len(f) > 4 and f[4] in MOUNTS:
                roots[f[4]] = f[3]   # the last mount on a point is the visible one
        return ns, roots

    def stop(self, node: str) -> None:
        p = self.procs.get(node)
        if p is not None and p.alive():
            p.terminate()
