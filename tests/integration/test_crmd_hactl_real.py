"""Every hactl command of issue 8 against the real ha-crmd on the namespace cluster (heartbeat + crmd per
node, ocf:pacemaker:Dummy): --version, resource create|show|ban|clear|disable|enable|cleanup|delete, group,
constraint location|colocation|order, cib show|export|import, simulate and verify of the exported CIB,
status --watch, and the ResourceStateChanged / TransitionStarted / TransitionEnded signals. Where each resource runs is checked on the nodes (the agents' state files), not only in
the CRM's own status. (test_crm_dbus_daemon covers status, --json, move/clear and node standby/online.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import base_env
from hadaemon.testing.scenario import cib_xml, primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]


def runfile(rel: str):
    return lambda view: (view.rundir / rel).exists()


def _signals(monitor, want, timeout=30):
    """(member, args) of the Crm1 signals busctl monitor printed, until want(list) holds or timeout."""
    out, buf = [], b""
    os.set_blocking(monitor.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want(out):
        try:
            chunk = os.read(monitor.stdout.fileno(), 65536)
        except BlockingIOError:
            time.sleep(0.1)
            continue
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if msg.get("type") == "signal" and msg.get("interface") == "org.hadaemon.Crm1":
                out.append((msg["member"], msg["payload"]["data"]))
    return out


def test_hactl_commands_on_the_real_daemon(tmp_path):
    group = ('<group id="web">' + primitive("a", "ocf", "Dummy", "pacemaker", monitor="10s") + "</group>")
    with Cluster(NODES) as c:
        with CrmCluster(c, cib_xml(NODES, group, '<rsc_location id="web-pref" rsc="web" node="n1" score="100"/>'),
                        keepalive="200ms", deadtime="3", fencing=False) as crm:
            def hactl(*args, node="n2", rc=0):
                cp = crm.hactl(node, *args)
                assert cp.returncode == rc, f"hactl {' '.join(args)}: rc {cp.returncode}\n{cp.stdout}{cp.stderr}"
                return cp.stdout

            probes = {"a": runfile("Dummy-a.state"), "c": runfile("Dummy-c.state")}
            with crm.observer(probes) as obs:
                crm.start_all()
                obs.wait("a", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                assert hactl("--version").startswith("hactl (hadaemon) ")

                dc = crm.dc("n1")
                monitor = subprocess.Popen(["busctl", f"--address={c.dbus(dc)}", "--json=short", "monitor", "--match",
                                            "type='signal',interface='org.hadaemon.Crm1'"],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                try:
                    time.sleep(1)   # the monitor is listening
                    hactl("resource", "create", "c", "ocf:pacemaker:Dummy", "--op",
                          "monitor interval=10s timeout=20s")
                    hactl("constraint", "location", "c", "n2", "100")
                    obs.wait("c", ["n2"], 60)
                    signals = _signals(monitor, lambda s: ("ResourceStateChanged", ["c", "n2", "Started"]) in s
                                       and any(m == "TransitionEnded" for m, _ in s))
                finally:
                    monitor.kill()
                    monitor.wait(10)
                assert ("ResourceStateChanged", ["c", "n2", "Started"]) in signals, signals
                assert any(m == "TransitionStarted" for m, _ in signals), signals
                assert any(m == "TransitionEnded" for m, _ in signals), signals
                assert hactl("resource", "show", "c").startswith("c: primitive, Started on n2")
                hactl("resource", "ban", "c", "n2")
                obs.wait("c", ["n1"], 60)
                hactl("resource", "clear", "c")
                obs.wait("c", ["n2"], 60)
                hactl("resource", "disable", "c")
                obs.wait("c", [], 60)
                hactl("resource", "enable", "c")
                obs.wait("c", ["n2"], 60)
                hactl("constraint", "colocation", "c", "web", "INFINITY", "--id", "c-with-web")
                hactl("constraint", "order", "web", "c")
                obs.wait("c", ["n1"], 60)
                listing = hactl("constraint", "list")
                assert "c-with-web: colocation c with web INFINITY" in listing, listing
                hactl("group", "create", "tools", "c")
                assert "tools (group)" in hactl("resource", "show")
                hactl("group", "delete", "tools")
                assert hactl("resource", "cleanup", "c").startswith("c cleaned up")
                crm.wait_idle(crm.dc("n1"))

                exported = tmp_path / "cib.xml"
                hactl("cib", "export", str(exported))
                assert '<primitive id="c"' in exported.read_text()
                assert '<primitive id="c"' in hactl("cib", "show")
                sim = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "simulate", str(exported)],
                                     capture_output=True, text=True, timeout=60, env=base_env({}))
                assert sim.returncode == 0 and "Started n1" in sim.stdout, sim.stdout + sim.stderr
                ver = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "verify", "--no-agents",
                                      str(exported)], capture_output=True, text=True, timeout=60)
                assert ver.returncode == 0, ver.stdout + ver.stderr

                hactl("constraint", "delete", "c-with-web")
                hactl("resource", "delete", "c", node="n1")
                obs.wait("c", [], 60)
                hactl("cib", "import", str(exported))
                obs.wait("c", ["n1"], 60)

                watch = subprocess.Popen([sys.executable, "-m", "hadaemon.cli.hactl", "status", "--watch",
                                          "--interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=base_env(c.dbus_env("n1")))
                try:
                    first = ""
                    deadline = time.monotonic() + 60
                    os.set_blocking(watch.stdout.fileno(), False)
                    while "Started n1" not in first and time.monotonic() < deadline:
                        try:
                            first += os.read(watch.stdout.fileno(), 65536).decode("utf-8", "replace")
                        except BlockingIOError:
                            time.sleep(0.2)
                    assert "Started n1" in first, first
                finally:
                    watch.send_signal(signal.SIGINT)
                    watch.wait(10)
            assert not obs.dual_active(), obs.describe()
