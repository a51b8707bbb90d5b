"""Helpers for the package tests: build the RPMs with packaging/build-rpms, and boot nspawn containers
that get hadaemon only from those RPMs (installed with rpm, scriptlets and all).

The containers run Debian bookworm (the harness's cached rootfs) plus Debian's rpm, in a derived
rootfs cached beside it. Shims for the Debian root, kept here and nowhere else:
- `rpm --nodeps`: the Requires (python3-systemd, python3-pyroute2, python3-scapy, dbus, nftables)
  are satisfied by Debian packages, which the rpm database does not know;
- a .pth file in /usr/lib/python3/dist-packages naming /usr/lib/python3.X/site-packages, the RHEL
  layout the RPMs use, which Debian's python3 does not search;
- Debian's python3-dbus-next is removed, so the python3-dbus-next RPM's copy is the one imported;
- what the spec Requires is installed as the Debian package of the same name (every name in
  packaging/hadaemon.spec is also Debian's), so a dependency added to the spec reaches the containers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

from hadaemon.testing.nspawn import CACHE_DIR, Container, ensure_rootfs
from hadaemon.testing.procs import HarnessError, run_cmd

REPO = Path(__file__).resolve().parents[2]
RPM_STAMP = ".hadaemon-rpm-rootfs"
SITE = f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def ldirectord_cf(vip: str, reals: Sequence[str]) -> str:
    """The ldirectord.cf of the system tests: one virtual service VIP:80, round robin over port 8080 of each
    address in reals (masq, connect checks every 2 s, quiescent)."""
    lines = ["checktimeout=3", "checkinterval=2", "quiescent=yes", f"virtual={vip}:80"]
    lines += [f"\treal={r}:8080 masq" for r in reals]
    lines += ["\tscheduler=rr", "\tprotocol=tcp", "\tchecktype=connect"]
    return "\n".join(lines) + "\n"


def build_rpms(out: Path, release: int = 1, only: str = "") -> Dict[str, Path]:
    """Run packaging/build-rpms into out; {"hadaemon": path, "python3-dbus-next": path}."""
    env = dict(os.environ, RELEASE=str(release))
    if only:
        env["ONLY"] = only
    proc = subprocess.run([str(REPO / "packaging" / "build-rpms"), str(out)], capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rpms = {}
    for p in out.glob("*.noarch.rpm"):
        name = subprocess.run(["rpm", "-qp", "--qf", "%{NAME}", str(p)], capture_output=True, text=True,
                              check=True).stdout
        rpms[name] = p
    return rpms


def spec_requires(spec: Path = REPO / "packaging" / "hadaemon.spec") -> List[str]:
    """The Debian packages standing in for the spec's Requires: the same names (version bounds dropped), except
    python3-dbus-next, which comes from its own RPM."""
    names = []
    for line in spec.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() != "Requires" or not value.strip():
            continue
        name = value.split()[0]
        if name != "python3-dbus-next" and not name.startswith("%") and name not in names:
            names.append(name)
    return names


def ensure_rpm_rootfs(timeout: float = 900) -> Path:
    """The harness's bookworm rootfs plus Debian's rpm and the Debian packages of the spec's Requires (apt-get
    inside systemd-nspawn), cached and rebuilt when the base rootfs or the Requires change. Built beside the
    cache entry and renamed into place."""
    base = ensure_rootfs()
    debs = ["rpm", *spec_requires()]
    stamp_text = (base / ".hadaemon-rootfs").read_text() + " ".join(debs) + "\n"
    root = CACHE_DIR / "rootfs-bookworm-rpm"
    if (root / RPM_STAMP).exists() and (root / RPM_STAMP).read_text() == stamp_text:
        return root
    import fcntl
    import time
    fd = os.open(CACHE_DIR / "rootfs-bookworm-rpm.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessError("timed out waiting for another rpm rootfs build") from None
                time.sleep(1)
        if (root / RPM_STAMP).exists() and (root / RPM_STAMP).read_text() == stamp_text:
            return root
        tmp = CACHE_DIR / f"rootfs-bookworm-rpm.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        run_cmd(["cp", "-a", str(base), str(tmp)], timeout=timeout)
        cp = run_cmd(["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", str(tmp), "--pipe",
                      "--setenv=DEBIAN_FRONTEND=noninteractive", "sh", "-c",
                      "apt-get update -q && apt-get install -y -q --no-install-recommends "
                      + " ".join(debs) + " && apt-get clean"],
                     check=False, timeout=timeout)
        if cp.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise HarnessError(f"installing {' '.join(debs)} into the rootfs failed:\n{cp.stdout[-2000:]}{cp.stderr[-2000:]}")
        (tmp / "etc/machine-id").write_text("")
        (tmp / RPM_STAMP).write_text(stamp_text)
        if root.exists():
            old = CACHE_DIR / f"rootfs-bookworm-rpm.old-{os.getpid()}"
            root.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(root)
        return root
    finally:
        os.close(fd)


class PackageContainer(Container):
    """A container with nothing of hadaemon from the checkout: no wrappers, units or policies copied in,
    no PYTHONPATH (the harness's bind mount of the checkout at /opt/hadaemon stays, unused)."""

    def _install(self) -> None:
        self.write_file("/etc/hostname", self.name + "\n")
        self.write_file("/usr/lib/python3/dist-packages/zz-rhel-site-packages.pth", SITE + "\n")

    def run(self, argv, check=False, timeout=60, input=None, env=None):
        env = dict(env or {})
        env.setdefault("PYTHONPATH", "")
        return super().run(argv, check=check, timeout=timeout, input=input, env=env)

    def rpm(self, *args: str, files: List[Path] = (), timeout: float = 300):
        """rpm ARGS [files copied into the container]; CompletedProcess."""
        names = []
        for f in files:
            dest = self.path(f"/root/rpms/{f.name}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            names.append(f"/root/rpms/{f.name}")
        return self.run(["rpm", *args, *names], timeout=timeout)

    def install_packages(self, rpms: Dict[str, Path]) -> None:
        """rpm -i both RPMs (the Debian shims: --nodeps, Debian's python3-dbus-next removed first)."""
        cp = self.run(["dpkg", "--purge", "--force-depends", "python3-dbus-next"], timeout=120)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        cp = self.rpm("-i", "--nodeps", files=[rpms["python3-dbus-next"], rpms["hadaemon"]])
        assert cp.returncode == 0, cp.stdout + cp.stderr
