"""ocf:heartbeat:Filesystem bind mounts run in-process (hadaemon.agents.filesystem, ha-crmd's default)
give the script's results: the same steps both ways, in a private mount namespace made here."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
OCF = Path("/usr/lib/ocf/resource.d/heartbeat")

# Each step: (action, parameter changes, what the driver does first). For every step: the code, the
# status, whether the mount point is mounted afterwards, and whether the in-process agent did it itself
# (not handed to the script).
DRIVER = r"""
import asyncio, json, os, subprocess, sys
import hadaemon.agents.filesystem as fs
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec
base = sys.argv[1]
src, mp = os.path.join(base, "export"), os.path.join(base, "mnt", "www")
ran = []
real = fs.execute
def counting(action, params, env=None, out=None):
    r = real(action, params, env, out)
    ran.append(r != fs.DELEGATE)
    return r
fs.execute = counting
steps = [("monitor", {}, None), ("start", {}, None), ("monitor", {}, None), ("status", {}, None),
         ("start", {}, None), ("stop", {}, None), ("monitor", {}, None), ("stop", {}, None),
         ("start", {"directory": mp + "//"}, None), ("monitor", {"directory": mp + "/"}, None),
         ("stop", {"directory": mp + "/"}, None),
         ("start", {}, "busy"), ("stop", {"force_unmount": "safe"}, None), ("monitor", {}, None),
         ("start", {}, "submount"), ("stop", {}, None),
         ("start", {"fstype": "tmpfs", "options": ""}, None), ("stop", {"fstype": "tmpfs", "options": ""}, None),
         ("start", {"device": os.path.join(base, "nosuch")}, None)]
def mounted():
    with open("/proc/self/mounts") as f:
        return any(line.split(" ")[1] == mp for line in f)
async def run(in_process):
    lrm = LocalResourceManager(lambda r: None, use_systemd=False, in_process_agents=in_process)
    out, holder = [], None
    for action, extra, before in steps:
        if before == "busy":
            os.makedirs(mp, exist_ok=True)
        if before == "submount":
            subprocess.run(["mount", "--bind", src, mp], check=True)
            os.makedirs(os.path.join(mp, "sub"), exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "none", os.path.join(mp, "sub")], check=True)
        params = {"device": src, "directory": mp, "fstype": "none", "options": "bind", **extra}
        rsc = ResourceSpec("store", "ocf", "heartbeat", "Filesystem", params)
        del ran[:]
        r = await lrm.execute(rsc, OpRequest(action, timeout_ms=30000))
        if before == "busy" and r.rc == 0:
            holder = subprocess.Popen(["sleep", "60"], cwd=mp)
        out.append([action, r.rc, r.status, mounted(), bool(ran) and all(ran)])
    if holder is not None:
        holder.kill()
        holder.wait()
    subprocess.run(["umount", "-R", mp], capture_output=True)
    await lrm.close()
    return out
async def main():
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "index.html"), "w") as f:
        f.write("ok\n")
    print(json.dumps({"script": await run(False), "in_process": await run(True)}))
asyncio.run(main())
"""


@pytest.mark.skipif(not (OCF / "Filesystem").exists() or not shutil.which("unshare"),
                    reason="resource-agents or unshare not installed")
def test_filesystem_bind_in_process_gives_the_scripts_results(tmp_path):
    cp = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-c", DRIVER,
                         str(tmp_path)], capture_output=True, text=True, timeout=300,
                        env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert cp.returncode == 0, cp.stderr[-3000:]
    got = json.loads(cp.stdout.strip().splitlines()[-1])
    script, inproc = got["script"], got["in_process"]
    print(json.dumps(got))
    # the same codes, statuses and mount state after every step, both ways
    assert [s[:4] for s in script] == [s[:4] for s in inproc], json.dumps(got, indent=1)
    assert [s[1] for s in script[:14]] == [7, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 7]
    assert script[14][1] == 6                       # a mount below the mount point: refused
    assert script[18][1] != 0                       # no such device
    # the ordinary steps ran in-process; the busy stop, the refused start, tmpfs and the missing
    # device went to the script
    ordinary = list(range(12))
    assert all(inproc[i][4] for i in ordinary), json.dumps(inproc, indent=1)
    assert not inproc[12][4] and not inproc[14][4] and not inproc[16][4] and not inproc[18][4]
    assert not any(s[4] for s in script)
