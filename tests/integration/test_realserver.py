"""ha-realserver in network namespaces: a real server's VIP on lo never answers ARP on eth0 while the
director's VIP does; stop restores the sysctls it found and removes the address."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "agents" / "IPaddr2"
KEYS = [f"{conf}/{key}" for conf in ("all", "lo", "eth0") for key in ("arp_ignore", "arp_announce")]

ARPING = """
import json, select, sys, time
from scapy.layers.l2 import ARP, Ether
from hadaemon.io.garp import ETH_P_ARP, PACKET_OUTGOING, LinkSocket, parse_arp
target, src, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with LinkSocket("eth0", ETH_P_ARP) as link:
    req = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=link.mac) / ARP(op=1, hwsrc=link.mac, psrc=src, pdst=target))
    repliers, sent, next_send, end = [], 0, 0.0, time.monotonic() + count * 0.1 + 0.3
    while time.monotonic() < end:
        if sent < count and time.monotonic() >= next_send:
            link.send([req]); sent += 1; next_send = time.monotonic() + 0.1
        if select.select([link.sock], [], [], 0.02)[0]:
            data, addr = link.sock.recvfrom(2048)
            a = parse_arp(data)
            if a and addr[2] != PACKET_OUTGOING and a[0] == 2 and a[2] == target and a[4] == src:
                repliers.append(a[1])
print(json.dumps(repliers))
"""


@pytest.fixture(scope="module")
def c():
    with Cluster(["node1"], client=True, ipv6=True) as cluster:
        cluster.add_host("rs1")
        yield cluster


def rs_env(c):
    return {"HADAEMON_RUNDIR": str(c.workdir / "run" / "rs1"), "PYTHONPATH": str(REPO)}


def realserver(c, *args):
    cp = c.run("rs1", [sys.executable, "-m", "hadaemon.daemons.realserver", *args], env=rs_env(c))
    return cp.returncode, cp.stdout + cp.stderr


def state_file(c, vip):
    return c.workdir / "run" / "rs1" / "realserver" / f"{vip}.json"


def sysctls(c, node="rs1"):
    cmd = ["sh", "-c", " ".join(f"cat /proc/sys/net/ipv4/conf/{k};" for k in KEYS)]
    values = c.run(node, cmd, check=True).stdout.split()
    return dict(zip(KEYS, values))


def host_sysctls():
    return {k: Path(f"/proc/sys/net/ipv4/conf/{k}").read_text().strip() for k in KEYS if "eth0" not in k}


def arping(c, vip, count=3):
    """MACs answering ARP requests for vip sent from the client (one entry per reply)."""
    cp = c.run("client", [sys.executable, "-c", ARPING, vip, c.addr("client"), str(count)],
               env={"PYTHONPATH": str(REPO)}, check=True)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def arp_senders(c, vip):
    """Sender IPs of the ARP requests rs1 sends when it answers a client from the VIP (as an LVS-DR
    real server does): with arp_announce=2 they must carry its eth0 address, never the VIP."""
    from hadaemon.io.garp import ARPOP_REQUEST, parse_arp

    c.run("rs1", ["ip", "neigh", "flush", "dev", "eth0"])
    with c.tcpdump("client", "arp") as cap:
        c.run("rs1", ["ping", "-c", "1", "-W", "1", "-I", vip, c.addr("client")])
    arps = [parse_arp(bytes(p)) for p in cap.packets()]
    return {a[2] for a in arps if a and a[0] == ARPOP_REQUEST and a[1] == c.mac("rs1")}


def on_lo(c, vip):
    family = "-6" if ":" in vip else "-4"
    prefix = 128 if ":" in vip else 32
    return f" {vip}/{prefix} " in c.run("rs1", ["ip", family, "-o", "addr", "show", "dev", "lo"]).stdout


def test_vip_on_lo_never_answers_arp_and_stop_reverts(c):
    vip = f"10.{c.base}.0.200"
    rs_mac, director_mac = c.mac("rs1"), c.mac("node1")
    # Control: the VIP on lo *without* the helper's sysctls does answer ARP (so the check below can fail).
    c.run("rs1", ["ip", "addr", "add", f"{vip}/32", "dev", "lo"], check=True)
    assert set(arping(c, vip)) == {rs_mac}
    assert arp_senders(c, vip) == {vip}  # and its own ARP requests announce the VIP
    c.run("rs1", ["ip", "addr", "del", f"{vip}/32", "dev", "lo"], check=True)

    c.run("rs1", ["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_announce=1"], check=True)  # a non-default original
    before, host_before = sysctls(c), host_sysctls()
    rc, out = realserver(c, "start", vip)
    assert rc == 0, out
    after = sysctls(c)
    assert [after[k] for k in ("all/arp_ignore", "lo/arp_ignore", "all/arp_announce", "lo/arp_announce")] == \
        ["1", "1", "2", "2"]
    assert on_lo(c, vip)
    saved = json.loads(state_file(c, vip).read_text())
    assert saved["sysctls"]["/proc/sys/net/ipv4/conf/all/arp_announce"] == "1"
    # A second start is a no-op and must not record our own values as the originals.
    assert realserver(c, "start", vip)[0] == 0
    assert json.loads(state_file(c, vip).read_text())["sysctls"] == saved["sysctls"]
    assert realserver(c, "status", vip)[0] == 0

    assert arping(c, vip) == []  # nobody holds the VIP on a wire: the real server stays silent
    assert arp_senders(c, vip) == {c.addr("rs1")}  # arp_announce=2: its requests do not name the VIP
    p = {"OCF_RESKEY_ip": vip, "OCF_RESKEY_cidr_netmask": "24",
         "HADAEMON_RUNDIR": str(c.workdir / "run" / "node1")}
    cp = c.run("node1", [sys.executable, str(AGENT), "start"], env=p)
    assert cp.returncode == 0, cp.stderr
    try:
        replies = arping(c, vip)
        print(f"ARP replies for {vip}: {replies} (director {director_mac}, real server {rs_mac})")
        assert replies == [director_mac] * 3  # one reply per request, all from the director
        # LVS-DR: frames for the VIP forwarded to the real server's MAC are still accepted by it.
        c.run("client", ["ip", "neigh", "replace", vip, "lladdr", rs_mac, "dev", "eth0"], check=True)
        assert c.run("client", ["ping", "-c", "1", "-W", "2", vip]).returncode == 0
    finally:
        c.run("client", ["ip", "neigh", "del", vip, "dev", "eth0"])
        c.run("node1", [sys.executable, str(AGENT), "stop"], env=p)

    rc, out = realserver(c, "stop", vip)
    assert rc == 0, out
    assert sysctls(c) == before and not on_lo(c, vip) and not state_file(c, vip).exists()
    assert realserver(c, "status", vip)[0] == 3
    assert realserver(c, "stop", vip)[0] == 0  # stopping twice is fine
    assert host_sysctls() == host_before  # the namespace's sysctls only


def test_several_vips_share_the_sysctls(c):
    v1, v2 = f"10.{c.base}.0.201", f"10.{c.base}.0.202"
    before = sysctls(c)
    assert realserver(c, "start", v1)[0] == 0 and realserver(c, "start", v2)[0] == 0
    assert realserver(c, "stop", v1)[0] == 0
    # v2 still needs the ARP settings
    assert sysctls(c)["all/arp_ignore"] == "1" and on_lo(c, v2) and not on_lo(c, v1)
    assert realserver(c, "status", v2)[0] == 0 and realserver(c, "status", v1)[0] == 3
    assert realserver(c, "stop", v2)[0] == 0
    assert sysctls(c) == before and not on_lo(c, v2)


def test_interface_option_sets_only_that_interface(c):
    vip = f"10.{c.base}.0.203"
    before = sysctls(c)
    rc, out = realserver(c, "start", vip, "--interface", "eth0")
    assert rc == 0, out
    now = sysctls(c)
    assert (now["eth0/arp_ignore"], now["eth0/arp_announce"]) == ("1", "2")
    assert now["all/arp_ignore"] == before["all/arp_ignore"] and now["lo/arp_ignore"] == before["lo/arp_ignore"]
    assert arping(c, vip) == []  # arp_ignore on the receiving interface is enough
    assert arp_senders(c, vip) == {c.addr("rs1")}  # and arp_announce on the sending one
    assert realserver(c, "stop", vip)[0] == 0
    assert sysctls(c) == before and not on_lo(c, vip)


def test_ipv6_vip_on_lo_gets_no_neighbour_advertisement(c):
    net = f"fd00:{c.base:x}::"
    vip = f"{net}200"
    c.run("client", ["ip", "-6", "addr", "replace", f"{net}250/64", "dev", "eth0", "nodad"], check=True)
    c.run("rs1", ["ip", "-6", "addr", "replace", f"{net}100/64", "dev", "eth0", "nodad"], check=True)
    # control: on eth0 the address is found by neighbour discovery
    c.run("rs1", ["ip", "-6", "addr", "add", f"{vip}/128", "dev", "eth0", "nodad"], check=True)
    assert c.run("client", ["ping", "-6", "-c", "1", "-W", "2", vip]).returncode == 0
    c.run("rs1", ["ip", "-6", "addr", "del", f"{vip}/128", "dev", "eth0"], check=True)
    c.run("client", ["ip", "-6", "neigh", "flush", "dev", "eth0"])
    assert realserver(c, "start", vip)[0] == 0
    assert on_lo(c, vip)
    assert c.run("client", ["ping", "-6", "-c", "1", "-W", "1", vip]).returncode != 0
    assert c.mac("rs1") not in c.run("client", ["ip", "-6", "neigh", "show", vip]).stdout
    assert realserver(c, "stop", vip)[0] == 0
    assert not on_lo(c, vip)


def test_bad_input_is_a_message_not_a_traceback(c):
    rc, out = realserver(c, "start", "10.0.0.300")
    assert rc == 2 and "invalid VIP" in out and "Traceback" not in out
    before = sysctls(c)
    rc, out = realserver(c, "start", f"10.{c.base}.0.204", "--interface", "nosuch0")
    assert rc == 1 and "no such sysctl" in out and "Traceback" not in out
    assert sysctls(c) == before and not state_file(c, f"10.{c.base}.0.204").exists()
