"""QEMU VM harness: boot Debian's kernel with a small initramfs (busybox + ip_vs + 9p modules) that
chroots into the host's root filesystem (9p, read-only) and runs one command against the VM's kernel.

Used for the IPVS tests: this host's kernel has no IPVS, the VM's (Debian's stock kernel) does.

    from hadaemon.testing.qemu import VM
    result = VM().run("ipvsadm -Ln")        # -> VMResult(returncode, output, boot_seconds, seconds)

The command runs as root inside the chroot with /proc, /sys, /dev, and tmpfs on /tmp and /run; the
host's files (the repo, its .venv, ipvsadm) are visible read-only. A writable share of a host temp
directory carries the command script in and its output and exit status out; the serial console carries
the boot log (returned as `console`). The VM powers itself off after the command.
"""
from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("HADAEMON_CACHE", "/var/cache/hadaemon"))
INITRAMFS_VERSION = "5"
REPO = Path(__file__).resolve().parents[2]
# Modules the VM loads (modprobe -D resolves their dependencies against the VM kernel's modules).
MODULES = (
    "virtio_pci", "9pnet_virtio", "9p",
    "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_wlc", "ip_vs_lc", "ip_vs_mh", "ip_vs_dh",
    "ip_vs_sed", "ip_vs_nq", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_fo", "ip_vs_ovf",
    "veth", "bridge",          # namespaces inside the VM: a director, real servers and a client on a bridge
)
MARK = "HADAEMON-VM"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /root /out
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do
    insmod "/modules/$m" 2>/dev/null || echo "$MARK insmod failed: $m"
done < /modules/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /root || echo "$MARK no hostroot"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out || echo "$MARK no out share"
mount -t proc proc /root/proc
mount -t sysfs sys /root/sys
mount -t devtmpfs dev /root/dev
mount -t tmpfs tmpfs /root/tmp
mount -t tmpfs tmpfs /root/run
# The repository (and its .venv) gets a share of its own: a checkout under /tmp or /run would
# otherwise be hidden by the tmpfs mounts above.
if [ -f /out/repo_path ]; then
    repo=$(cat /out/repo_path)
    mkdir -p "/root$repo" 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 repo "/root$repo" || echo "$MARK no repo share"
fi
mkdir -p /root/run/vmout
mount --bind /out /root/run/vmout
ip link set lo up
echo "$MARK booted $(cut -d' ' -f1 /proc/uptime)"
chroot /root /bin/sh -c 'cd /run/vmout && . ./env.sh; exec /bin/sh ./cmd.sh' > /out/output 2>&1
echo $? > /out/rc
sync
echo "$MARK done $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
""".replace("$MARK", MARK)


@dataclass
class VMResult:
    returncode: int
    output: str           # stdout + stderr of the command
    boot_seconds: float   # VM uptime when the command started (kernel + initramfs + mounts)
    seconds: float        # wall-clock time of the whole run on the host
    console: str          # serial console log


def kernel_version() -> str:
    """The newest installed Debian kernel with modules (e.g. 6.1.0-57-amd64)."""
    versions = [Path(p).name[len("vmlinuz-"):] for p in glob.glob("/boot/vmlinuz-*")]
    versions = [v for v in versions if Path("/lib/modules", v, "modules.dep").exists()]
    if not versions:
        raise FileNotFoundError("no /boot/vmlinuz-* with modules in /lib/modules (install linux-image-amd64)")
    return sorted(versions, key=lambda v: [int(x) if x.isdigit() else x for x in re.split(r"[.-]", v)])[-1]


def available() -> str:
    """'' when a VM can be booted here, else the reason it cannot."""
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 not installed"
    if not Path("/bin/busybox").exists():
        return "busybox(-static) not installed"
    try:
        kernel_version()
    except FileNotFoundError as e:
        return str(e)
    if os.geteuid() != 0:
        return "needs root (reads /boot/vmlinuz, writes the cache)"
    return ""


def module_files(version: str) -> list:
    """The .ko files to load, in dependency order (from `modprobe -D` against the VM kernel)."""
    order = []
    for name in MODULES:
        out = subprocess.run(["modprobe", "-D", "-S", version, name], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod" and parts[1] not in order:
                order.append(parts[1])
    return order


def build_initramfs(version: str | None = None) -> Path:
    """The cached initramfs (gzip cpio) for the kernel `version`; built on first use."""
    version = version or kernel_version()
    busybox = Path("/bin/busybox")
    if b"/lib64/ld-linux" in busybox.read_bytes()[:4096] or b"/lib/ld-linux" in busybox.read_bytes()[:4096]:
        raise RuntimeError("/bin/busybox is dynamically linked (install busybox-static)")
    modules = module_files(version)
    digest = hashlib.sha256("\n".join([INITRAMFS_VERSION, version, INIT, *modules]).encode()).hexdigest()[:12]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / f"initramfs-ipvs-{version}-{digest}.cpio.gz"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="hd-initramfs-") as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "modules").mkdir()
        names = []
        for path in modules:
            name = Path(path).name
            data = Path(path).read_bytes()
            if name.endswith(".xz"):
                name = name[:-3]
                data = subprocess.run(["xz", "-dc"], input=data, capture_output=True, check=True).stdout
            (root / "modules" / name).write_bytes(data)
            names.append(name)
        (root / "modules" / "order").write_text("\n".join(names) + "\n")
        (root / "init").write_text(INIT)
        (root / "init").chmod(0o755)
        cpio = newc_archive(root)
        tmp_target = target.with_suffix(".tmp")
        tmp_target.write_bytes(gzip.compress(cpio, 6))
        os.replace(tmp_target, target)
    for old in CACHE_DIR.glob(f"initramfs-ipvs-{version}-*.cpio.gz"):   # earlier builds for this kernel
        if old != target:
            old.unlink(missing_ok=True)
    return target


def newc_archive(root: Path) -> bytes:
    """A cpio archive (newc format, what the kernel unpacks as initramfs) of the tree under root."""
    out = bytearray()
    ino = 0

    def entry(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        ino += 1
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_dir():
            entry(rel, 0o040755, b"")
        else:
            entry(rel, 0o100000 | (st.st_mode & 0o7777), path.read_bytes())
    entry("TRAILER!!!", 0, b"")
    return bytes(out)


class VM:
    """One-shot VM: `run(command)` boots, runs `command` (a shell string) in the host-root chroot, powers off."""

    def __init__(self, memory_mb: int = 1024, version: str | None = None):
        self.version = version or kernel_version()
        self.memory_mb = memory_mb

    def run(self, command: str, timeout: float = 600, env: dict | None = None) -> VMResult:
        initrd = build_initramfs(self.version)
        with tempfile.TemporaryDirectory(prefix="hd-vm-") as out:
            outdir = Path(out)
            (outdir / "cmd.sh").write_text("set -e\n" + command + "\n")
            envlines = [f"export {k}='{v}'" for k, v in (env or {}).items()]
            envlines.append("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            envlines.append("export HOME=/tmp")
            (outdir / "env.sh").write_text("\n".join(envlines) + "\n")
            (outdir / "repo_path").write_text(str(REPO))
            argv = [
                "qemu-system-x86_64", "-accel", "tcg", "-m", str(self.memory_mb), "-smp", "1",
                "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
                "-kernel", f"/boot/vmlinuz-{self.version}", "-initrd", str(initrd),
                "-append", "console=ttyS0 quiet panic=-1",
                "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
                "-virtfs", f"local,path={outdir},mount_tag=out,security_model=none",
                "-virtfs", f"local,path={REPO},mount_tag=repo,security_model=none,readonly=on,multidevs=remap",
            ]
            start = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            try:
                console, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                console, _ = proc.communicate()
                raise TimeoutError(f"VM did not finish within {timeout}s; console:\n"
                                   + console.decode(errors="replace")[-4000:]) from None
            seconds = time.monotonic() - start
            text = console.decode(errors="replace")
            rc_file = outdir / "rc"
            if not rc_file.exists():
                raise RuntimeError("VM finished without running the command; console:\n" + text[-4000:])
            booted = re.search(MARK + r" booted ([0-9.]+)", text)
            return VMResult(
                returncode=int(rc_file.read_text().strip() or 255),
                output=(outdir / "output").read_text(errors="replace"),
                boot_seconds=float(booted.group(1)) if booted else -1.0,
                seconds=seconds,
                console=text,
            )
