"""The LRM running Debian's unmodified ClusterLabs IPaddr2 (inside a network namespace made here)
and Filesystem (a bind mount of a temporary directory), through `python -m hadaemon.io.lrm`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
OCF = Path("/usr/lib/ocf/resource.d/heartbeat")

# Runs inside the node's namespace: a sequence of actions through one LocalResourceManager,
# printed as JSON (rc, status, reason) per step.
DRIVER = r"""
import asyncio, json, sys
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec
steps = json.loads(sys.argv[1])
async def main():
    lrm = LocalResourceManager(lambda r: None, use_systemd=False)
    out = []
    for s in steps:
        rsc = ResourceSpec(s["id"], "ocf", "heartbeat", s["type"], s["params"])
        r = await lrm.execute(rsc, OpRequest(s["action"], timeout_ms=30000))
        out.append([r.op, r.rc, r.status, r.exit_reason])
    await lrm.close()
    print(json.dumps(out))
asyncio.run(main())
"""


def _drive(run, steps):
    cp = run([sys.executable, "-c", DRIVER, json.dumps(steps)])
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not (OCF / "IPaddr2").exists(), reason="resource-agents not installed")
def test_ipaddr2_in_a_namespace():
    with Cluster(["node1"]) as c:
        vip = f"10.{c.base}.0.77"
        params = {"ip": vip, "cidr_netmask": "24"}

        def run(argv):
            return c.run("node1", argv, timeout=120, env={"PYTHONPATH": str(REPO)})

        def has_vip():
            return vip in c.run("node1", ["ip", "-o", "-4", "addr", "show"], check=True).stdout

        step = {"id": "vip", "type": "IPaddr2", "params": params}
        got = _drive(run, [dict(step, action=a) for a in ("monitor", "start", "monitor")])
        assert got == [["monitor", 7, "done", ""], ["start", 0, "done", ""], ["monitor", 0, "done", ""]], got
        assert has_vip()
        got = _drive(run, [dict(step, action=a) for a in ("stop", "monitor", "stop")])
        assert got == [["stop", 0, "done", ""], ["monitor", 7, "done", ""], ["stop", 0, "done", ""]], got
        assert not has_vip()
        # a bad parameter: IPaddr2's own validation, mapped as is (not configured)
        bad = _drive(run, [{"id": "vip", "type": "IPaddr2", "params": {"ip": "not-an-ip"}, "action": "start"}])
        assert bad[0][1] in (2, 6) and bad[0][2] == "done" and bad[0][3], bad


# The same steps through hadaemon:IPaddr2 as a script and in-process; prints both result lists.
SAME_DRIVER = r"""
import asyncio, json, sys
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec
ocf_root, vip, rundir = sys.argv[1], sys.argv[2], sys.argv[3]
steps = [("monitor", {}), ("start", {}), ("monitor", {}), ("start", {}), ("status", {}),
         ("monitor", {"cidr_netmask": "40"}), ("start", {"ip": "not-an-ip"}), ("validate-all", {"ip": ""}),
         ("stop", {}), ("monitor", {}), ("stop", {}), ("meta-data", {})]
async def run(in_process):
    lrm = LocalResourceManager(lambda r: None, ocf_root=ocf_root, use_systemd=False, in_process_agents=in_process)
    out = []
    for action, extra in steps:
        params = {"ip": vip, "cidr_netmask": "24", "arp_count": "2", **extra}
        rsc = ResourceSpec("vip", "ocf", "hadaemon", "IPaddr2", params)
        r = await lrm.execute(rsc, OpRequest(action, timeout_ms=30000, meta={"HADAEMON_RUNDIR": rundir}))
        out.append([action, r.rc, r.status, r.exit_reason, r.output if action in ("meta-data", "status") else ""])
    await lrm.close()
    return out
async def main():
    print(json.dumps({"script": await run(False), "in_process": await run(True)}))
asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs").exists(), reason="resource-agents not installed")
def test_builtin_ipaddr2_in_process_gives_the_scripts_results(tmp_path):
    root = tmp_path / "ocf"
    (root / "resource.d" / "hadaemon").mkdir(parents=True)
    # the script, run by this interpreter (its #! names the system python3, which may lack pyroute2)
    wrapper = root / "resource.d" / "hadaemon" / "IPaddr2"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO / "agents" / "IPaddr2"} "$@"\n')
    wrapper.chmod(0o755)
    (root / "lib").symlink_to("/usr/lib/ocf/lib")
    with Cluster(["node1"]) as c:
        vip = f"10.{c.base}.0.78"
        cp = c.run("node1", [sys.executable, "-c", SAME_DRIVER, str(root), vip, str(tmp_path / "run")],
                   timeout=180, env={"PYTHONPATH": str(REPO), "HADAEMON_RUNDIR": str(tmp_path / "run")})
        assert cp.returncode == 0, cp.stderr[-3000:]
        got = json.loads(cp.stdout.strip().splitlines()[-1])
        print(json.dumps([s[:4] for s in got["script"]]))
        assert got["script"] == got["in_process"], json.dumps(got, indent=1)
        by_action = {s[0]: s for s in got["script"]}
        assert got["script"][0][1:3] == [7, "done"] and got["script"][1][1:3] == [0, "done"]
        assert by_action["meta-data"][4].lstrip().startswith("<?xml")
        assert any(s[1] != 0 and s[3] for s in got["script"])        # the bad calls fail with a reason
        assert vip not in c.run("node1", ["ip", "-o", "-4", "addr"], check=True).stdout


@pytest.mark.skipif(not (OCF / "Filesystem").exists(), reason="resource-agents not installed")
def test_filesystem_bind_mount(tmp_path):
    src, mnt = tmp_path / "shared", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    (src / "index.html").write_text("hello from the shared storage\n")
    params = {"device": str(src), "directory": str(mnt), "fstype": "none", "options": "bind"}
    step = {"id": "fs", "type": "Filesystem", "params": params}

    def run(argv):
        return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))

    def mounted():
        return any(line.split()[1] == str(mnt) for line in Path("/proc/self/mounts").read_text().splitlines())

    try:
        got = _drive(run, [dict(step, action=a) for a in ("monitor", "start", "monitor")])
        assert got == [["monitor", 7, "done", ""], ["start", 0, "done", ""], ["monitor", 0, "done", ""]], got
        assert mounted() and (mnt / "index.html").read_text() == "hello from the shared storage\n"
        got = _drive(run, [dict(step, action=a) for a in ("stop", "monitor")])
        assert got == [["stop", 0, "done", ""], ["monitor", 7, "done", ""]], got
        assert not mounted() and not (mnt / "index.html").exists()
    finally:
        if mounted():
            subprocess.run(["umount", "-l", str(mnt)], check=False)
