"""Under systemd (nspawn, Debian's python3 + packages): ha-ldirectord.service is Type=notify (start
returns once the table is programmed, STATUS= follows health), serves org.hadaemon.Director1 on the
system bus with the shipped policy, logs VIRTUAL=/REAL= journal fields, reloads with `systemctl
reload`, and removes its table on stop. The nftables backend is picked automatically (no IPVS here)."""
import json
import time
from collections import Counter

import pytest

from hadaemon.testing.netns import Cluster
from hadaemon.testing.nspawn import Container
from tests.integration.director_env import DirectorEnv
from tests.system.test_realserver_unit import with_net_admin

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

UNIT = "ha-ldirectord.service"


def status_text(ct) -> str:
    return ct.systemctl("show", "-p", "StatusText", "--value", UNIT).stdout.strip()


def test_director_unit_under_systemd(rootfs, monkeypatch):
    with_net_admin(monkeypatch)
    with Cluster(["dir1", "dir2"], client=True) as c:
        env = DirectorEnv(c)
        env.add_vip("dir1")
        config = env.config(quiescent="yes").read_text()
        with Container(netns=c.netns("dir1"), name="dir1", rootfs=rootfs) as ct:
            ct.write_file("/etc/ha.d/ldirectord.cf", config)
            t0 = time.monotonic()
            cp = ct.systemctl("start", UNIT, timeout=90)
            assert cp.returncode == 0, cp.stderr + json.dumps(ct.journal(UNIT)[-20:], indent=1)
            print(f"systemctl start returned after {time.monotonic() - t0:.1f} s")
            # Type=notify: when start returns, the table is already programmed
            assert f"tcp:{env.vip}:80" in env.table("dir1")
            deadline = time.monotonic() + 60
            while "2/2 real server(s) up" not in status_text(ct) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert "2/2 real server(s) up, backend nft" in status_text(ct)
            # WatchdogSec=20s: the daemon pings WATCHDOG=1 from its event loop every 10 s
            def watchdog_ts():
                return ct.systemctl("show", "-p", "WatchdogTimestampMonotonic", "--value", UNIT).stdout.strip()
            first = watchdog_ts()
            deadline = time.monotonic() + 25
            while watchdog_ts() == first and time.monotonic() < deadline:
                time.sleep(0.5)
            assert watchdog_ts() != first, "no WATCHDOG=1 ping within 25 s"
            env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3})
            assert Counter(env.requests(8)) == Counter({"rs1": 2, "rs2": 6})

            cp = ct.busctl("get-property", "org.hadaemon.Director1", "/org/hadaemon/Director1",
                           "org.hadaemon.Director1", "Backend")
            assert cp.stdout.strip() == 's "nft"', cp.stderr

            assert ct.systemctl("reload", UNIT, timeout=60).returncode == 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    "reloaded" in str(e.get("MESSAGE", "")) for e in ct.journal(UNIT)):
                time.sleep(0.3)
            entries = ct.journal(UNIT)
            assert any("reloaded" in str(e.get("MESSAGE", "")) for e in entries)
            up = [e for e in entries if "is up" in str(e.get("MESSAGE", ""))]
            assert up and up[0].get("VIRTUAL") == f"tcp:{env.vip}:80" and up[0].get("REAL") in (
                env.key("rs1"), env.key("rs2")), up[:1]
            assert ct.systemctl("is-active", UNIT).stdout.strip() == "active"

            assert ct.systemctl("stop", UNIT, timeout=60).returncode == 0
            assert env.table("dir1") == {}

            # the OCF agent with use_systemd=true drives the unit; without it, runs the daemon itself
            for params in (["OCF_RESKEY_use_systemd=true"], ["OCF_RESKEY_configfile=/etc/ha.d/ldirectord.cf"]):
                agent = ["env", "OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE=director", *params,
                         "python3", "/opt/hadaemon/agents/ldirectord"]
                codes = []
                for action in ("monitor", "start", "monitor", "stop", "monitor"):
                    cp = ct.run([*agent, action], timeout=90)
                    assert "Traceback" not in cp.stderr, cp.stderr
                    codes.append(cp.returncode)
                    if action == "start":
                        assert f"tcp:{env.vip}:80" in env.table("dir1"), params
                assert codes == [7, 0, 0, 0, 7], (params, codes)
                assert env.table("dir1") == {}
