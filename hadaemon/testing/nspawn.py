"""systemd-nspawn containers for tests: a cached bookworm rootfs booted with systemd as PID 1."""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

from hadaemon.testing.procs import HarnessError, Proc, run_cmd, wait_until

__all__ = ["Container", "ensure_rootfs", "console_scripts", "PACKAGES", "REPO"]

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("HADAEMON_CACHE", "/var/cache/hadaemon"))
MIRROR = os.environ.get("HADAEMON_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-systemd", "python3-dbus-next",
            "python3-pyroute2", "python3-scapy", "python3-aiohttp", "iproute2", "nftables", "iputils-ping", "procps"]
STAMP = ".hadaemon-rootfs"
# timers and gettys that only add noise (or try the network) in a test container
_MASK = ["apt-daily.timer", "apt-daily-upgrade.timer", "console-getty.service", "systemd-networkd-wait-online.service"]
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _stamp_text() -> str:
    return f"{SUITE} {MIRROR}\n" + " ".join(sorted(PACKAGES)) + "\n"


def _lock(path: Path, timeout: float):
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise HarnessError(f"timed out waiting for {path} (another rootfs build?)") from None
            time.sleep(1)


def ensure_rootfs(cache_dir: Path | None = None, timeout: float = 1800, log=print) -> Path:
    """Return the cached bookworm rootfs, debootstrapping it first if needed (once, under a lock).

    Built in a temporary directory beside the cache entry and renamed into place, so a crashed build
    never leaves a half rootfs behind. Rebuilt when the package list changes.
    """
    cache = Path(cache_dir) if cache_dir else CACHE_DIR
    root = cache / f"rootfs-{SUITE}"
    stamp = root / STAMP
    if stamp.exists() and stamp.read_text() == _stamp_text():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    fd = _lock(cache / f"rootfs-{SUITE}.lock", timeout)
    try:
        if stamp.exists() and stamp.read_text() == _stamp_text():
            return root
        if shutil.which("debootstrap") is None:
            raise HarnessError("debootstrap not found (apt-get install debootstrap)")
        for stale in cache.glob(f"rootfs-{SUITE}.[to][ml][pd]-*"):  # .tmp-PID / .old-PID of a crashed build
            unmount_tree(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = cache / f"rootfs-{SUITE}.tmp-{os.getpid()}"
        t0 = time.monotonic()
        log(f"nspawn: debootstrapping {SUITE} into {tmp} from {MIRROR} (about a minute) ...")
        cp = run_cmd(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp),
                      MIRROR], check=False, timeout=timeout)
        if cp.returncode != 0:
            logf = tmp / "debootstrap" / "debootstrap.log"
            detail = logf.read_text()[-3000:] if logf.exists() else cp.stderr[-3000:]
            unmount_tree(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise HarnessError(f"debootstrap failed ({cp.returncode}):\n{detail}")
        _customize(tmp)
        (tmp / STAMP).write_text(_stamp_text())
        if root.exists():
            old = cache / f"rootfs-{SUITE}.old-{os.getpid()}"
            root.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(root)
        log(f"nspawn: rootfs built in {time.monotonic() - t0:.1f}s")
        return root
    finally:
        os.close(fd)


def _customize(root: Path) -> None:
    run_cmd(["chroot", str(root), "groupadd", "--system", "-f", "haclient"])
    (root / "etc/machine-id").write_text("")  # each boot gets a fresh transient id
    for unit in _MASK:
        link = root / "etc/systemd/system" / unit
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/dev/null")
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def console_scripts(pyproject: Path = REPO / "pyproject.toml") -> Dict[str, str]:
    """{script name: "module:function"} from pyproject's [project.scripts] (no toml parser on 3.9)."""
    scripts, inside = {}, False
    for line in pyproject.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == "[project.scripts]"
            continue
        m = re.match(r'^([A-Za-z0-9_.-]+)\s*=\s*"([\w.]+):([\w.]+)"', line) if inside else None
        if m:
            scripts[m.group(1)] = f"{m.group(2)}:{m.group(3)}"
    return scripts


_live: List[Container] = []
_counter = [0]


def _close_all() -> None:
    for c in list(_live):
        try:
            c.close(timeout=10)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _children(pid: int) -> List[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def _mounts_under(path: Path) -> List[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted((p for p in points if p == str(path) or p.startswith(str(path) + "/")), reverse=True)


def _nspawn_pids_for(root: Path) -> List[int]:
    """PIDs of systemd-nspawn processes booting the given directory."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and str(root).encode() in argv:
            pids.append(int(entry))
    return pids


def kill_container_tree(root: Path) -> None:
    """SIGKILL nspawn processes booting root and their container PID 1 (which ends its pid namespace)."""
    for pid in _nspawn_pids_for(root):
        for kid in _children(pid):
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def unmount_tree(path: Path) -> None:
    for point in _mounts_under(path):
        if run_cmd(["umount", point], check=False).returncode != 0:
            run_cmd(["umount", "-l", point], check=False)


class Container:
    """A throwaway overlay of the cached rootfs booted by systemd-nspawn with systemd as PID 1.

    The repo is bind-mounted read-only at /opt/hadaemon (PYTHONPATH for every unit and run()), its
    units/*.service are copied to /etc/systemd/system, dbus/*.conf to /etc/dbus-1/system.d, and each
    console script gets a wrapper in /usr/local/bin (`exec python3 -c ... main()`).
    netns: a name in /run/netns (e.g. Cluster.netns("node1")); None gives a private network (lo only).
    binds / binds_ro: {host path: container path} read-write / read-only bind mounts.
    net_admin: let the container's services manage its network (CAP_NET_ADMIN, CAP_NET_RAW and a
    writable /proc/sys/net); default: on when netns is given (nspawn only grants it for
    --private-network, but a cluster node's namespace is the test's own).
    nspawn_args: extra systemd-nspawn options.
    """

    def __init__(self, netns: str | None = None, binds: Dict[str, str] | None = None,
                 rootfs: Path | None = None, name: str = "hadaemon", boot_timeout: float = 180,
                 keep: bool = False, binds_ro: Dict[str, str] | None = None, net_admin: bool | None = None,
                 nspawn_args: Sequence[str] = ()):
        self.netns = netns
        self.binds = dict(binds or {})
        self.binds_ro = dict(binds_ro or {})
        self.net_admin = (netns is not None) if net_admin is None else net_admin
        self.nspawn_args = list(nspawn_args)
        self.rootfs = rootfs
        self.name = name
        self.boot_timeout = boot_timeout
        self.keep = keep
        self.proc: Proc | None = None
        self.pid1 = 0
        self.boot_seconds = 0.0
        self.workdir: Path | None = None
        self.root: Path | None = None
        self.state = ""

    # -- setup -------------------------------------------------------------------------------------
    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Container:
        if os.geteuid() != 0:
            raise HarnessError("nspawn containers need root")
        if shutil.which("systemd-nspawn") is None:
            raise HarnessError("systemd-nspawn not found (apt-get install systemd-container)")
        rootfs = Path(self.rootfs) if self.rootfs else ensure_rootfs()
        _counter[0] += 1
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hd{os.getpid()}ct{'abcdefghij'[_counter[0] % 10]}-"))
        self.root = self.workdir / "root"
        for d in ("upper", "work", "root"):
            (self.workdir / d).mkdir()
        if not _live:
            atexit.register(_close_all)
        _live.append(self)
        try:
            run_cmd(["mount", "-t", "overlay", "overlay", "-o",
                     f"lowerdir={rootfs},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
                     str(self.root)])
            self._install()
            argv = ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
                    f"--machine={self.name}", "--console=read-only", f"--bind-ro={REPO}:/opt/hadaemon"]
            argv += [f"--bind={h}:{c}" for h, c in self.binds.items()]
            argv += [f"--bind-ro={h}:{c}" for h, c in self.binds_ro.items()]
            if self.netns:
                argv.append(f"--network-namespace-path=/run/netns/{self.netns}")
            else:
                argv.append("--private-network")
            env = dict(os.environ, SYSTEMD_LOG_COLOR="0")
            if self.net_admin:
                argv.append("--capability=CAP_NET_ADMIN,CAP_NET_RAW")
                env["SYSTEMD_NSPAWN_API_VFS_WRITABLE"] = "network"
            argv += self.nspawn_args
            t0 = time.monotonic()
            self.proc = Proc(argv, self.workdir / "console.log", env=env, name=f"nspawn/{self.name}")
            self.pid1 = wait_until(self._find_pid1, 30, 0.1, "the container's PID 1")
            self._wait_booted()
            self.boot_seconds = time.monotonic() - t0
        except BaseException:
            self.close()
            raise
        return self

    def _find_pid1(self) -> int:
        if not self.proc.alive():
            raise HarnessError(f"systemd-nspawn exited ({self.proc.returncode}):\n{self.proc.output()[-3000:]}")
        for kid in _children(self.proc.pid):
            try:
                if os.readlink(f"/proc/{kid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
                    return kid
            except OSError:
                continue
        return 0

    def _wait_booted(self) -> None:
        """Bounded `systemctl is-system-running --wait`; "offline" just means PID 1 is not listening yet."""
        deadline = time.monotonic() + self.boot_timeout
        state = ""
        while time.monotonic() < deadline:
            left = max(1.0, deadline - time.monotonic())
            try:
                cp = self.run(["systemctl", "is-system-running", "--wait"], timeout=left)
                state = cp.stdout.strip()
            except subprocess.TimeoutExpired:
                break
            if state in ("running", "degraded", "maintenance", "stopping"):
                break
            if not self.proc.alive():
                break
            time.sleep(0.2)
        self.state = state
        if state not in ("running", "degraded"):
            failed = self.run(["systemctl", "--failed", "--no-legend"]).stdout if self.proc.alive() else ""
            raise HarnessError(f"container did not boot within {self.boot_timeout:.0f}s: state {state!r}; "
                               f"failed units:\n{failed}\nconsole:\n{self.proc.output()[-3000:]}")

    def _install(self) -> None:
        r = self.root
        self.write_file("/etc/hostname", self.name + "\n")
        self.write_file("/etc/systemd/system.conf.d/hadaemon.conf",
                        "[Manager]\nDefaultEnvironment=PYTHONPATH=/opt/hadaemon PYTHONDONTWRITEBYTECODE=1\n")
        (r / "opt/hadaemon").mkdir(parents=True, exist_ok=True)
        for unit in sorted((REPO / "units").glob("*.service")):
            shutil.copy2(unit, r / "etc/systemd/system" / unit.name)
        (r / "etc/dbus-1/system.d").mkdir(parents=True, exist_ok=True)
        for conf in sorted((REPO / "dbus").glob("*.conf")):
            shutil.copy2(conf, r / "etc/dbus-1/system.d" / conf.name)
        for script, target in console_scripts().items():
            module, func = target.split(":")
            wrapper = (f"#!/bin/sh\n# {script} -> {target} from /opt/hadaemon (written by the test harness)\n"
                       f"export PYTHONPATH=/opt/hadaemon${{PYTHONPATH:+:$PYTHONPATH}}\n"
                       f"exec python3 -c 'import sys; sys.argv[0] = \"{script}\"; "
                       f"from {module} import {func}; sys.exit({func}())' \"$@\"\n")
            self.write_file(f"/usr/local/bin/{script}", wrapper, 0o755)
            usr_bin = r / "usr/bin" / script
            if not usr_bin.exists():
                usr_bin.symlink_to(f"/usr/local/bin/{script}")

    # -- use ---------------------------------------------------------------------------------------
    def path(self, container_path: str) -> Path:
        """Host path of a file inside the container (through the overlay)."""
        return self.root / container_path.lstrip("/")

    def write_file(self, container_path: str, text: str, mode: int = 0o644) -> None:
        p = self.path(container_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)

    def run(self, argv: Sequence[str], check: bool = False, timeout: float = 60, input: str | None = None,
            env: Dict[str, str] | None = None):
        """Run a command inside the container (all its namespaces) via nsenter; CompletedProcess."""
        full_env = {"PATH": CONTAINER_PATH, "PYTHONPATH": "/opt/hadaemon", "PYTHONDONTWRITEBYTECODE": "1",
                    "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "TERM": "dumb"}
        full_env.update(env or {})
        return run_cmd(["nsenter", "-t", str(self.pid1), "-a", "-r", "-w", "--", *map(str, argv)],
                       check=check, timeout=timeout, input=input, env=full_env)

    def systemctl(self, *args: str, check: bool = False, timeout: float = 60):
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def busctl(self, *args: str, check: bool = False, timeout: float = 60):
        return self.run(["busctl", "--no-pager", *args], check=check, timeout=timeout)

    def journal(self, unit: str | None = None, *extra: str) -> List[dict]:
        """journalctl -o json entries (of one unit, or all), parsed."""
        argv = ["journalctl", "--no-pager", "-o", "json"] + (["-u", unit] if unit else []) + list(extra)
        out = self.run(argv, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def wait_unit(self, unit: str, state: str = "active", timeout: float = 30) -> str:
        """Wait until `systemctl is-active unit` prints state (raises TimeoutError with status)."""
        try:
            wait_until(lambda: self.systemctl("is-active", unit).stdout.strip() == state, timeout, 0.2,
                       f"{unit} to be {state}")
        except TimeoutError as exc:
            status = self.systemctl("status", unit).stdout
            raise TimeoutError(f"{exc}\n{status}") from None
        return state

    # -- teardown ----------------------------------------------------------------------------------
    def close(self, timeout: float = 30) -> None:
        """Power off (SIGRTMIN+4 to PID 1), wait for nspawn, kill leftovers, unmount, remove the overlay."""
        if self.proc is not None:
            if self.proc.alive() and self.pid1:
                try:
                    os.kill(self.pid1, signal.SIGRTMIN + 4)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout)
            if self.root is not None:
                kill_container_tree(self.root)
            self.proc.terminate(2)
            self.proc = None
        if self.workdir is not None:
            unmount_tree(self.workdir)
            if not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _live:
            _live.remove(self)

    def __repr__(self) -> str:
        return f"<Container {self.name} pid1={self.pid1} root={self.root}>"
