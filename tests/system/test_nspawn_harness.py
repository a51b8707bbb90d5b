"""The nspawn harness boots systemd as PID 1 over the cached rootfs, inside a cluster namespace."""
import os
import time

import pytest

from hadaemon.testing.netns import Cluster
from hadaemon.testing.nspawn import Container, console_scripts

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

READY_UNIT = """\
[Unit]
Description=harness test: Type=notify via hadaemon.io.systemd.Notifier

[Service]
Type=notify
NotifyAccess=main
TimeoutStartSec=60
ExecStart=/usr/bin/python3 -c "import logging, time; \
from hadaemon.io.systemd import Notifier, setup_logging; \
log = setup_logging('hd-harness'); \
log.info('harness test event', extra={'NODE': 'node1', 'EVENT': 'ready'}); \
Notifier().ready('serving harness test'); \
time.sleep(600)"
"""

SILENT_UNIT = """\
[Service]
Type=notify
TimeoutStartSec=3
ExecStart=/bin/sleep 600
"""


def test_container_boots_runs_notify_unit_and_journals_fields(rootfs):
    with Cluster(["node1"]) as c:
        t0 = time.monotonic()
        with Container(netns=c.netns("node1"), name="node1", rootfs=rootfs) as ct:
            print(f"\ncontainer booted in {ct.boot_seconds:.1f}s (state {ct.state})")
            pid1, root, workdir = ct.pid1, ct.root, ct.workdir
            assert ct.state in ("running", "degraded")
            assert ct.run(["cat", "/proc/1/comm"], check=True).stdout.strip() == "systemd"
            # it sits in the cluster node's network namespace
            assert c.addr("node1") in ct.run(["ip", "-o", "-4", "addr"], check=True).stdout
            # the repo is importable with Debian's python3 and packages
            probe = ct.run(["python3", "-c", "import hadaemon, dbus_next, systemd.journal, pyroute2, scapy; "
                            "import hadaemon.bus.dbusnext; print(hadaemon.__file__)"], check=True)
            assert probe.stdout.startswith("/opt/hadaemon/")
            for script in console_scripts():
                assert ct.path(f"/usr/local/bin/{script}").exists()
            assert ct.run(["hactl", "--help"]).returncode == 0

            # services may manage the node's network (net_admin defaults on with a netns)
            for cmd in (["ip", "addr", "add", "192.0.2.7/32", "dev", "lo"],
                        ["sysctl", "-w", "net.ipv4.conf.lo.arp_ignore=1"]):
                cp = ct.run(["systemd-run", "--wait", "--quiet", "--pipe", *cmd], timeout=60)
                assert cp.returncode == 0, cp.stderr
            assert "192.0.2.7/32" in c.run("node1", ["ip", "-o", "addr", "show", "lo"], check=True).stdout

            ct.write_file("/etc/systemd/system/hd-harness.service", READY_UNIT)
            ct.write_file("/etc/systemd/system/hd-silent.service", SILENT_UNIT)
            ct.systemctl("daemon-reload", check=True)
            ct.systemctl("start", "hd-harness.service", check=True, timeout=90)
            assert ct.systemctl("is-active", "hd-harness.service").stdout.strip() == "active"
            status = ct.systemctl("show", "-p", "StatusText", "hd-harness.service").stdout
            assert "serving harness test" in status
            # a notify unit that never says READY=1 does not become active
            assert ct.systemctl("start", "hd-silent.service", timeout=60).returncode != 0
            assert ct.systemctl("is-active", "hd-silent.service").stdout.strip() != "active"

            entries = [e for e in ct.journal("hd-harness.service") if e.get("MESSAGE") == "harness test event"]
            assert entries, ct.journal("hd-harness.service")
            assert entries[0]["NODE"] == "node1" and entries[0]["EVENT"] == "ready"
            assert entries[0]["SYSLOG_IDENTIFIER"] == "hd-harness"
        print(f"container total (boot + test + shutdown) {time.monotonic() - t0:.1f}s")
        assert not os.path.exists(f"/proc/{pid1}")
        assert not workdir.exists()
        with open("/proc/self/mounts") as f:
            assert str(root) not in f.read()


IMPORT_ALL = """
import importlib, pkgutil, sys, hadaemon
bad = []
for m in pkgutil.walk_packages(hadaemon.__path__, "hadaemon."):
    try:
        importlib.import_module(m.name)
    except Exception as exc:
        bad.append(f"{m.name}: {type(exc).__name__}: {exc}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def test_every_module_imports_with_debian_python_packages(rootfs):
    """What an RPM/deb install sees: the distribution's python3, dbus-next, pyroute2, scapy, systemd."""
    with Container(rootfs=rootfs, name="imports") as ct:
        versions = ct.run(["dpkg-query", "-W", "python3", "python3-dbus-next", "python3-pyroute2",
                           "python3-scapy", "python3-systemd"], check=True)
        print("\nbookworm packages: " + ", ".join(versions.stdout.split("\n")).replace("\t", " "))
        cp = ct.run(["python3", "-c", IMPORT_ALL], timeout=120)
        assert cp.returncode == 0, cp.stdout + cp.stderr
