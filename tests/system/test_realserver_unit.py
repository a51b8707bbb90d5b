"""Under systemd (nspawn, Debian's python3 + packages): ha-realserver@VIP.service applies and reverts
the real-server settings, and the OCF IPaddr2 agent runs with Debian's pyroute2/scapy."""
import struct
import time

import pytest

from hadaemon.io import garp
from hadaemon.testing.netns import Cluster
from hadaemon.testing import nspawn
from hadaemon.testing.nspawn import Container

pytestmark = [pytest.mark.nspawn, pytest.mark.root, pytest.mark.slow]

SYSCTLS = ["all/arp_ignore", "all/arp_announce", "lo/arp_ignore", "lo/arp_announce"]


def pcap_frames(path):
    data, off, out = path.read_bytes(), 24, []
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def sysctls(ct):
    out = ct.run(["sh", "-c", " ".join(f"cat /proc/sys/net/ipv4/conf/{k};" for k in SYSCTLS)], check=True)
    return out.stdout.split()


def with_net_admin(monkeypatch):
    """Let the container's services manage its (the node's) network: /proc/sys/net writable and
    CAP_NET_ADMIN in the bounding set. Both are nspawn defaults only with --private-network.
    (Stopgap until the harness takes extra nspawn options.)"""
    monkeypatch.setenv("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
    real_proc = nspawn.Proc

    def proc(argv, *args, **kwargs):
        if argv and argv[0] == "systemd-nspawn":
            argv = [argv[0], "--capability=CAP_NET_ADMIN,CAP_NET_RAW", *argv[1:]]
        return real_proc(argv, *args, **kwargs)

    monkeypatch.setattr(nspawn, "Proc", proc)


def test_realserver_unit_and_agent_under_systemd(rootfs, monkeypatch):
    with_net_admin(monkeypatch)
    with Cluster(["node1"], client=True, ipv6=True) as c, \
            Container(netns=c.netns("node1"), name="node1", rootfs=rootfs) as ct:
        vip = f"10.{c.base}.0.200"
        unit = f"ha-realserver@{vip}.service"
        before = sysctls(ct)
        ct.systemctl("start", unit, check=True, timeout=60)
        assert ct.systemctl("is-active", unit).stdout.strip() == "active"  # oneshot, RemainAfterExit
        props = ct.systemctl("show", "-p", "Type", "-p", "RemainAfterExit", "-p", "SubState", unit).stdout.split()
        assert sorted(props) == ["RemainAfterExit=yes", "SubState=exited", "Type=oneshot"], props
        assert sysctls(ct) == ["1", "2", "1", "2"]
        assert f"{vip}/32" in ct.run(["ip", "-o", "addr", "show", "dev", "lo"], check=True).stdout
        assert ct.run(["ha-realserver", "status", vip]).returncode == 0
        ct.systemctl("stop", unit, check=True, timeout=60)
        assert sysctls(ct) == before
        assert f"{vip}/32" not in ct.run(["ip", "-o", "addr", "show", "dev", "lo"], check=True).stdout
        assert ct.run(["ha-realserver", "status", vip]).returncode == 3

        # The OCF agent with the distribution's python3-pyroute2 and python3-scapy.
        env = ["env", "OCF_ROOT=/usr/lib/ocf", f"OCF_RESKEY_ip={vip}", "OCF_RESKEY_cidr_netmask=24",
               "OCF_RESKEY_arp_count=2", "OCF_RESKEY_arp_interval=100"]
        agent = [*env, "python3", "/opt/hadaemon/agents/IPaddr2"]
        codes = []
        with c.tcpdump("client", "arp") as cap:
            for action in ("monitor", "start", "monitor", "start", "stop", "monitor"):
                cp = ct.run([*agent, action], timeout=60)
                codes.append(cp.returncode)
                assert "Traceback" not in cp.stderr, cp.stderr
            time.sleep(0.3)
        assert codes == [7, 0, 0, 0, 0, 7]
        frames = [garp.parse_arp(f) for f in pcap_frames(cap.stop())]
        sent = [a for a in frames if a and a[1] == c.mac("node1") and a[2] == a[4] == vip]
        assert len(sent) == 4  # arp_count=2 rounds x (request + reply)

        # IPv6 with the distribution's pyroute2 0.7: preferred_lft (cacheinfo) and unsolicited NAs.
        from scapy.layers.inet6 import ICMPv6ND_NA
        from scapy.layers.l2 import Ether

        net = f"fd00:{c.base:x}::"
        ct.run(["ip", "-6", "addr", "add", f"{net}1/64", "dev", "eth0", "nodad"], check=True)
        v6 = [e for e in env if "RESKEY_ip" not in e and "netmask" not in e] + [
            f"OCF_RESKEY_ip={net}200", "OCF_RESKEY_cidr_netmask=64", "OCF_RESKEY_nodad=true",
            "OCF_RESKEY_preferred_lft=0"]
        with c.tcpdump("client", "icmp6") as cap:
            cp = ct.run([*v6, "python3", "/opt/hadaemon/agents/IPaddr2", "start"], timeout=60)
            assert cp.returncode == 0, cp.stderr
            time.sleep(0.3)
        shown = ct.run(["ip", "-6", "addr", "show", "dev", "eth0"], check=True).stdout
        assert f"{net}200/64" in shown and "preferred_lft 0sec" in shown, shown
        nas = [Ether(f) for f in pcap_frames(cap.stop())]
        nas = [p for p in nas if ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == f"{net}200" and p[ICMPv6ND_NA].O]
        assert len(nas) == 2
        assert ct.run([*v6, "python3", "/opt/hadaemon/agents/IPaddr2", "stop"]).returncode == 0
        assert f"{net}200/64" not in ct.run(["ip", "-6", "addr", "show", "dev", "eth0"], check=True).stdout
