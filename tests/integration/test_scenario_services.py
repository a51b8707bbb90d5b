"""Experiment 1's services without the CRM: the LSB scripts (lighttpd as httpd, MariaDB as mysqld) follow
the LSB exit codes the LRM maps, run per node (own /run, private mounts of the shared store), and the
client reaches them through the VIPs."""
from __future__ import annotations

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.scenario import Experiment1

pytestmark = [pytest.mark.root, pytest.mark.slow]

OCF = "/usr/lib/ocf/resource.d/heartbeat/"


@pytest.fixture(scope="module")
def env():
    with Cluster(["admin1", "admin2"], client=True) as c:
        e = Experiment1(c)
        e.prepare_storage()
        crm = CrmCluster(c, e.cib(), initd=e.initd())
        try:
            for n in crm.nodes:
                crm.start_anchor(n)
            yield c, e, crm
        finally:
            crm.close()


def agent(crm, node, name, action, rsc, **params):
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": rsc,
           **{f"OCF_RESKEY_{k}": str(v) for k, v in params.items()}}
    cp = crm.run(node, [OCF + name, action], env=env)
    return cp.returncode


def lsb(crm, node, script, action):
    return crm.run(node, [f"/etc/init.d/{script}", action], timeout=90).returncode


@pytest.mark.parametrize("script,vip_attr,export,mnt", [("httpd", "web_vip", "http_export", "www"),
                                                        ("mysqld", "db_vip", "db_export", "mydata")])
def test_lsb_script_per_node(env, script, vip_attr, export, mnt):
    c, e, crm = env
    ip = dict(ip=getattr(e, vip_attr), cidr_netmask=24, nic="eth0")
    fs = dict(device=getattr(e, export), directory=getattr(e, mnt), fstype="none", options="bind")
    assert lsb(crm, "admin1", script, "status") == 3
    assert lsb(crm, "admin1", script, "start") == 1            # the store is not mounted: refuses
    assert lsb(crm, "admin1", script, "stop") == 0             # stopping a stopped service succeeds
    assert agent(crm, "admin1", "IPaddr2", "start", "ip", **ip) == 0
    assert agent(crm, "admin1", "Filesystem", "start", "fs", **fs) == 0
    assert lsb(crm, "admin1", script, "start") == 0
    assert lsb(crm, "admin1", script, "start") == 0            # start when started
    assert lsb(crm, "admin1", script, "status") == 0
    assert lsb(crm, "admin2", script, "status") == 3           # admin2 does not see admin1's pidfile
    if script == "httpd":
        ok, served, body = e.web()
        assert ok and served == "admin1" and "blog" in body
    else:
        cp = e.sql()
        assert cp.returncode == 0 and cp.stdout.split("\t")[1].strip() == "admin1", cp.stdout + cp.stderr
    assert lsb(crm, "admin1", script, "stop") == 0
    assert lsb(crm, "admin1", script, "status") == 3
    assert agent(crm, "admin1", "Filesystem", "stop", "fs", **fs) == 0
    assert agent(crm, "admin1", "IPaddr2", "stop", "ip", **ip) == 0
    assert lsb(crm, "admin1", script, "dance") == 2
