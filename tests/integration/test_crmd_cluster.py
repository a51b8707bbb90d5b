"""ha-crmd on namespace nodes (ha-heartbeat + ha-crmd per node, private buses, ocf:heartbeat:Dummy):
one DC; a resource starts on its preferred node, moves when that node is cut and comes back when it
returns; ha-crmd killed -9 and restarted re-probes without restarting anything; a CIB change made on
one node is replicated, persisted on every node and survives a restart of the whole cluster."""
import json
import os
import re
import sys
import time

import pytest

from hadaemon.testing.crm import CrmCluster, dummy
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import run_cmd, wait_until
from tests.integration.cibs import cib, dummy_primitive, fence_device

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIB = cib(dummy_primitive("d1"), '<rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/>')


def _where(crm, rsc="d1"):
    return [n for n in crm.nodes if (crm.rundir(n) / "resource-agents" / f"Dummy-{rsc}.state").exists()]


def _wait_where(crm, nodes, timeout=60):
    try:
        wait_until(lambda: _where(crm) == nodes, timeout, interval=0.1, message=f"d1 active on {nodes}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; active on {_where(crm)}\n{crm.logs()}") from None


def test_one_dc_resource_starts_fails_over_and_fails_back():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        dc = crm.wait_dc()
        assert dc in ("node1", "node2")
        _wait_where(crm, ["node1"])
        # without fencing an isolated node keeps its copy running (split brain) until it returns
        c.cut("node1")
        _wait_where(crm, ["node1", "node2"])
        assert crm.wait_dc(["node2"]) == "node2"
        c.restore("node1")
        _wait_where(crm, ["node1"])               # multiple-active recovery, auto_failback on: node1 only
        crm.wait_idle(crm.wait_dc())
        # node2's view: its copy of the CIB may still be on its way from the DC when the DC is idle
        seen = {}

        def viewed():
            seen["st"] = crm.status("node2")
            d = [r for r in seen["st"].get("resources", ()) if r["id"] == "d1"]
            return bool(d) and d[0]["nodes"] == ["node1"] and d[0]["role"] == "Started"
        try:
            wait_until(viewed, 30, interval=0.2, message="node2 sees d1 started on node1")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {seen.get('st')}\n{crm.logs()}") from None
        st = seen["st"]
        assert st["quorum"] is True and set(st["nodes"]) == {"node1", "node2"}
        pe = crm.state_dir(crm.wait_dc()) / "pe-input"
        inputs = sorted(os.listdir(pe), key=lambda n: int(n.split("-")[2].split(".")[0]))
        assert inputs and all(n.startswith("pe-input-") for n in inputs)
        # the archived inputs replay offline: the last one is the stable state (nothing to do)
        cp = run_cmd([sys.executable, "-m", "hadaemon.cli.hactl", "simulate", "-S", str(pe / inputs[-1])],
                     check=False, timeout=60)
        assert cp.returncode == 0, cp.stderr
        summary = cp.stdout.split("Transition Summary:")[1].split("Executing")[0]
        assert summary.strip() == "", cp.stdout
        # every input that made a transition replays to the actions the DC logged for it
        replayed = 0
        for n in crm.nodes:
            for tid, path, actions in _logged_transitions(crm.crmd[n].output()):
                if not os.path.exists(path):
                    continue                      # the input of a DC whose state dir was not kept
                cp = run_cmd([sys.executable, "-m", "hadaemon.cli.hactl", "simulate", "-S", path],
                             check=False, timeout=60)
                assert cp.returncode == 0, cp.stderr
                lines = cp.stdout.split("Transition Summary:")[1].split("Executing")[0].splitlines()
                assert [ln.split() for ln in lines if ln.strip()] == actions, (n, tid, path, cp.stdout)
                replayed += 1 if actions else 0
        assert replayed >= 2, replayed            # the first start and the failover at least


def _logged_transitions(log: str):
    """(transition id, pe-input path, [summary line tokens]) for each transition a DC's log announces."""
    out = []
    current = None
    for line in log.splitlines():
        m = re.search(r"transition (\d+) \(.*\): \d+ actions, input (\S+) \[EVENT=transition-start", line)
        if m:
            current = (m.group(1), m.group(2), [])
            out.append(current)
            continue
        m = re.search(r"INFO: +(\* .*?) \[TRANSITION=(\d+)\]$", line)
        if m and current is not None and m.group(2) == current[0]:
            current[2].append(m.group(1).split())
    return out


def test_kill9_restart_keeps_resources_and_cib_changes_are_replicated_and_survive_a_full_restart():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        _wait_where(crm, ["node1"])
        crm.wait_idle(crm.wait_dc())
        state = crm.rundir("node1") / "resource-agents" / "Dummy-d1.state"
        before = os.stat(state)
        for victim in ("node1", "node2"):
            offsets = {n: len(crm.crmd[n].output()) for n in crm.nodes}
            offset = offsets[victim]
            crm.kill_crmd(victim)
            crm.restart_crmd(victim)
            crm.wait_crm_name(victim)
            crm.wait_dc()
            # the restarted crmd re-probes d1 (found running), and nothing is restarted
            wait_until(lambda v=victim, o=offset: "monitor d1: rc=" in crm.crmd[v].output()[o:],
                       60, message=f"{victim} re-probed d1")
            crm.wait_idle(crm.wait_dc())
            time.sleep(3)   # two monitor intervals: a wrong restart would have happened by now
            assert _where(crm) == ["node1"]
            after = os.stat(state)
            assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), crm.logs()
            log = crm.crmd[victim].output()[offset:]
            assert "start d1" not in log and "stop d1" not in log, log
            # a probe finding d1 running where the DC expected "not running" is news, not a failure:
            # the transition is aborted and recomputed (as Pacemaker's controller does), never "failed"
            since = "".join(crm.crmd[n].output()[offsets[n]:] for n in crm.nodes)
            assert not re.search(r"transition \d+ failed", since), since
            if victim == "node1":
                assert re.search(r"transition \d+ aborted: probe of d1 on node1: rc=0 \(expected 7\)", since), since
        # a configuration change made through node2 is on both nodes' disks when acknowledged
        xml = json.loads(crm.call("node2", "GetCib").stdout)["data"][0]
        xml = xml.replace('node="node1" score="100"', 'node="node2" score="100"')
        epoch = json.loads(crm.call("node2", "ReplaceCib", "s", xml).stdout)["data"][0]
        assert int(epoch.split(":")[1]) >= 2
        for n in crm.nodes:
            assert 'node="node2" score="100"' in crm.cib_file(n), n
        _wait_where(crm, ["node2"])
        crm.wait_idle(crm.wait_dc())
        # the whole cluster restarts: the change is still there, and the resource placed by it
        for n in crm.nodes:
            crm.crmd[n].terminate(30)
        for n in crm.nodes:
            crm.start_crmd(n)
        for n in crm.nodes:
            crm.wait_crm_name(n)
        crm.wait_dc()
        cib = json.loads(crm.call("node1", "GetCib").stdout)["data"][0]
        assert 'node="node2" score="100"' in cib
        _wait_where(crm, ["node2"])


def test_a_clean_stop_moves_the_resources_away_first():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        _wait_where(crm, ["node1"])
        crm.wait_idle(crm.wait_dc())
        with crm.observer({"d1": dummy("d1")}) as obs:
            crm.crmd["node1"].terminate(120)      # SIGTERM: the DC stops d1 here, starts it on node2
            assert crm.crmd["node1"].returncode == 0, crm.logs()
            _wait_where(crm, ["node2"])
            assert crm.wait_dc(["node2"]) == "node2"
        assert obs.dual_active() == [], obs.describe()
        assert "stop d1: rc=0" in crm.crmd["node1"].output(), crm.logs()
        assert "node1 may shut down" in crm.logs(), crm.logs()
        # node1's crmd comes back: d1 returns (auto_failback on) and node1 is a member again
        crm.start_crmd("node1")
        crm.wait_crm_name("node1")
        _wait_where(crm, ["node1"])
        st = crm.wait_idle(crm.wait_dc())
        assert st["nodes"]["node1"]["state"] == "online", st


FENCED_CIB = cib(fence_device("SOCKET", "node1 node2 node3", monitor="10s") + dummy_primitive("d1"),
                 '<rsc_location id="prefer-node1" rsc="d1" node="node1" score="100"/>'
                 '<rsc_location id="fence-node3" rsc="fence" node="node3" score="100"/>',
                 {"stonith-enabled": "true"})


def test_a_lost_node_is_fenced_before_its_resource_starts_elsewhere():
    with Cluster(["node1", "node2", "node3"]) as c:
        crm = CrmCluster(c, FENCED_CIB.replace("SOCKET", str(c.workdir / "power.sock")), fencing=True)
        crm._auto_start_on_power = False      # node1 stays off after it is fenced
        crm.start_all()
        _wait_where(crm, ["node1"])
        crm.wait_idle(crm.wait_dc())
        c.partition("node1")                  # node1 loses quorum and stops d1; the others fence it
        # node1 is power-cycled (reboot): it runs nothing after that; its /run files stay on disk
        # until it boots, so only node2 and node3 are looked at
        try:
            wait_until(lambda: crm.switch.offs("node1") >= 1 and
                       [n for n in _where(crm) if n != "node1"] == ["node2"],
                       90, interval=0.1, message="node1 fenced and d1 on node2")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: d1 on {_where(crm)}, node1 {crm.switch.status('node1')}\n"
                                 f"{crm.logs()}") from None
        dc = crm.wait_dc(["node2", "node3"])
        log = crm.crmd[dc].output()
        fenced = log.index("fencing node1 (reboot) with fence on")
        assert "fencing node1 with fence: done" in crm.crmd["node2"].output() + crm.crmd["node3"].output()
        assert log.index("start d1", fenced) > fenced, log
        st = crm.wait_idle(dc)
        assert st["nodes"]["node1"]["state"] == "offline", st


def test_a_dc_whose_crmd_dies_for_good_is_replaced_and_rejoins_when_restarted():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        _wait_where(crm, ["node1"])
        assert crm.wait_dc() == "node1"
        crm.kill_crmd("node1")                     # its heartbeat stays up: only the crmd is silent
        wait_until(lambda: crm.dc("node2") == "node2", 60, interval=0.3, message="node2 elected without node1")
        assert "the crmd of node1 has been silent" in crm.crmd["node2"].output()
        st = crm.status("node2")
        assert st["nodes"]["node1"]["state"] in ("unclean", "offline"), st["nodes"]
        crm.start_crmd("node1")
        crm.wait_crm_name("node1")
        wait_until(lambda: crm.status("node2").get("nodes", {}).get("node1", {}).get("state") == "online",
                   60, interval=0.3, message="node1 online again")
        _wait_where(crm, ["node1"])
        crm.wait_idle(crm.wait_dc())


def test_the_newer_cib_wins_at_join_even_when_its_node_comes_back_last():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_all()
        _wait_where(crm, ["node1"])
        crm.wait_idle(crm.wait_dc())
        crm.crmd["node2"].terminate(60)           # node2 leaves (clean stop) with the CIB as it is
        assert crm.wait_dc(["node1"]) == "node1"
        xml = json.loads(crm.call("node1", "GetCib").stdout)["data"][0]
        xml = xml.replace('score="100"', 'score="77"')
        epoch = json.loads(crm.call_joined("node1", "ReplaceCib", "s", xml).stdout)["data"][0]
        assert 'score="77"' in crm.cib_file("node1") and 'score="77"' not in crm.cib_file("node2")
        crm.crmd["node1"].terminate(60)
        crm.start_crmd("node2")                    # the node with the older CIB comes back first
        crm.wait_crm_name("node2")
        assert crm.wait_dc(["node2"]) == "node2"
        crm.start_crmd("node1")
        crm.wait_crm_name("node1")
        crm.wait_dc()
        wait_until(lambda: 'score="77"' in json.loads(crm.call("node2", "GetCib").stdout)["data"][0], 30,
                   interval=0.3, message="node1's newer CIB adopted by the cluster")
        wait_until(lambda: 'score="77"' in crm.cib_file("node2"), 10, message="and persisted on node2")
        got = json.loads(crm.call("node2", "GetCib").stdout)["data"][0]
        assert re.search(r' epoch="(\d+)"', got).group(1) == epoch.split(":")[1]


def test_a_two_node_cluster_waits_for_both_nodes_at_first_start():
    with Cluster(["node1", "node2"]) as c:
        crm = CrmCluster(c, CIB, fencing=False)
        crm.start_anchor("node1")
        crm.hb.start("node1")
        crm.hb.wait_started("node1")
        crm.start_crmd("node1")                    # node2 is down: wait_for_all, no quorum
        crm.wait_crm_name("node1")
        assert crm.wait_dc(["node1"]) == "node1"
        time.sleep(4)
        st = crm.status("node1")
        assert st["quorum"] is False, st
        assert _where(crm) == []
        crm.start_node("node2")
        _wait_where(crm, ["node1"])
        assert crm.status("node1")["quorum"] is True
        c.cut("node2")                             # two_node: the survivor keeps quorum
        wait_until(lambda: crm.status("node1")["nodes"]["node2"]["state"] == "offline", 30, interval=0.3,
                   message="node2 offline")
        assert crm.status("node1")["quorum"] is True
        time.sleep(2)
        assert "node1" in _where(crm)              # (isolated node2 has quorum too: without fencing it
        assert crm.status("node1")["resources"][0]["nodes"] == ["node1"]   # starts its own copy)
        # ha-crmd alone restarted on the survivor (e.g. by the watchdog): ha-heartbeat, the same
        # generation, saw both nodes, so wait_for_all stays satisfied and nothing is stopped
        state = crm.rundir("node1") / "resource-agents" / "Dummy-d1.state"
        before = os.stat(state)
        offset = len(crm.crmd["node1"].output())
        crm.kill_crmd("node1")
        crm.restart_crmd("node1")
        crm.wait_crm_name("node1")
        assert crm.wait_dc(["node1"]) == "node1"
        wait_until(lambda: "monitor d1: rc=" in crm.crmd["node1"].output()[offset:], 60,
                   message="node1 re-probed d1")
        time.sleep(3)
        assert crm.status("node1")["quorum"] is True, crm.logs()
        assert "node1" in _where(crm)
        after = os.stat(state)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), crm.logs()
        assert "stop d1" not in crm.crmd["node1"].output()[offset:], crm.logs()
