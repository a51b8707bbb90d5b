"""ha-crmd.service under real systemd (nspawn): Type=notify READY with STATUS=, the watchdog, bound to
ha-heartbeat, journal fields, a resource started through the LRM; `kill -9` of the main process restarts
the daemon (Restart=on-failure) and, KillMode=process, the service the agent started keeps running and
is not restarted (re-probed); `systemctl stop` stops the resource (clean stop)."""
import json

import pytest

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.nspawn import Container
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

UNIT = "ha-crmd.service"

AGENT = r"""#!/bin/sh
# ocf:test:Daemon - a daemon (sleep) with a pidfile
PIDFILE=/run/test-daemon.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
  start) running && exit 0; setsid sleep 9999 </dev/null >/dev/null 2>&1 & echo $! > $PIDFILE
         echo start >> /run/test-daemon.starts; exit 0 ;;
  stop) running && kill "$(cat $PIDFILE)"; rm -f $PIDFILE; exit 0 ;;
  monitor) running && exit 0; exit 7 ;;
  meta-data) echo '<resource-agent name="Daemon"><actions/></resource-agent>'; exit 0 ;;
esac
exit 3
"""

CIB = """<cib admin_epoch="0" epoch="1" num_updates="0"><configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set></crm_config>
<nodes/><resources>
<primitive id="svc" class="ocf" provider="test" type="Daemon">
<operations><op id="svc-mon" name="monitor" interval="2s" timeout="10s"/></operations></primitive>
</resources><constraints/></configuration><status/></cib>"""


def show(ct, prop, unit=UNIT):
    return ct.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def test_crmd_unit_under_systemd(rootfs):
    with Cluster(["node1"]) as c:
        hb = HeartbeatCluster(c, keepalive="200ms", deadtime="1", initdead="2", extra=["crm respawn"])
        with Container(netns=c.netns("node1"), name="node1", rootfs=rootfs) as ct:
            ct.write_file("/etc/ha.d/ha.cf", hb.hacf_text("node1"))
            ct.write_file("/etc/ha.d/authkeys", f"auth 1\n{hb.key}\n", 0o600)
            ct.write_file("/usr/lib/ocf/resource.d/test/Daemon", AGENT, 0o755)
            ct.write_file("/etc/ha.d/seed-cib.xml", CIB)
            ct.write_file("/etc/default/ha-crmd", "HA_CRMD_OPTS=--cib /etc/ha.d/seed-cib.xml\n")
            cp = ct.systemctl("start", UNIT, timeout=120)   # BindsTo= pulls ha-heartbeat in, After= orders it
            assert cp.returncode == 0, cp.stderr + json.dumps(ct.journal(UNIT)[-30:], indent=1)
            assert show(ct, "ActiveState") == "active"
            assert show(ct, "ActiveState", "ha-heartbeat.service") == "active"
            assert show(ct, "WatchdogUSec") == "10s"
            wait_until(lambda: "DC, 1 members" in show(ct, "StatusText"), 30, message="STATUS= says DC")
            wait_until(lambda: ct.run(["cat", "/run/test-daemon.pid"]).returncode == 0, 60,
                       message="the resource started")
            daemon_pid = ct.run(["cat", "/run/test-daemon.pid"]).stdout.strip()
            entries = [e for e in ct.journal(UNIT) if e.get("SYSLOG_IDENTIFIER") == "ha-crmd"]
            assert any(e.get("EVENT") == "dc-elected" and e.get("NODE") == "node1" for e in entries), entries[-10:]
            assert any(e.get("EVENT") == "op-done" and e.get("RESOURCE") == "svc" for e in entries)

            # kill -9: systemd restarts ha-crmd; the daemon keeps running and is not started again
            main_pid = show(ct, "MainPID")
            assert ct.run(["kill", "-9", main_pid]).returncode == 0
            wait_until(lambda: show(ct, "MainPID") not in ("0", main_pid) and show(ct, "ActiveState") == "active",
                       60, message="ha-crmd restarted by systemd")
            wait_until(lambda: "DC, 1 members" in show(ct, "StatusText"), 30, message="DC again")
            wait_until(lambda: any(e.get("EVENT") == "transition-end" for e in ct.journal(UNIT, "-n", "20")),
                       30, message="a transition after the restart")
            assert ct.run(["kill", "-0", daemon_pid]).returncode == 0
            assert ct.run(["cat", "/run/test-daemon.pid"]).stdout.strip() == daemon_pid
            assert ct.run(["cat", "/run/test-daemon.starts"]).stdout.split() == ["start"]

            # a clean stop stops the resource first
            assert ct.systemctl("stop", UNIT, timeout=120).returncode == 0
            assert ct.run(["kill", "-0", daemon_pid]).returncode != 0
            # stopping ha-heartbeat stops ha-crmd with it (PartOf/BindsTo)
            assert ct.systemctl("start", UNIT, timeout=120).returncode == 0
            assert ct.systemctl("stop", "ha-heartbeat.service", timeout=120).returncode == 0
            assert show(ct, "ActiveState") in ("inactive", "failed")
