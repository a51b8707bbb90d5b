"""The OCF agent hadaemon:ldirectord run as the CRM runs it (OCF_ROOT, OCF_RESKEY_*): validate-all,
start (table programmed), monitor 0/7 truthfully, stop (cleanstop), and a switch-over between two
directors with the VIP moved by the IPaddr2 agent while a client keeps requesting (the gap is printed)."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster
from tests.integration.director_env import PYTHON, REPO, DirectorEnv

pytestmark = [pytest.mark.root, pytest.mark.slow]

AGENT = REPO / "agents" / "ldirectord"
IPADDR2 = REPO / "agents" / "IPaddr2"

CLIENT_LOOP = r"""
import sys, time, urllib.request
url, limit, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
import os
end = time.monotonic() + limit
while time.monotonic() < end and not os.path.exists(stop):
    t = time.monotonic()
    try:
        body = urllib.request.urlopen(url, timeout=2).read().decode().strip()
    except Exception as e:
        body = "ERR"
    print(f"{t:.3f} {body}", flush=True)
    time.sleep(max(0, 0.05 - (time.monotonic() - t)))
"""


@pytest.fixture
def env():
    with Cluster(["dir1", "dir2"], client=True) as c:
        yield DirectorEnv(c)


def agent(env, node, action, agent_path=AGENT, **params):
    e = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": f"director-{node}",
         "OCF_RESKEY_CRM_meta_timeout": "60000", **env.c.dbus_env(node)}
    e.update({f"OCF_RESKEY_{k}": str(v) for k, v in params.items()})
    cp = env.c.run(node, [PYTHON, str(agent_path), action], env=e, timeout=60)
    return cp


def director_params(env, node):
    return dict(configfile=env.config_path, backend="nft", pidfile=env.c.workdir / f"ld-{node}.pid",
                logfile=env.c.workdir / f"ld-{node}.log")


def vip_params(env, node):
    return dict(ip=env.vip, cidr_netmask=24, nic="eth0", arp_count=3, arp_interval=100)


def test_validate_start_monitor_stop(env, tmp_path):
    env.config()
    p = director_params(env, "dir1")
    assert agent(env, "dir1", "validate-all", **p).returncode == 0
    bad = env.c.workdir / "bad.cf"
    bad.write_text(env.config_path.read_text() + "\tscheduler=\n")
    cp = agent(env, "dir1", "validate-all", **dict(p, configfile=bad))
    assert cp.returncode == 6 and f"ocf-exit-reason:{bad}:" in cp.stderr, cp.stderr
    assert agent(env, "dir1", "start", **dict(p, configfile=bad)).returncode == 6
    assert agent(env, "dir1", "monitor", **p).returncode == 7

    cp = agent(env, "dir1", "start", **p)
    assert cp.returncode == 0, cp.stderr + Path(p["logfile"]).read_text()
    assert f"tcp:{env.vip}:80" in env.table("dir1")                       # start returned with its table
    assert agent(env, "dir1", "monitor", **p).returncode == 0
    cp = env.c.run("dir1", [PYTHON, str(AGENT), "monitor"], env={
        "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "director-dir1", "OCF_CHECK_LEVEL": "10",
        **{f"OCF_RESKEY_{k}": str(v) for k, v in p.items()}})
    assert cp.returncode == 0, cp.stderr
    assert agent(env, "dir1", "start", **p).returncode == 0                 # start when started: success

    # the daemon dies behind the agent's back: monitor says 7, not 0
    pid = int(Path(p["pidfile"]).read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while agent(env, "dir1", "monitor", **p).returncode != 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agent(env, "dir1", "monitor", **p).returncode == 7

    # start again adopts the table left behind; stop removes it
    assert agent(env, "dir1", "start", **p).returncode == 0
    assert agent(env, "dir1", "stop", **p).returncode == 0
    assert env.table("dir1") == {}
    assert agent(env, "dir1", "monitor", **p).returncode == 7
    assert agent(env, "dir1", "stop", **p).returncode == 0                  # stop when stopped: success
    assert "adopted" in Path(p["logfile"]).read_text()


def test_switch_over_between_directors_keeps_the_client_served(env):
    env.config()
    p1, p2 = director_params(env, "dir1"), director_params(env, "dir2")
    # the group on dir1: VIP, then the director
    assert agent(env, "dir1", "start", IPADDR2, **vip_params(env, "dir1")).returncode == 0
    assert agent(env, "dir1", "start", **p1).returncode == 0
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3}, "dir1")
    loop = env.c.workdir / "loop.py"
    loop.write_text(CLIENT_LOOP)
    stop_flag = env.c.workdir / "stop-client"
    client = subprocess.Popen(["ip", "netns", "exec", env.c.netns("client"), PYTHON, str(loop),
                               f"http://{env.vip}/", "60", str(stop_flag)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        # the CRM moves the group: stop in reverse order on dir1, start in order on dir2
        t_switch = time.monotonic()
        assert agent(env, "dir1", "stop", **p1).returncode == 0
        assert env.table("dir1") == {}
        assert agent(env, "dir1", "stop", IPADDR2, **vip_params(env, "dir1")).returncode == 0
        assert agent(env, "dir2", "start", IPADDR2, **vip_params(env, "dir2")).returncode == 0
        assert agent(env, "dir2", "start", **p2).returncode == 0
        switched = time.monotonic() - t_switch
        env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3}, "dir2")
        time.sleep(2)
    finally:
        stop_flag.write_text("")
        out, _ = client.communicate(timeout=30)
    rows = [ln.split(" ", 1) for ln in out.splitlines() if " " in ln]
    ok = [(float(t), body) for t, body in rows if body in ("rs1", "rs2")]
    failed = [(float(t), body) for t, body in rows if body not in ("rs1", "rs2")]
    assert ok and ok[0][0] < t_switch and ok[-1][0] > t_switch + switched, "client not served on both sides"
    # the gap: the longest time between two answered requests (they are sent every 50 ms)
    gap = max(b[0] - a[0] for a, b in zip(ok, ok[1:]))
    print(f"switch-over: agent actions took {switched:.2f} s; client gap {gap:.2f} s "
          f"({len(failed)} failed of {len(rows)} requests)")
    assert gap < 15, f"client unserved for {gap:.1f} s"
    # after the switch every failure is gone: the last 20 requests all answered
    assert all(body in ("rs1", "rs2") for _, body in rows[-20:]), rows[-20:]
    assert agent(env, "dir2", "monitor", **p2).returncode == 0
    assert agent(env, "dir1", "monitor", **p1).returncode == 7
    assert agent(env, "dir2", "stop", **p2).returncode == 0
    assert env.table("dir2") == {}


CLUSTERLABS_AGENT = Path("/usr/lib/ocf/resource.d/heartbeat/ldirectord")


def test_clusterlabs_ldirectord_agent_drives_ha_ldirectord(env):
    """resource-agents' own ldirectord OCF agent, unmodified, with OCF_RESKEY_ldirectord pointing at
    ha-ldirectord: it runs `ha-ldirectord CONFIG start|stop|status` as it would run ldirectord."""
    if not CLUSTERLABS_AGENT.exists():
        pytest.skip("resource-agents' ldirectord agent not installed (Debian package ldirectord)")
    ha_ldirectord = REPO / ".venv" / "bin" / "ha-ldirectord"
    if not ha_ldirectord.exists():
        pytest.skip("ha-ldirectord console script not installed in .venv")
    cfg = env.c.workdir / f"ld-{os.getpid()}-clusterlabs.cf"
    cfg.write_text(f"logfile=\"{env.c.workdir}/clusterlabs.log\"\n" + env.config().read_text())
    e = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "lvs", "OCF_RESKEY_configfile": str(cfg),
         "OCF_RESKEY_ldirectord": str(ha_ldirectord), **env.c.dbus_env("dir1")}
    codes = []
    for action in ("monitor", "start", "monitor", "start", "stop", "monitor"):
        cp = env.c.run("dir1", [str(CLUSTERLABS_AGENT), action], env=e, timeout=90)
        codes.append(cp.returncode)
        if action == "start":
            assert f"tcp:{env.vip}:80" in env.table("dir1"), cp.stderr
    assert codes == [7, 0, 0, 0, 0, 7], codes
    assert env.table("dir1") == {}
    cp = env.c.run("dir1", [str(ha_ldirectord), str(cfg), "status"])
    assert cp.returncode == 3 and "stopped" in cp.stdout
    assert "started:" in (env.c.workdir / "clusterlabs.log").read_text()      # logfile= of the config
