"""The CrmCluster harness without ha-crmd: each node's own /run, /etc/init.d and mounts (nodes share one
file system and PID namespace), and the observer's view of VIPs, mounts and state files per node."""
from __future__ import annotations

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.observer import _pid_alive, dummy, mounted, pidfile, vip

pytestmark = [pytest.mark.root, pytest.mark.slow]

OCF = "/usr/lib/ocf/resource.d"
LSB = """#!/bin/sh
case "$1" in
  start) sleep 600 >/dev/null 2>&1 & echo $! > /run/svc.pid ;;
  stop) [ -f /run/svc.pid ] && kill "$(cat /run/svc.pid)"; rm -f /run/svc.pid ;;
  status) [ -f /run/svc.pid ] && kill -0 "$(cat /run/svc.pid)" 2>/dev/null && exit 0; exit 3 ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def env():
    with Cluster(["n1", "n2"], client=True) as c:
        crm = CrmCluster(c, "<cib/>", initd={"svc": LSB})
        try:
            for n in crm.nodes:
                crm.start_anchor(n)
            yield c, crm
        finally:
            crm.close()


def agent(crm, node, path, action, rsc, **params):
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": rsc, **{f"OCF_RESKEY_{k}": str(v)
                                                                       for k, v in params.items()}}
    return crm.run(node, [path, action], env=env)


def test_each_node_sees_only_its_own_resources(env):
    c, crm = env
    store, mnt = c.workdir / "store", c.workdir / "mnt"
    store.mkdir()
    mnt.mkdir()
    (store / "index.html").write_text("shared\n")
    va = ".".join(c.addr("n1").split(".")[:3] + ["222"])
    with crm.observer({"d": dummy("d"), "fs": mounted(str(mnt)), "svc": pidfile("svc.pid"), "vip": vip(va)}) as obs:
        assert agent(crm, "n1", f"{OCF}/heartbeat/Dummy", "start", "d").returncode == 0
        assert agent(crm, "n1", f"{OCF}/heartbeat/Dummy", "monitor", "d").returncode == 0
        assert agent(crm, "n2", f"{OCF}/heartbeat/Dummy", "monitor", "d").returncode == 7   # not n1's state file
        fs = dict(device=store, directory=mnt, fstype="none", options="bind")
        assert agent(crm, "n1", f"{OCF}/heartbeat/Filesystem", "start", "fs", **fs).returncode == 0
        assert agent(crm, "n2", f"{OCF}/heartbeat/Filesystem", "monitor", "fs", **fs).returncode == 7
        assert crm.run("n1", ["cat", str(mnt / "index.html")]).stdout == "shared\n"
        assert not (mnt / "index.html").exists()                                # not mounted on the host
        assert crm.run("n2", ["/etc/init.d/svc", "start"]).returncode == 0
        assert crm.run("n2", ["/etc/init.d/svc", "status"]).returncode == 0
        assert crm.run("n1", ["/etc/init.d/svc", "status"]).returncode == 3
        assert crm.run("n1", ["ls", f"{OCF}/hadaemon/IPaddr2", f"{OCF}/heartbeat/IPaddr2",
                              "/usr/sbin/fence_hadaemon"]).returncode == 0
        ip = dict(ip=va, cidr_netmask=24, nic="eth0")
        assert agent(crm, "n2", f"{OCF}/hadaemon/IPaddr2", "start", "vip", **ip).returncode == 0
        obs.wait("vip", ["n2"], 5)
        assert obs.where("d") == ["n1"] and obs.where("fs") == ["n1"] and obs.where("svc") == ["n2"]
        # the same VIP on n1 too: the observer reports the overlap
        assert agent(crm, "n1", f"{OCF}/heartbeat/Dummy", "stop", "d").returncode == 0
        c.run("n1", ["ip", "addr", "add", f"{va}/24", "dev", "eth0", "nodad"], check=True)
        obs.wait("vip", ["n1", "n2"], 5)
        c.cut("n1")                                     # an isolated node's VIP answers nobody
        obs.wait("vip", ["n2"], 5)
        assert obs.where("d") == []
        # drop n1's copy before plugging it back: otherwise the observer may rightly see a second overlap
        c.run("n1", ["ip", "addr", "del", f"{va}/24", "dev", "eth0"], check=True)
        c.restore("n1")
        assert agent(crm, "n2", f"{OCF}/hadaemon/IPaddr2", "stop", "vip", **ip).returncode == 0
        obs.wait("vip", [], 5)
    assert [o[2] for o in obs.dual_active()] == ["vip"]
    assert obs.samples > 5


def test_power_off_kills_the_node_and_on_boots_a_fresh_run_dir(env):
    c, crm = env
    crm._auto_start_on_power = False
    assert crm.run("n2", ["/etc/init.d/svc", "start"]).returncode == 0
    pid = int((crm.rundir("n2") / "svc.pid").read_text())
    crm.power_off("n2")
    assert crm.anchor_pid("n2") is None
    assert not pidfile("svc.pid")(type("V", (), {"rundir": crm.rundir("n2")})())
    crm.power_on("n2")
    crm.start_anchor("n2")
    assert not (crm.rundir("n2") / "svc.pid").exists()
    assert crm.run("n2", ["/etc/init.d/svc", "status"]).returncode == 3
    assert not _pid_alive(pid)
