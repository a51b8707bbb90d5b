"""The observer of a CrmCluster (or PacemakerCluster): every node's ground truth sampled from the host.

The observer samples the ground truth of every node every ``interval`` seconds from the host (no
daemon involved): VIPs from /proc/ANCHOR/net/fib_trie (a local address on an interface that is up),
mounts from /proc/ANCHOR/mounts, pidfiles from the node's run directory, and records every interval
during which a resource was active on two nodes at once.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Sequence, Tuple

from hadaemon.testing.procs import pid_alive, wait_until

if TYPE_CHECKING:
    from hadaemon.testing.crm import CrmCluster


def _read(path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def local_addrs(pid: int) -> set:
    """Local IPv4 addresses on interfaces that are up, in the network namespace of pid."""
    out, last = set(), None
    for line in _read(f"/proc/{pid}/net/fib_trie").splitlines():
        s = line.strip()
        if s.startswith("|--"):
            last = s[3:].strip()
        elif "/32 host LOCAL" in s and last:
            out.add(last)
    return out


def connected(pid: int) -> bool:
    """True if the namespace of pid has a route through an eth* interface (i.e. a link that is up)."""
    for line in _read(f"/proc/{pid}/net/route").splitlines()[1:]:
        if line.split("\t", 1)[0].startswith("eth"):
            return True
    return False


# -- probes: fn(ctx) -> bool, ctx = NodeView ----------------------------------------------------------
class NodeView:
    """What a probe may look at for one node at one instant."""

    def __init__(self, name: str, anchor: int | None, rundir: Path):
        self.name = name
        self.anchor = anchor
        self.rundir = rundir
        self._addrs = None
        self._mounts = None

    @property
    def addrs(self) -> set:
        if self._addrs is None:
            self._addrs = local_addrs(self.anchor) if self.anchor else set()
        return self._addrs

    @property
    def mounts(self) -> set:
        if self._mounts is None:
            text = _read(f"/proc/{self.anchor}/mounts") if self.anchor else ""
            self._mounts = {ln.split()[1] for ln in text.splitlines() if len(ln.split()) > 1}
        return self._mounts


def vip(addr: str) -> Callable[[NodeView], bool]:
    return lambda v: addr in v.addrs


def mounted(path: str) -> Callable[[NodeView], bool]:
    return lambda v: str(path) in v.mounts


def _pid_alive(pid: int) -> bool:
    """procs.pid_alive, and not a zombie (a zombie is not running)."""
    return pid_alive(pid) and "State:\tZ" not in _read(f"/proc/{pid}/status")


def pidfile(rel: str) -> Callable[[NodeView], bool]:
    """A pidfile under the node's /run (rel like "httpd.pid") naming a live process."""
    def probe(v: NodeView) -> bool:
        text = _read(v.rundir / rel).strip()
        return text.isdigit() and _pid_alive(int(text))
    return probe


def runfile(rel: str) -> Callable[[NodeView], bool]:
    """A file exists under the node's /run (e.g. ocf:pacemaker:Dummy's "Dummy-RSC.state")."""
    return lambda v: (v.rundir / rel).exists()


def dummy(rsc: str) -> Callable[[NodeView], bool]:
    """ocf:heartbeat:Dummy's state file (HA_RSCTMP=/run/resource-agents)."""
    return lambda v: (v.rundir / "resource-agents" / f"Dummy-{rsc}.state").exists()


class Observer:
    """Samples every node's ground truth; records intervals with a resource active on 2+ nodes.

    probes: {resource: probe}. A resource counts as active on a node only while the node is
    connected (not unplugged by CrmCluster.cut, and one of its links up): an isolated node's VIP
    answers nobody. `raw` overlaps ignore that and are recorded too.
    """

    def __init__(self, crm: CrmCluster, probes: Dict[str, Callable[[NodeView], bool]], interval: float = 0.025):
        self.crm = crm
        self.probes = dict(probes)
        self.interval = interval
        self.lock = threading.Lock()
        self.current: Dict[str, List[str]] = {r: [] for r in self.probes}
        self.raw: Dict[str, List[str]] = {r: [] for r in self.probes}
        self.overlaps: List[Tuple[float, float, str, Tuple[str, ...]]] = []
        self.raw_overlaps: List[Tuple[float, float, str, Tuple[str, ...]]] = []
        self._open: Dict[str, tuple] = {}
        self._open_raw: Dict[str, tuple] = {}
        self.samples = 0
        self.changes: List[Tuple[float, str, Tuple[str, ...]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crm-observer", daemon=True)

    def start(self) -> Observer:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        now = time.monotonic()
        for r, (t0, nodes) in list(self._open.items()):
            self.overlaps.append((t0, now, r, nodes))
        for r, (t0, nodes) in list(self._open_raw.items()):
            self.raw_overlaps.append((t0, now, r, nodes))
        self._open.clear()
        self._open_raw.clear()

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception as exc:  # noqa: BLE001 - an observer must never die silently
                print(f"observer: sample failed: {exc!r}", file=sys.stderr)
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        now = time.monotonic()
        views = {n: NodeView(n, self.crm.anchor_pid(n), self.crm.rundir(n)) for n in self.crm.nodes}
        conn = {n: bool(v.anchor) and not self.crm.is_cut(n) and connected(v.anchor) for n, v in views.items()}
        with self.lock:
            self.samples += 1
            for r, probe in self.probes.items():
                raw = tuple(sorted(n for n, v in views.items() if v.anchor and probe(v)))
                if len(raw) > 1:
                    raw = self._confirm(raw, views, probe)
                act = tuple(n for n in raw if conn[n])
                if list(act) != self.current[r]:
                    self.changes.append((now, r, act))
                self.current[r] = list(act)
                self.raw[r] = list(raw)
                self._track(self._open, self.overlaps, r, act, now)
                self._track(self._open_raw, self.raw_overlaps, r, raw, now)

    @staticmethod
    def _confirm(raw: tuple, views: Dict[str, NodeView], probe) -> tuple:
        """The nodes of raw on which the resource was active at one instant. The nodes were read one
        after the other, so a handoff between two reads (the old node's address removed, then the new
        node's added: ~0.1-0.3 ms apart) shows both. Read them all again, after every first read: a node
        active in both reads was active all along in between (no resource leaves and comes back
        within a millisecond), so the nodes active in both reads were active together at the moment
        of the latest first read."""
        again = {n: NodeView(n, views[n].anchor, views[n].rundir) for n in raw}
        return tuple(n for n in raw if again[n].anchor and probe(again[n]))

    @staticmethod
    def _track(open_: dict, done: list, r: str, nodes: tuple, now: float) -> None:
        if len(nodes) > 1:
            if r not in open_:
                open_[r] = (now, nodes)
        elif r in open_:
            t0, n = open_.pop(r)
            done.append((t0, now, r, n))

    # -- queries ----------------------------------------------------------------------------------
    def where(self, rsc: str) -> List[str]:
        with self.lock:
            return list(self.current[rsc])

    def wait(self, rsc: str, nodes: Sequence[str], timeout: float = 60) -> float:
        """Wait until rsc is active exactly on nodes (e.g. ["admin2"], or [] for stopped); returns the time."""
        want = sorted(nodes)
        wait_until(lambda: sorted(self.where(rsc)) == want, timeout, interval=self.interval,
                   message=f"{rsc} active on {want or 'no node'} (now on {self.where(rsc)})")
        return time.monotonic()

    def wait_released(self, node: str, resources: Sequence[str], timeout: float = 60) -> None:
        """Wait until none of resources is active on node, even disconnected (an isolated node giving
        up its resources, e.g. through a pingd rule)."""
        def released():
            with self.lock:
                return not any(node in self.raw[r] for r in resources)
        wait_until(released, timeout, interval=self.interval, message=f"{node} to release {list(resources)}")

    def dual_active(self, raw: bool = False) -> List[tuple]:
        """Overlaps so far, plus any still open (t0, t1, resource, nodes)."""
        now = time.monotonic()
        with self.lock:
            done = list(self.raw_overlaps if raw else self.overlaps)
            still = self._open_raw if raw else self._open
            return done + [(t0, now, r, n) for r, (t0, n) in still.items()]

    def mark(self, text: str) -> None:
        """Note a step of the test in the timeline (shown by timeline())."""
        with self.lock:
            self.changes.append((time.monotonic(), "#", (text,)))

    def timeline(self) -> str:
        with self.lock:
            if not self.changes:
                return ""
            t0 = self.changes[0][0]
            return "\n".join(f"{t - t0:8.3f} {r} {' '.join(n) or '-'}" for t, r, n in self.changes)

    def describe(self, raw: bool = False) -> str:
        t0 = self.changes[0][0] if self.changes else 0
        return "; ".join(f"{r} on {','.join(n)} for {(t1 - ta) * 1000:.0f} ms at {ta - t0:.3f}"
                         for ta, t1, r, n in self.dual_active(raw)) or "none"
