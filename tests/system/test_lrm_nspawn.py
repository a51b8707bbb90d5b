"""The LRM under a real systemd (PID 1 of an nspawn container): the systemd class through
org.freedesktop.systemd1 with the Restart=no drop-in, and OCF actions in transient scopes of their
own that a timeout kills whole (children that left the process group included), output in the journal."""
import json

import pytest

from hadaemon.testing.nspawn import Container

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

UNIT = """\
[Unit]
Description=LRM test service
[Service]
ExecStart=/bin/sleep 600
Restart=always
RestartSec=1
"""

# An OCF agent: start leaves a daemon that escapes the process group (setsid) and then hangs;
# monitor prints the cgroup it runs in.
HANG_AGENT = r"""#!/bin/sh
case "$1" in
  start) setsid sleep 777 </dev/null >/dev/null 2>&1 &
         echo "starting $OCF_RESOURCE_INSTANCE"
         sleep 600 ;;
  monitor) cat /proc/self/cgroup; echo "monitor output of $OCF_RESOURCE_INSTANCE"; exit 7 ;;
  stop) exit 0 ;;
  meta-data) echo '<resource-agent name="Hang"/>'; exit 0 ;;
esac
exit 3
"""

LSB_DAEMON = r"""#!/bin/sh
PIDFILE=/run/lsbd.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
  start) running && exit 0; sleep 888 </dev/null >/dev/null 2>&1 & echo $! > $PIDFILE; exit 0 ;;
  stop) running && kill "$(cat $PIDFILE)"; rm -f $PIDFILE; exit 0 ;;
  status) running && exit 0; exit 3 ;;
esac
exit 3
"""

DRIVER = r"""
import asyncio, json, os, subprocess
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec, systemd_available
out = {"systemd_available": systemd_available()}
async def main():
    reported = []
    lrm = LocalResourceManager(reported.append, ocf_root="/srv/ocf", lsb_dir="/srv/init.d")
    out["use_systemd"] = lrm.use_systemd
    out["classes"] = lrm.classes()
    svc = ResourceSpec("lrmtest", "systemd", None, "lrmtest", {})
    def rs(r): return [r.rc, r.status, r.exit_reason]
    out["probe"] = rs(await lrm.execute(svc, OpRequest("monitor")))
    out["start"] = rs(await lrm.execute(svc, OpRequest("start", timeout_ms=60000)))
    out["restart_prop"] = subprocess.run(["systemctl", "show", "-p", "Restart", "--value", "lrmtest"],
                                         capture_output=True, text=True).stdout.strip()
    out["monitor"] = rs(await lrm.execute(svc, OpRequest("monitor")))
    out["recurring"] = rs(await lrm.execute(svc, OpRequest("monitor", interval_ms=500)))
    subprocess.run(["systemctl", "kill", "-s", "KILL", "lrmtest"], check=True)
    for _ in range(100):
        if reported:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)    # RestartSec=1 would have restarted it by now without the drop-in
    out["reported"] = [[r.op, r.rc, r.status] for r in reported]
    out["stop"] = rs(await lrm.execute(svc, OpRequest("stop", timeout_ms=60000)))
    out["after_stop"] = [[r.op, r.rc, r.status] for r in reported[len(out["reported"]):]]
    out["fake"] = rs(await lrm.execute(ResourceSpec("f", "systemd", None, "this_is_fake1234", {}), OpRequest("start")))
    out["fake_stop"] = rs(await lrm.execute(ResourceSpec("f", "systemd", None, "this_is_fake1234", {}), OpRequest("stop")))
    out["agents_has_unit"] = "lrmtest" in await lrm.list_agents("systemd")
    out["meta"] = await lrm.meta_data("systemd", None, "lrmtest")
    lsbd = ResourceSpec("lsbd", "lsb", None, "lsbd", {})
    out["lsb_start"] = rs(await lrm.execute(lsbd, OpRequest("start")))
    await asyncio.sleep(1)
    out["lsb_daemon_after_start"] = subprocess.run(["pgrep", "-f", "sleep 888"], capture_output=True,
                                                   text=True).stdout.split()
    pid = open("/run/lsbd.pid").read().strip()
    out["lsb_daemon_cgroup"] = open(f"/proc/{pid}/cgroup").read()
    out["lsb_status"] = rs(await lrm.execute(lsbd, OpRequest("monitor")))
    out["lsb_stop"] = rs(await lrm.execute(lsbd, OpRequest("stop")))
    await asyncio.sleep(0.5)
    out["lsb_daemon_after_stop"] = subprocess.run(["pgrep", "-f", "sleep 888"], capture_output=True,
                                                  text=True).stdout.split()
    hang = ResourceSpec("hang1", "ocf", "hatest", "Hang", {})
    mon = await lrm.execute(hang, OpRequest("monitor"))
    out["monitor_cgroup"] = mon.output
    out["hang"] = rs(await lrm.execute(hang, OpRequest("start", timeout_ms=3000)))
    await asyncio.sleep(1)
    left = subprocess.run(["pgrep", "-f", "sleep 777"], capture_output=True, text=True).stdout.split()
    out["left_behind"] = left
    await lrm.close()
    # the same timeout with process groups only: the child that called setsid escapes the kill
    plain = LocalResourceManager(reported.append, ocf_root="/srv/ocf", use_systemd=False)
    out["hang_plain"] = rs(await plain.execute(ResourceSpec("hang2", "ocf", "hatest", "Hang", {}),
                                               OpRequest("start", timeout_ms=3000)))
    await asyncio.sleep(1)
    out["left_behind_plain"] = subprocess.run(["pgrep", "-f", "sleep 777"], capture_output=True,
                                              text=True).stdout.split()
    subprocess.run(["pkill", "-f", "sleep 777"])
    await plain.close()
asyncio.run(main())
print("RESULT " + json.dumps(out))
"""


def test_lrm_under_systemd(rootfs):
    with Container(name="lrm", rootfs=rootfs) as ct:
        ct.write_file("/etc/systemd/system/lrmtest.service", UNIT)
        ct.write_file("/srv/ocf/resource.d/hatest/Hang", HANG_AGENT, mode=0o755)
        ct.write_file("/srv/driver.py", DRIVER)
        ct.write_file("/srv/init.d/lsbd", LSB_DAEMON, mode=0o755)
        ct.systemctl("daemon-reload", check=True)
        cp = ct.run(["systemd-run", "--wait", "--pipe", "--quiet", "--collect", "-E", "PYTHONPATH=/opt/hadaemon",
                     "python3", "/srv/driver.py"], timeout=240)
        lines = [ln for ln in cp.stdout.splitlines() if ln.startswith("RESULT ")]
        assert lines, f"driver failed: {cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
        out = json.loads(lines[-1][len("RESULT "):])
        print(json.dumps(out, indent=1))
        assert out["systemd_available"] and out["use_systemd"] and "systemd" in out["classes"]
        assert out["probe"][:2] == [7, "done"]
        assert out["start"][:2] == [0, "done"], out["start"]
        assert out["restart_prop"] == "no"                  # the runtime drop-in overrides Restart=always
        dropin = ct.run(["cat", "/run/systemd/system/lrmtest.service.d/50-hadaemon.conf"], check=True).stdout
        assert "Restart=no" in dropin
        assert out["monitor"][:2] == [0, "done"] and out["recurring"][:2] == [0, "done"]
        assert out["reported"] == [["monitor", 7, "done"]]   # the kill is reported once, no restart
        assert out["stop"][:2] == [0, "done"]
        assert out["after_stop"] == [["monitor", 7, "cancelled"]]
        assert out["fake"][:2] == [5, "not_installed"] and out["fake_stop"][:2] == [0, "done"]
        assert out["agents_has_unit"]
        # meta-data from the unit; its description is the drop-in's, as with Pacemaker's drop-in
        assert "resource-agent name='lrmtest'" in out["meta"] and "Cluster Controlled lrmtest" in out["meta"]
        # OCF actions run in a transient scope of their own
        assert "hadaemon-lrm-hang1-monitor-" in out["monitor_cgroup"] and ".scope" in out["monitor_cgroup"]
        # a daemon an init script starts lives on in its start's scope; the stop ends it
        assert out["lsb_start"][:2] == [0, "done"] and len(out["lsb_daemon_after_start"]) == 1
        assert "hadaemon-lrm-lsbd-start-" in out["lsb_daemon_cgroup"]
        assert out["lsb_status"][:2] == [0, "done"] and out["lsb_stop"][:2] == [0, "done"]
        assert out["lsb_daemon_after_stop"] == []
        # a timed-out start is killed whole: also the child that left the process group
        assert out["hang"][:2] == [1, "timeout"]
        assert out["left_behind"] == []
        assert out["hang_plain"][:2] == [1, "timeout"] and len(out["left_behind_plain"]) == 1
        # agent output is in the journal under the resource's name
        entries = ct.journal(None, "-t", "hang1")
        assert any("monitor output of hang1" in e.get("MESSAGE", "") for e in entries), entries[-5:]
