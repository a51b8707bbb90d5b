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
