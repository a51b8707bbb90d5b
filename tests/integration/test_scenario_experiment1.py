"""Experiment 1 end to end on namespaces: admin1 and admin2 with the webserver group (VIP .222, the shared
store bind-mounted by ocf:heartbeat:Filesystem, lighttpd as lsb:httpd) and the mysql group (VIP .220, its
store, MariaDB as lsb:mysqld), a client in its own namespace, ping node = the client (pingd rule).
Cut admin1 -> the page comes from admin2; restore -> webserver fails back (auto_failback on); cut admin2 ->
admin1 takes mysql and answers SQL; MigrateResource over D-Bus moves a group. The observer samples both
nodes every 25 ms: no resource is ever active on two connected nodes (a cut node is plugged back once it
has stopped its groups, as the pingd rule makes it do)."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.corosync import CorosyncCluster
from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import Experiment1, Poller

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.mark.parametrize("stack", ["heartbeat", "corosync"])
def test_experiment1(stack):
    """stack corosync (issue 15): the same run with ha-heartbeat taking its membership from Corosync 3."""
    with Cluster(["admin1", "admin2"], client=True) as c:
        e = Experiment1(c)
        e.prepare_storage()
        if stack == "corosync":
            cs = CorosyncCluster(c, nodes=["admin1", "admin2"])
            cs.start_all()
            cs.wait_ring(timeout=90)
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
