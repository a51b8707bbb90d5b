"""Experiment 1 end to end on namespaces: admin1 and admin2 with the webserver group (VIP .222, the shared
store bind-mounted by ocf:heartbeat:Filesystem, lighttpd as lsb:httpd) and the mysql group (VIP .220, its
store, MariaDB as lsb:mysqld), a client in its own namespace, ping node = the client (pingd rule).
Cut admin1 -> the page comes from admin2; restore -> webserver fails back (auto_failback on); cut admin2 ->
admin1 takes mysql and answers SQL; MigrateResource over D-Bus moves a group. The observer samples both
nodes every 25 ms: no resource is ever active on two connected nodes (a cut node is plugged back once it
has stopped its groups, as the pingd rule makes it do). The corosync variant adds quorum1, a node that
only votes (see test_experiment1)."""
from __future__ import annotations

import os
import time

import pytest

from hadaemon.testing.corosync import MOUNTS, CorosyncCluster
from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import Experiment1, Poller

pytestmark = [pytest.mark.root, pytest.mark.slow]


def check_corosync_mounts(cs: CorosyncCluster) -> None:
    """Every node's corosync runs in a mount namespace of its own (not the host's, not another node's) where
    /etc/corosync, /var/lib/corosync and /run/corosync are that node's directories."""
    host = os.readlink("/proc/self/ns/mnt")
    seen = {}
    for n in cs.nodes:
        ns, roots = cs.mounts(n)
        assert ns != host, f"{n}: corosync runs in the host's mount namespace"
        assert ns not in seen, f"{n} shares its mount namespace with {seen.get(ns)}"
        seen[ns] = n
        for point, sub in zip(MOUNTS, ("etc", "lib", "run")):
            assert roots.get(point, "").endswith(f"/corosync/{n}/{sub}"), (n, point, roots)


@pytest.mark.parametrize("stack", ["heartbeat", "corosync"])
def test_experiment1(stack):
    """stack corosync (issue 15): the same run with ha-heartbeat taking its membership from Corosync 3, on a
    3-node Corosync cluster: admin1, admin2 and quorum1, a quorum node as admins run one (ha-heartbeat and
    ha-crmd like the others, rsc_location -INFINITY for both groups: it only votes). Each corosync has its
    own mount namespace for /etc/corosync, /var/lib/corosync and /run/corosync (checked). With three
    nodes a cut admin1 (or admin2) is a minority of one: it loses quorum and stops its groups by
    no-quorum-policy as well as by the pingd rule, while the other two keep quorum and take them over."""
    corosync = stack == "corosync"
    with Cluster(["admin1", "admin2", "quorum1"] if corosync else ["admin1", "admin2"], client=True) as c:
        e = Experiment1(c, quorum_nodes=["quorum1"] if corosync else ())
        e.prepare_storage()
        if corosync:
            cs = CorosyncCluster(c, nodes=["admin1", "admin2", "quorum1"])
            cs.start_all()
            cs.wait_ring(timeout=90)
            check_corosync_mounts(cs)
        crm = CrmCluster(c, e.cib(), keepalive="200ms", deadtime="3", auto_failback="on", initd=e.initd(),
                         extra=e.hacf_extra() + (["stack corosync"] if stack == "corosync" else []))
        try:
            with crm.observer(e.probes()) as obs:
                def placed(web: str, db: str, timeout: float = 90) -> None:
                    try:
                        for g, node in (("webserver", web), ("mysql", db)):
                            for r in Experiment1.GROUPS[g]:
                                obs.wait(r, [node], timeout)
                    except TimeoutError as exc:
                        pytest.fail(f"{exc}\n{crm.logs()}")

                def served(node: str) -> bool:
                    ok, who, body = e.web()
                    return ok and who == node and "blog" in body

                def sql_by(node: str) -> bool:
                    cp = e.sql()
                    return cp.returncode == 0 and cp.stdout.split("\t")[-1].strip() == node \
                        and "Hello from the shared store" in cp.stdout

                crm.start_all()
                placed("admin1", "admin2")
                wait_until(lambda: served("admin1"), 20, interval=0.2, message="page from admin1")
                wait_until(lambda: sql_by("admin2"), 30, interval=0.5, message="SQL answered by admin2")
                crm.wait_resource("webserver", ["admin1"], "admin1", 20)      # the CRM's own view agrees
                crm.wait_resource("mysql", ["admin2"], "admin2", 20)
                poller = Poller(c, "client", e.web_vip, interval=0.02)

                obs.mark("cut admin1")
                crm.cut("admin1")                                  # admin1 is unplugged
                placed("admin2", "admin2")
                wait_until(lambda: served("admin2"), 20, interval=0.2, message="page from admin2")
                st = crm.status("admin2")
                assert st["nodes"]["admin1"]["state"] == "offline", st["nodes"]
                assert crm.resource_nodes("admin2", "webserver") == ["admin2"]
                if corosync:   # admin2 + quorum1 are 2 of 3; the isolated admin1 is 1 of 3
                    assert st["quorum"] is True, st
                    wait_until(lambda: crm.status("admin1").get("quorum") is False, 30, interval=0.5,
                               message="admin1 without quorum")

                # the isolated admin1 cannot reach the ping node: it stops its groups (pingd rule); plugging
                # it back before that would show its VIP twice on the wire for a moment
                obs.wait_released("admin1", list(obs.probes), 60)
                t = time.monotonic()
                obs.mark("restore admin1")
                crm.restore("admin1")                              # auto_failback on: webserver returns
                placed("admin1", "admin2")
                wait_until(lambda: served("admin1"), 20, interval=0.2, message="page from admin1 again")
                # the poller's request in flight when the VIP moved (sent to admin2's MAC before admin1's
                # GARP) times out after 0.2 s: it may see admin1 a moment after curl does
                wait_until(lambda: poller.first_ok_after(t, "admin1"), 5, interval=0.05,
                           message="the poller served by admin1")

                obs.mark("cut admin2")
                crm.cut("admin2")                                  # admin1 takes over mysql
                placed("admin1", "admin1")
                wait_until(lambda: sql_by("admin1"), 60, interval=0.5, message="SQL answered by admin1")
                obs.wait_released("admin2", list(obs.probes), 60)
                obs.mark("restore admin2")
                crm.restore("admin2")
                placed("admin1", "admin2")
                wait_until(lambda: sql_by("admin2"), 60, interval=0.5, message="SQL answered by admin2 again")

                obs.mark("MigrateResource webserver admin2")
                cp = crm.busctl("admin1", "call", "org.hadaemon.Crm1", "/org/hadaemon/Crm1", "org.hadaemon.Crm1",
                                "MigrateResource", "ss", "webserver", "admin2")
                assert cp.returncode == 0, cp.stderr
                placed("admin2", "admin2")
                wait_until(lambda: served("admin2"), 20, interval=0.2, message="page from admin2 after the move")
                crm.call("admin2", "ClearResource", "ss", "webserver", "")
                placed("admin1", "admin2")
                poller.stop()
                oks = [s for s in poller.samples() if s[1]]
                assert {s[2] for s in oks} == {"admin1", "admin2"}
            assert not obs.dual_active(), f"{obs.describe()}\n{obs.timeline()}\n{crm.logs()}"
        finally:
            crm.close()
