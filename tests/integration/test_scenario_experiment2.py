"""Experiment 2 on namespaces: the VIP + ldirectord group runs on one director; halting it (powered off
through fence_hadaemon's power switch) moves the group to the other director while the client keeps being
served by the real servers (weights 1 and 3, wrr); never on both directors at once."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import Experiment2, Poller

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_director_group_moves_when_the_active_director_is_halted():
    with Cluster(["admin1", "admin2"], client=True) as c:
        e = Experiment2(c)
        e.prepare()
        crm = CrmCluster(c, e.cib(), keepalive="200ms", deadtime="3")
        try:
            with crm.observer(e.probes()) as obs:
                crm.start_all()
                for n in crm.nodes:
                    e.fallback_httpd(crm, n)
                try:
                    obs.wait("ldirectord", ["admin2"], 90)
                    obs.wait("lvs-vip", ["admin2"], 30)
                except TimeoutError as exc:
                    pytest.fail(f"{exc}\n{crm.logs()}")

                def both_reals():
                    bodies = {e.get()[1] for _ in range(8)}
                    return bodies == {"real server rs1", "real server rs2"}
                wait_until(both_reals, 60, interval=0.5, message="requests balanced over rs1 and rs2 via admin2")
                poller = Poller(c, "client", e.vip, interval=0.02)
                time.sleep(1)
                t = time.monotonic()
                cp = crm.run("admin1", ["fence_hadaemon", "-o", "off", "-n", "admin2", "-a", str(crm.power_socket)])
                assert cp.returncode == 0, cp.stderr
                assert crm.anchor_pid("admin2") is None
                try:
                    obs.wait("ldirectord", ["admin1"], 90)
                    obs.wait("lvs-vip", ["admin1"], 30)
                    wait_until(both_reals, 60, interval=0.5, message="requests balanced over rs1 and rs2 via admin1")
                except TimeoutError as exc:
                    pytest.fail(f"{exc}\n{crm.logs()}")
                time.sleep(1)
                poller.stop()
                samples = poller.samples()
                after = [s for s in samples if s[0] > t]
                assert after and after[-1][1], "the client is served at the end"
                gap = poller.longest_gap(t, samples[-1][0])
                assert gap < 60, gap                      # bounded by deadtime + the group's start, generously
                assert crm.dc("admin1") == "admin1"
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
        finally:
            crm.close()
