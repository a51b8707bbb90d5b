"""ocf:heartbeat:IPaddr2 run in-process by the hadaemon agent (LocalResourceManager in_process_agents,
ha-crmd's default) gives the script's results: the same steps both ways in a namespace made here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
OCF = Path("/usr/lib/ocf/resource.d/heartbeat")

# "ipadd" adds the address with ip(8) (not by an agent): the script's stop removes it, so must ours.
DRIVER = r"""
import asyncio, json, subprocess, sys
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec
vip, rundir = sys.argv[1], sys.argv[2]
steps = [("monitor", {}), ("start", {}), ("monitor", {}), ("start", {}), ("stop", {}), ("monitor", {}),
         ("stop", {}), ("ipadd", {}), ("monitor", {}), ("stop", {}), ("monitor", {}),
         ("start", {"ip": "not-an-ip"}), ("monitor", {"nic": "nosuch0"})]
async def run(in_process):
    lrm = LocalResourceManager(lambda r: None, use_systemd=False, in_process_agents=in_process)
    out = []
    for action, extra in steps:
        if action == "ipadd":
            subprocess.run(["ip", "addr", "add", vip + "/24", "dev", "eth0"], check=True)
            continue
        params = {"ip": vip, "cidr_netmask": "24", "nic": "eth0", **extra}
        rsc = ResourceSpec("vip", "ocf", "heartbeat", "IPaddr2", params)
        r = await lrm.execute(rsc, OpRequest(action, timeout_ms=30000, meta={"HADAEMON_RUNDIR": rundir}))
        has = vip + "/" in subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
        out.append([action, r.rc, r.status, bool(r.exit_reason), has])
    await lrm.close()
    return out
async def main():
    print(json.dumps({"script": await run(False), "in_process": await run(True)}))
asyncio.run(main())
"""


@pytest.mark.skipif(not (OCF / "IPaddr2").exists(), reason="resource-agents not installed")
def test_heartbeat_ipaddr2_in_process_gives_the_scripts_results(tmp_path):
    with Cluster(["node1"]) as c:
        vip = f"10.{c.base}.0.79"
        cp = c.run("node1", [sys.executable, "-c", DRIVER, vip, str(tmp_path / "run")], timeout=240,
                   env={"PYTHONPATH": str(REPO), "HADAEMON_RUNDIR": str(tmp_path / "run")})
        assert cp.returncode == 0, cp.stderr[-3000:]
        got = json.loads(cp.stdout.strip().splitlines()[-1])
        script, inproc = got["script"], got["in_process"]
        print(json.dumps(script))
        # the good steps: same code, same address afterwards
        assert [s[:3] + s[4:] for s in script[:10]] == [s[:3] + s[4:] for s in inproc[:10]], json.dumps(got, indent=1)
        assert [s[1] for s in script[:10]] == [7, 0, 0, 0, 0, 7, 0, 0, 0, 7]
        assert script[8][3] is False and not script[9][4]    # the address ip(8) added was removed by stop
        # the bad calls fail, with a reason, both ways
        for s in script[10:] + inproc[10:]:
            assert s[1] != 0 or s[0] == "monitor", s
        assert inproc[10][3] and inproc[10][1] != 0


# In-process, the announcements after the first come from a thread of the LRM's process (not a
# forked copy of it): all arp_count rounds still go out while the process lives on.
GARP_DRIVER = r"""
import asyncio, sys
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec
vip, rundir = sys.argv[1], sys.argv[2]
async def main():
    lrm = LocalResourceManager(lambda r: None, use_systemd=False, in_process_agents=True)
    params = {"ip": vip, "cidr_netmask": "24", "nic": "eth0", "arp_count": "4", "arp_interval": "100"}
    rsc = ResourceSpec("vip", "ocf", "heartbeat", "IPaddr2", params)
    r = await lrm.execute(rsc, OpRequest("start", timeout_ms=30000, meta={"HADAEMON_RUNDIR": rundir}))
    assert r.rc == 0, r
    await asyncio.sleep(1.5)
    r = await lrm.execute(rsc, OpRequest("stop", timeout_ms=30000, meta={"HADAEMON_RUNDIR": rundir}))
    assert r.rc == 0, r
    await lrm.close()
    print("ok")
asyncio.run(main())
"""


@pytest.mark.skipif(not (OCF / "IPaddr2").exists(), reason="resource-agents not installed")
def test_in_process_ipaddr2_sends_every_announcement_round(tmp_path):
    with Cluster(["node1"]) as c:
        vip = f"10.{c.base}.0.80"
        with c.tcpdump("node1", "arp") as cap:
            cp = c.run("node1", [sys.executable, "-c", GARP_DRIVER, vip, str(tmp_path / "run")], timeout=240,
                       env={"PYTHONPATH": str(REPO), "HADAEMON_RUNDIR": str(tmp_path / "run")})
            assert cp.returncode == 0, cp.stderr[-3000:]
            pkts = cap.packets()
        from scapy.layers.l2 import ARP

        garps = [p for p in pkts if ARP in p and p[ARP].psrc == vip and p[ARP].pdst == vip]
        # one round is a gratuitous request and reply; 4 rounds, the last 3 from the thread
        assert len(garps) == 8, [p.summary() for p in pkts]
