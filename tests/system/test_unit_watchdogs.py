"""Issue 11: "SIGSTOP on a daemon makes the watchdog restart it" for the daemons other than ha-crmd (whose case is
in tests/system/test_package_cluster.py): ha-heartbeat.service (WatchdogSec=10s) and ha-ldirectord.service
(WatchdogSec=20s) under real systemd in nspawn. A frozen daemon stops pinging WATCHDOG=1 from its event loop;
systemd logs "Watchdog timeout", aborts it (SIGABRT; systemd follows a kill signal with SIGCONT, so a stopped
process gets it; SIGKILL after TimeoutAbortSec otherwise) and Restart=on-failure starts a new one, back to READY."""
import json

import pytest

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.nspawn import Container
from hadaemon.testing.procs import wait_until
from tests.system.pkgtools import ldirectord_cf

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]


def show(ct, unit, prop):
    return ct.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def freeze_and_wait_for_the_watchdog(ct, unit: str, timeout: float) -> None:
    pid = show(ct, unit, "MainPID")
    assert pid not in ("", "0")
    assert ct.run(["kill", "-STOP", pid]).returncode == 0
    wait_until(lambda: show(ct, unit, "MainPID") not in ("0", pid) and show(ct, unit, "ActiveState") == "active",
               timeout, 0.5, f"{unit} restarted by the watchdog")
    assert int(show(ct, unit, "NRestarts")) >= 1
    log = [str(e.get("MESSAGE", "")) for e in ct.journal(None, "-u", unit)]
    assert any("watchdog timeout" in m.lower() for m in log), log[-20:]


def test_sigstop_makes_the_watchdog_restart_heartbeat_and_director(rootfs):
    with Cluster(["node1", "node2"]) as c:
        hb = HeartbeatCluster(c, keepalive="200ms", deadtime="2", initdead="3")
        with Container(netns=c.netns("node1"), name="node1", rootfs=rootfs) as ct:
            ct.write_file("/etc/ha.d/ha.cf", hb.hacf_text("node1"))
            ct.write_file("/etc/ha.d/authkeys", f"auth 1\n{hb.key}\n", 0o600)
            ct.write_file("/etc/ha.d/ldirectord.cf", ldirectord_cf(c.addr("node1"), [c.addr("node2")]))
            for unit, timeout in (("ha-heartbeat.service", 90), ("ha-ldirectord.service", 120)):
                cp = ct.systemctl("start", unit, timeout=120)
                assert cp.returncode == 0, cp.stderr + json.dumps(ct.journal(unit)[-20:], indent=1)
                # WatchdogSec (10 s / 20 s) + the abort's timeout + RestartSec=2s, with room for a loaded host
                freeze_and_wait_for_the_watchdog(ct, unit, timeout)
                assert ct.systemctl("stop", unit, timeout=60).returncode == 0
