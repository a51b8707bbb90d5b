"""ha-crmd on the namespace cluster, end to end with real agents (Dummy, an LSB script) and the ground
truth of every node watched by the observer: kill -9 of ha-crmd keeps resources running, a failing monitor
restarts then moves a resource (migration-threshold), a failed stop with fencing powers the node off
through fence_hadaemon, the DC lost mid-transition, and a CIB change that survives a whole-cluster restart."""
from __future__ import annotations

import time

import pytest

from hadaemon.testing.crm import CrmCluster, dummy, pidfile, runfile
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from hadaemon.testing.scenario import cib_xml, primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2"]
HB = dict(keepalive="200ms", deadtime="3")

# An LSB service that counts its starts and whose stop fails while /run/svc.stop-fails exists.
SVC = """#!/bin/sh
running() { [ -f /run/svc.pid ] && kill -0 "$(cat /run/svc.pid)" 2>/dev/null; }
case "$1" in
start) running && exit 0
       echo start >> /run/svc.starts
       sleep 3600 >/dev/null 2>&1 </dev/null &
       echo $! > /run/svc.pid; exit 0 ;;
stop)  [ -e /run/svc.stop-fails ] && { echo "stop refused" >&2; exit 1; }
       running && kill "$(cat /run/svc.pid)"; rm -f /run/svc.pid; exit 0 ;;
status) running && exit 0; [ -f /run/svc.pid ] && exit 1; exit 3 ;;
*) exit 2 ;;
esac
"""


def starts(crm, node):
    try:
        return len((crm.rundir(node) / "svc.starts").read_text().split())
    except FileNotFoundError:
        return 0


def boot(c, cib, **kw):
    crm = CrmCluster(c, cib, initd={"svc": SVC}, **HB, **kw)
    return crm


def fail(crm, msg):
    pytest.fail(f"{msg}\n{crm.logs(tail=6000)}")


def test_crmd_killed_and_restarted_keeps_resources_running():
    cib = cib_xml(NODES, primitive("svc", "lsb", "svc", monitor="2s") + primitive("d1", "ocf", "Dummy", "heartbeat",
                                                                                  monitor="2s"),
                  '<rsc_location id="svc-pref" rsc="svc" node="n1" score="100"/>'
                  '<rsc_location id="d1-pref" rsc="d1" node="n1" score="100"/>')
    with Cluster(NODES) as c:
        crm = boot(c, cib)
        try:
            with crm.observer({"svc": pidfile("svc.pid"), "d1": dummy("d1")}) as obs:
                crm.start_all()
                obs.wait("svc", ["n1"], 60)
                obs.wait("d1", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                assert starts(crm, "n1") == 1
                for victim in ("n1", "n2"):  # the node running the resources, then the other one
                    crm.kill_crmd(victim)
                    time.sleep(2)
                    crm.restart_crmd(victim)
                    crm.wait_crm_name(victim)
                    crm.wait_dc()
                    crm.wait_idle(crm.dc("n1"))
                    time.sleep(3)  # a few monitor intervals
                    assert obs.where("svc") == ["n1"] and obs.where("d1") == ["n1"]
                    assert starts(crm, "n1") == 1 and starts(crm, "n2") == 0, crm.logs()
            changes = [(r, n) for _, r, n in obs.changes]
            assert changes == [("svc", ("n1",)), ("d1", ("n1",))] or \
                changes == [("d1", ("n1",)), ("svc", ("n1",))], (changes, crm.logs())
            assert not obs.dual_active(raw=True)
        finally:
            crm.close()


def test_failing_monitor_restarts_then_moves_after_migration_threshold():
    cib = cib_xml(NODES, primitive("d1", "ocf", "Dummy", "heartbeat", monitor="1s",
                                   meta={"migration-threshold": "2"}),
                  '<rsc_location id="d1-pref" rsc="d1" node="n1" score="100"/>')
    with Cluster(NODES) as c:
        crm = boot(c, cib)
        try:
            with crm.observer({"d1": dummy("d1")}) as obs:
                crm.start_all()
                obs.wait("d1", ["n1"], 60)
                state = crm.rundir("n1") / "resource-agents" / "Dummy-d1.state"
                state.unlink()                             # the monitor now says "not running"
                try:
                    wait_until(lambda: state.exists(), 30, message="d1 restarted on n1")
                except TimeoutError:
                    fail(crm, "d1 was not restarted on n1")
                obs.wait("d1", ["n1"], 10)
                dc = crm.dc("n1")
                wait_until(lambda: crm.status(dc).get("resources", [{}])[0].get("failcounts", {}).get("n1") == 1, 30,
                           message="fail-count 1 on n1")
                time.sleep(2)
                state.unlink()                             # second failure: threshold reached, moves away
                try:
                    obs.wait("d1", ["n2"], 30)
                except TimeoutError:
                    fail(crm, "d1 did not move to n2")
                time.sleep(3)
                assert obs.where("d1") == ["n2"]
                st = crm.status(dc)["resources"][0]
                assert st["failcounts"].get("n1") == 2 and st["nodes"] == ["n2"], st
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
        finally:
            crm.close()


def test_failed_stop_with_fencing_powers_the_node_off():
    with Cluster(NODES) as c:
        crm = boot(c, "")
        sock = crm.power_socket
        fence = (f'<primitive id="fence" class="stonith" type="fence_hadaemon">'
                 f'<instance_attributes id="fence-params"><nvpair id="fence-ipaddr" name="ipaddr" value="{sock}"/>'
                 f'<nvpair id="fence-hosts" name="pcmk_host_list" value="n1 n2"/></instance_attributes>'
                 f'<operations><op id="fence-monitor" name="monitor" interval="10s" timeout="20s"/></operations>'
                 f'</primitive>')
        cib = cib_xml(NODES, fence + primitive("svc", "lsb", "svc", monitor="2s"),
                      '<rsc_location id="svc-pref" rsc="svc" node="n1" score="100"/>',
                      options={"stonith-enabled": "true", "stonith-timeout": "30s"})
        crm.set_cib(cib)
        try:
            with crm.observer({"svc": pidfile("svc.pid")}) as obs:
                crm.start_all()
                obs.wait("svc", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))
                (crm.rundir("n1") / "svc.stop-fails").touch()
                cp = crm.call("n2", "MigrateResource", "ss", "svc", "n2")
                assert cp.returncode == 0, cp.stderr
                try:
                    wait_until(lambda: crm.switch.offs("n1") >= 1, 60, message="n1 fenced")
                    obs.wait("svc", ["n2"], 60)
                except TimeoutError as exc:
                    fail(crm, str(exc))
                assert crm.switch.offs("n1") == 1 and crm.switch.offs("n2") == 0
                t_off = [h[2] for h in crm.switch.outlets["n1"].history if h[1] == "off"][0]
                t_n2 = [t for t, r, n in obs.changes if r == "svc" and n == ("n2",)][0]
                assert t_off < t_n2, "svc was recovered on n2 before n1 was fenced"
                # the reboot brought n1 back (the power switch's on-hook boots it); svc stays on n2
                crm.wait_crm_name("n1", 60)
                crm.wait_dc(timeout=60)
                time.sleep(3)
                assert obs.where("svc") == ["n2"]
            assert not obs.dual_active(), obs.describe()
        finally:
            crm.close()


def test_dc_lost_mid_transition():
    slow = {"op_sleep": "3"}                          # ocf:pacemaker:Dummy sleeps in every action
    group = ('<group id="g">' + primitive("a", "ocf", "Dummy", "pacemaker", params=slow, monitor="10s")
             + primitive("b", "ocf", "Dummy", "pacemaker", params=slow, monitor="10s") + "</group>")
    with Cluster(NODES) as c:
        crm = boot(c, cib_xml(NODES, group))
        try:
            with crm.observer({"a": runfile("Dummy-a.state"), "b": runfile("Dummy-b.state")}) as obs:
                crm.start_all()
                dc = crm.dc("n1")
                other = [n for n in NODES if n != dc][0]
                # put the group on the DC first, then move it away and lose the DC while it stops there
                crm.call(other, "MigrateResource", "ss", "g", dc)
                obs.wait("b", [dc], 60)
                obs.wait("a", [dc], 60)
                crm.wait_idle(dc)
                crm._auto_start_on_power = False
                stop_b = crm.crmd[dc].output().count("stop b ")
                crm.call(other, "MigrateResource", "ss", "g", other)
                wait_until(lambda: crm.crmd[dc].output().count("stop b ") > stop_b, 20, interval=0.05,
                           message="the move's transition to stop b on the DC")
                time.sleep(0.5)                       # b's stop (3 s) is in progress on the DC
                assert other not in obs.where("a") + obs.where("b"), "the move finished before the DC was lost"
                crm.power_off(dc)
                try:
                    wait_until(lambda: crm.dc(other) == other, 30, interval=0.3, message=f"{other} to become DC")
                    obs.wait("a", [other], 60)
                    obs.wait("b", [other], 30)
                except TimeoutError as exc:
                    fail(crm, str(exc))
            assert not obs.dual_active(), obs.describe()
        finally:
            crm.close()


def test_cib_change_on_one_node_survives_a_whole_cluster_restart():
    cib = cib_xml(NODES, primitive("d1", "ocf", "Dummy", "heartbeat", monitor="5s"),
                  '<rsc_location id="d1-pref" rsc="d1" node="n1" score="100"/>')
    with Cluster(NODES) as c:
        crm = boot(c, cib)
        try:
            with crm.observer({"d1": dummy("d1")}) as obs:
                crm.start_all()
                obs.wait("d1", ["n1"], 60)
                dc = crm.dc("n1")
                other = [n for n in NODES if n != dc][0]
                cp = crm.call(other, "MigrateResource", "ss", "d1", "n2")      # made on the non-DC node
                assert cp.returncode == 0, cp.stderr
                obs.wait("d1", ["n2"], 60)
                for n in NODES:
                    crm.stop_node(n)
                for n in NODES:
                    assert "cli-prefer-d1" in crm.cib_file(n), n
                crm.start_all()
                try:
                    obs.wait("d1", ["n2"], 60)
                except TimeoutError as exc:
                    fail(crm, str(exc))
                cp = crm.call("n1", "GetCib")
                assert "cli-prefer-d1" in cp.stdout
                time.sleep(2)
                assert obs.where("d1") == ["n2"]
            assert not obs.dual_active(raw=True), obs.describe(raw=True)
        finally:
            crm.close()
