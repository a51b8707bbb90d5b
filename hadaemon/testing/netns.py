"""Namespace clusters for tests: node/client/host netns on per-link bridges, faults, processes, buses."""
from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Set

from hadaemon.testing.dbus import PrivateBus
from hadaemon.testing.procs import (CommandError, HarnessError, Proc, base_env, kill_orphans, pid_alive, run_cmd,
                                   wait_until)

__all__ = ["Cluster", "Capture", "HarnessError", "check_prerequisites", "cleanup_stale", "cluster_fixture"]

_counter = itertools.count()
_live: Set[Cluster] = set()  # strong refs: an unreferenced cluster is still cleaned at exit
_safety_net = False
_checked = False
_NAME_RE = re.compile(r"^hd(\d+)([a-z]+)-")
NFT_TABLE = "hadaemon"


def _alpha(n: int) -> str:
    s = ""
    while True:
        s = chr(ord("a") + n % 26) + s
        n = n // 26 - 1
        if n < 0:
            return s


def check_prerequisites() -> None:
    """Raise HarnessError with a clear message unless root, ip, nft and bridges work here."""
    global _checked
    if _checked:
        return
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (network namespaces, bridges, nftables)")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            problems.append(f"'{tool}' not found (apt-get install {pkg})")
    if not problems and not os.path.isdir("/sys/module/bridge"):
        run_cmd(["modprobe", "bridge"], check=False)  # built-in bridges may not show there; start() checks
    if problems:
        raise HarnessError("namespace cluster prerequisites missing: " + "; ".join(problems))
    _checked = True


def _close_all() -> None:
    for c in list(_live):
        try:
            c.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_signal(signum, frame):  # pragma: no cover - exercised by killing a test run
    raise SystemExit(128 + signum)


def _install_safety_net() -> None:
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def _ns_pids(ns: str) -> List[int]:
    cp = run_cmd(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in cp.stdout.split() if x.isdigit()]


def _delete_ns(ns: str) -> None:
    for pid in _ns_pids(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    run_cmd(["ip", "netns", "del", ns], check=False)


def cleanup_stale(prefix: str = "hd", force: bool = False) -> List[str]:
    """Delete namespaces (with their processes, bridges, nft tables), workdirs and nspawn containers
    left by crashed runs.

    Only names made by the harness ("hd<pid><letters>-...") whose creating pid is gone are removed,
    unless force=True (then every namespace starting with prefix goes); processes spawned through
    Proc by a test process that is gone are killed too. Returns what was removed.
    """
    removed = [f"pid {pid}" for pid in kill_orphans()]
    cp = run_cmd(["ip", "netns", "list"], check=False)
    for line in cp.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns.startswith(prefix):
            continue
        m = _NAME_RE.match(ns)
        if not force and (m is None or pid_alive(int(m.group(1)))):
            continue
        _delete_ns(ns)
        removed.append(ns)
    from hadaemon.testing.nspawn import kill_container_tree, unmount_tree

    for d in Path(tempfile.gettempdir()).glob(prefix + "*"):
        m = _NAME_RE.match(d.name)
        if d.is_dir() and m and (force or not pid_alive(int(m.group(1)))):
            kill_container_tree(d / "root")  # nspawn containers outlive their test process
            unmount_tree(d)
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


class Capture:
    """tcpdump running in a namespace writing a pcap; stop() returns the pcap path."""

    def __init__(self, cluster: Cluster, name: str, bpf: str, count: int | None, iface: str):
        self.path = cluster.workdir / f"{name}-{next(_counter)}.pcap"
        argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-w", str(self.path)]
        if count:
            argv += ["-c", str(count)]
        argv += bpf.split() if bpf else []
        self.proc = Proc(argv, self.path.with_suffix(".log"), netns=cluster.netns(name), name="tcpdump")
        cluster._procs.append(self.proc)
        try:
            wait_until(lambda: "listening on" in self.proc.output() or not self.proc.alive(), 10,
                       message="tcpdump to start")
        except TimeoutError:
            pass
        if "listening on" not in self.proc.output():
            self.proc.terminate(1)
            raise HarnessError(f"tcpdump did not start: {self.proc.output()[-1000:]}")

    def wait(self, timeout: float = 10) -> bool:
        """Wait for a count-limited capture to finish; True if it did."""
        return self.proc.wait(timeout) is not None

    def stop(self) -> Path:
        if self.proc.alive():
            self.proc.signal(signal.SIGINT)
            if self.proc.wait(5) is None:
                self.proc.terminate(1)
        return self.path

    def packets(self):
        """The captured packets as scapy objects (stops the capture first)."""
        from scapy.all import rdpcap  # imported lazily: scapy is slow to import
        self.stop()
        return list(rdpcap(str(self.path)))

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Cluster:
    """N node namespaces (+ optional client, extra hosts) joined by one bridge per link.

    Bridges live in the cluster's own switch namespace ("<prefix>-sw"), so nothing touches the
    host's network. Link k uses 10.<base>.<k>.0/24; node i is .(i+1), client .250, hosts .(100+j).
    """

    def __init__(self, nodes: Sequence[str], links: int = 1, client: bool = False,
                 prefix: str | None = None, keep: bool = False, ipv6: bool = False,
                 dbus_policy_dirs: Iterable[Path] | None = None, dbus_extra_policy: str = ""):
        if not nodes or len(nodes) > 99 or len(set(nodes)) != len(nodes):
            raise ValueError("nodes: 1..99 distinct names")
        if not 1 <= links <= 8:
            raise ValueError("links: 1..8")
        n = next(_counter)
        self.prefix = prefix or f"hd{os.getpid()}{_alpha(n)}"
        self.base = 16 + (os.getpid() * 7 + n) % 224
        self.nodes = list(nodes)
        self.links = links
        self.keep = keep
        self.ipv6 = ipv6
        self.switch = f"{self.prefix}-sw"
        self._members: Dict[str, dict] = {}
        self._procs: List[Proc] = []
        self._buses: Dict[str, PrivateBus] = {}
        self._partitions: Dict[str, tuple] = {}
        self._loss: tuple | None = None
        self._created_ns: List[str] = []
        self._closed = False
        self.workdir = Path(tempfile.gettempdir()) / f"{self.prefix}-notstarted"  # made by start()
        self._want_client = client
        self.dbus_policy_dirs = dbus_policy_dirs
        self.dbus_extra_policy = dbus_extra_policy

    # -- setup -------------------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Cluster:
        global _safety_net
        if not _safety_net:
            _install_safety_net()
            _safety_net = True
        check_prerequisites()
        self.workdir = Path(tempfile.mkdtemp(prefix=self.prefix + "-"))
        _live.add(self)
        try:
            self._add_ns(self.switch)
            self._sysctl(self.switch, "net.ipv6.conf.all.disable_ipv6", "1")
            self._sysctl(self.switch, "net.ipv6.conf.default.disable_ipv6", "1")
            for k in range(self.links):
                try:
                    run_cmd(["ip", "-n", self.switch, "link", "add", f"br{k}", "type", "bridge",
                             "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"])
                except CommandError as exc:
                    raise HarnessError(f"cannot create a Linux bridge (modprobe bridge? CONFIG_BRIDGE): {exc}") \
                        from None
                run_cmd(["ip", "-n", self.switch, "link", "set", f"br{k}", "up"])
            try:
                self._apply_nft()  # the (empty) bridge table exists from the start
            except CommandError as exc:
                raise HarnessError(f"nftables bridge family unusable in a namespace: {exc}") from None
            for i, name in enumerate(self.nodes):
                self._add_member(name, f"n{i}", i + 1, range(self.links))
            if self._want_client:
                self._add_member("client", "c0", 250, [0])
        except BaseException:
            self.close()
            raise
        return self

    def add_host(self, name: str, links: Iterable[int] = (0,)) -> str:
        """Add an extra namespace (e.g. a real server) on the given links; returns its netns name."""
        j = sum(1 for m in self._members.values() if m["kind"] == "h")
        self._add_member(name, f"h{j}", 100 + j, list(links))
        return self.netns(name)

    def _add_ns(self, ns: str) -> None:
        run_cmd(["ip", "netns", "add", ns])
        self._created_ns.append(ns)
        run_cmd(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        run_cmd(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"], check=False)

    def _add_member(self, name: str, tag: str, host: int, links: Iterable[int]) -> None:
        if name in self._members:
            raise ValueError(f"{name}: already in the cluster")
        links = list(links)
        if any(not 0 <= k < self.links for k in links):
            raise ValueError(f"{name}: links must be within 0..{self.links - 1}")
        ns = f"{self.prefix}-{name}"
        self._members[name] = {"ns": ns, "tag": tag, "host": host, "links": links, "kind": tag[0]}
        self._add_ns(ns)
        if not self.ipv6:
            self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
            self._sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
        for k in links:
            port = self.port(name, k)
            run_cmd(["ip", "link", "add", f"eth{k}", "netns", ns, "address", self.mac(name, k), "type", "veth",
                     "peer", "name", port, "netns", self.switch])
            run_cmd(["ip", "-n", self.switch, "link", "set", port, "master", f"br{k}", "up"])
            run_cmd(["ip", "-n", ns, "addr", "add", f"{self.addr(name, k)}/24", "dev", f"eth{k}"])
            run_cmd(["ip", "-n", ns, "link", "set", f"eth{k}", "up"])

    # -- naming ------------------------------------------------------------------------------------
    def _m(self, name: str) -> dict:
        try:
            return self._members[name]
        except KeyError:
            raise KeyError(f"{name}: not a member of this cluster ({', '.join(self._members)})") from None

    @property
    def members(self) -> List[str]:
        return list(self._members)

    def netns(self, name: str) -> str:
        return self._m(name)["ns"]

    def addr(self, name: str, link: int = 0) -> str:
        return f"10.{self.base}.{link}.{self._m(name)['host']}"

    def subnet(self, link: int = 0) -> str:
        return f"10.{self.base}.{link}.0/24"

    def mac(self, name: str, link: int = 0) -> str:
        return f"02:68:64:{self.base:02x}:{link:02x}:{self._m(name)['host']:02x}"

    def port(self, name: str, link: int = 0) -> str:
        """Name of the member's bridge port (veth peer) in the switch namespace."""
        return f"{self._m(name)['tag']}l{link}"

    # -- processes ---------------------------------------------------------------------------------
    def run(self, name: str, argv: Sequence[str], check: bool = False, timeout: float = 30,
            input: str | None = None, env: Dict[str, str] | None = None):
        """Run a command inside the member's namespace; CompletedProcess with text output."""
        return run_cmd(["ip", "netns", "exec", self.netns(name), *map(str, argv)], check=check,
                       timeout=timeout, input=input, env=base_env(env))

    def spawn(self, node: str, argv: Sequence[str], env: Dict[str, str] | None = None,
              name: str | None = None, cwd: str | None = None) -> Proc:
        """Start a long-running process in the member's namespace; output in workdir/logs/<node>-<name>.log."""
        label = name or os.path.basename(str(argv[0]))
        log = self.workdir / "logs" / f"{node}-{label}.log"
        p = Proc(argv, log, env=base_env(env), netns=self.netns(node), name=f"{node}/{label}",
                 cwd=cwd or str(self.workdir))
        self._procs.append(p)
        return p

    def ping(self, src: str, dst: str, link: int = 0, count: int = 1, timeout: float = 2) -> bool:
        """True if src gets at least one echo reply from dst's address on link."""
        cp = self.run(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(max(1, int(timeout))),
                            self.addr(dst, link)], timeout=timeout * count + 10)
        return cp.returncode == 0

    # -- D-Bus -------------------------------------------------------------------------------------
    def dbus(self, name: str) -> str:
        """Address of the member's private system-bus-like dbus-daemon (started on first use)."""
        bus = self._buses.get(name)
        if bus is None:
            bus = PrivateBus(netns=self.netns(name), workdir=self.workdir / f"dbus-{name}",
                             policy_dirs=self.dbus_policy_dirs, extra_policy=self.dbus_extra_policy)
            bus.start()
            self._buses[name] = bus
        return bus.address

    def dbus_env(self, name: str) -> Dict[str, str]:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.dbus(name)}

    # -- faults ------------------------------------------------------------------------------------
    def _links_of(self, name: str, link: int | None) -> List[int]:
        return list(self._m(name)["links"]) if link is None else [link]

    def cut(self, name: str, link: int | None = None) -> None:
        """ip link set eth<k> down inside the member (link=None: all its links); peers see no carrier."""
        for k in self._links_of(name, link):
            run_cmd(["ip", "-n", self.netns(name), "link", "set", f"eth{k}", "down"])

    def restore(self, name: str, link: int | None = None) -> None:
        for k in self._links_of(name, link):
            run_cmd(["ip", "-n", self.netns(name), "link", "set", f"eth{k}", "up"])

    def partition(self, name: str, link: int | None = None, peers: Iterable[str] | None = None) -> None:
        """Drop the member's frames on the bridge(s) (carrier stays up). peers: only towards those."""
        ports = [self.port(name, k) for k in self._links_of(name, link)]
        peer_ports = None
        if peers is not None:
            peer_ports = [self.port(p, k) for p in peers for k in self._m(p)["links"]]
        self._partitions[name] = (ports, peer_ports)
        self._apply_nft()

    def heal(self, name: str | None = None) -> None:
        """Undo partition() for one member (None: for all)."""
        if name is None:
            self._partitions.clear()
        else:
            self._partitions.pop(name, None)
        self._apply_nft()

    def loss(self, percent: int, nodes: Iterable[str] | None = None) -> None:
        """Drop percent% of frames at random on the bridges: all (nodes=None) or to/from those members.

        Each frame gets one chance of being dropped, so a ping round trip succeeds (1-p)^2 of the time.
        """
        if not 0 <= int(percent) <= 100:
            raise ValueError("percent: 0..100")
        ports = None
        if nodes is not None:
            ports = [self.port(n, k) for n in nodes for k in self._m(n)["links"]]
        self._loss = (int(percent), ports)
        self._apply_nft()

    def clear_loss(self) -> None:
        self._loss = None
        self._apply_nft()

    def _nft_rules(self) -> List[str]:
        def s(ports):
            return "{ " + ", ".join(f'"{p}"' for p in ports) + " }"

        rules = []
        for ports, peers in self._partitions.values():
            if peers is None:
                rules += [f"iifname {s(ports)} drop", f"oifname {s(ports)} drop"]
            elif peers:
                rules += [f"iifname {s(ports)} oifname {s(peers)} drop",
                          f"iifname {s(peers)} oifname {s(ports)} drop"]
        if self._loss and self._loss[0] > 0:
            pct, ports = self._loss
            rnd = f"numgen random mod 100 < {pct} drop"
            if ports is None:
                rules.append(rnd)
            else:
                rules += [f"iifname {s(ports)} {rnd}", f"oifname {s(ports)} iifname != {s(ports)} {rnd}"]
        return rules

    def _apply_nft(self) -> None:
        body = "".join(f"    {r}\n" for r in self._nft_rules())
        script = (f"table bridge {NFT_TABLE}\ndelete table bridge {NFT_TABLE}\n"
                  f"table bridge {NFT_TABLE} {{\n  chain forward {{\n"
                  f"    type filter hook forward priority 0; policy accept;\n{body}  }}\n}}\n")
        run_cmd(["ip", "netns", "exec", self.switch, "nft", "-f", "-"], input=script)

    def nft_ruleset(self) -> str:
        """The switch namespace's current nftables ruleset (for debugging)."""
        return run_cmd(["ip", "netns", "exec", self.switch, "nft", "list", "ruleset"]).stdout

    def tcpdump(self, name: str, bpf: str = "", count: int | None = None, iface: str = "eth0") -> Capture:
        """Start capturing in the member's namespace (running when this returns); use as a context."""
        return Capture(self, name, bpf, count, iface)

    # -- teardown ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Kill processes (by PID), stop buses, delete nft tables and namespaces; idempotent."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for p in self._procs:
            p.signal(signal.SIGTERM)
            p.signal(signal.SIGCONT)
        try:
            wait_until(lambda: not any(p.alive() for p in self._procs), 3, message="processes to exit")
        except TimeoutError:
            pass
        for p in self._procs:
            try:
                p.terminate(0.1)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        for bus in self._buses.values():
            try:
                bus.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if self.switch in self._created_ns:
            run_cmd(["ip", "netns", "exec", self.switch, "nft", "delete", "table", "bridge", NFT_TABLE],
                    check=False)
        for ns in reversed(self._created_ns):
            _delete_ns(ns)
        self._created_ns.clear()
        _live.discard(self)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:  # a warning, not an exception: it must not mask the test's own failure
            warnings.warn(f"{self.prefix}: cluster cleanup had errors: {errors}", stacklevel=2)

    def __repr__(self) -> str:
        return f"<Cluster {self.prefix} members={self.members} links={self.links}>"


def cluster_fixture(nodes: Sequence[str] = ("node1", "node2", "node3"), scope: str = "function", **kwargs):
    """Make a pytest fixture yielding a started Cluster: `cluster = cluster_fixture(["a", "b"])`."""
    import pytest

    @pytest.fixture(scope=scope)
    def _cluster():
        with Cluster(list(nodes), **kwargs) as c:
            yield c

    return _cluster
