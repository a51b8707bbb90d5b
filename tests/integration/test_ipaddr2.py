"""hadaemon:IPaddr2 in network namespaces: GARP on the wire, client neighbour caches, OCF codes
compared with Debian's unmodified ClusterLabs IPaddr2, collision detection, ownership, IPv6."""
from __future__ import annotations

import datetime
import os
import struct
import sys
import time
from pathlib import Path

import pytest

from hadaemon.io import garp
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


class _NsScript:
    """A Python script of this test run in a node's namespace (this checkout on its path), as a context:
    killed if the test fails before it ended. result(timeout): its last stdout line as JSON, its stderr."""

    def __init__(self, c, node: str, script, *args):
        import subprocess

        self.proc = subprocess.Popen(["ip", "netns", "exec", c.netns(node), sys.executable, str(script)]
                                     + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))

    def __enter__(self) -> _NsScript:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def result(self, timeout: float = 60):
        import json

        stdout, stderr = self.proc.communicate(timeout=timeout)
        return json.loads(stdout.strip().splitlines()[-1]), stderr
AGENT = REPO / "agents" / "IPaddr2"
CLUSTERLABS = Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr2")


@pytest.fixture(scope="module")
def c():
    with Cluster(["node1", "node2"], client=True, ipv6=True) as cluster:
        yield cluster


def vip(c, host: int) -> str:
    return f"10.{c.base}.0.{host}"


def ours(c, node, action, meta=None, **params):
    """Run agents/IPaddr2 in the node's namespace; (rc, stderr, seconds)."""
    env = {f"OCF_RESKEY_{k}": str(v) for k, v in params.items()}
    env.update({f"OCF_RESKEY_CRM_meta_{k}": str(v) for k, v in (meta or {}).items()})
    env["HADAEMON_RUNDIR"] = str(c.workdir / "run" / node)
    t0 = time.time()
    cp = c.run(node, [sys.executable, str(AGENT), action], env=env, timeout=60)
    return cp.returncode, cp.stderr, t0


def theirs(c, node, action, meta=None, **params):
    env = {f"OCF_RESKEY_{k}": str(v) for k, v in params.items()}
    env.update({f"OCF_RESKEY_CRM_meta_{k}": str(v) for k, v in (meta or {}).items()})
    env.update(OCF_ROOT="/usr/lib/ocf", HA_RSCTMP=str(c.workdir / "rsctmp" / node))
    os.makedirs(env["HA_RSCTMP"], exist_ok=True)
    cp = c.run(node, [str(CLUSTERLABS), action], env=env, timeout=60)
    return cp.returncode, cp.stderr, 0.0


def addrs(c, node, dev="eth0", family="-4"):
    return c.run(node, ["ip", family, "-o", "addr", "show", "dev", dev], check=True).stdout


def has_addr(c, node, ip, prefix, dev="eth0"):
    family = "-6" if ":" in ip else "-4"
    return f" {ip}/{prefix} " in addrs(c, node, dev, family)


def neigh(c, ip, node="client"):
    return c.run(node, ["ip", "neigh", "show", ip, "dev", "eth0"], check=True).stdout.strip()


def read_pcap(path):
    """[(timestamp, frame bytes)] from a classic pcap file (microsecond or nanosecond)."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack("<IIII", data[off:off + 16])
        out.append((sec + frac * scale, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def garps(frames, ip, mac, op=None):
    """Timestamps of gratuitous ARPs for ip from mac (optionally only requests or replies)."""
    out = []
    for ts, f in frames:
        a = garp.parse_arp(f)
        if a and a[1] == mac and a[2] == ip and a[4] == ip and (op is None or a[0] == op):
            out.append(ts)
    return out


def monitor_switch_time(output, ip, mac):
    """Time of the first `ip -ts monitor neigh` line showing ip at mac."""
    for line in output.splitlines():
        if f"{ip} " in line and f"lladdr {mac}" in line and line.startswith("["):
            stamp = line[1:line.index("]")]
            return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    return None


@pytest.fixture
def cleanup(c):
    """Undo what a test left: agent-added VIPs (stop), client neighbour entries, sysctls."""
    todo = []
    yield todo
    for node, params in todo:
        ours(c, node, "stop", **params)
    for ip in {p["ip"] for _, p in todo}:
        c.run("client", ["ip", "neigh", "del", ip, "dev", "eth0"])
        for node in ("node1", "node2"):
            c.run(node, ["ip", "addr", "del", f"{ip}/{24 if ':' not in ip else 64}", "dev", "eth0"])
    c.run("client", ["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_accept=0", "net.ipv4.conf.eth0.arp_accept=0"])


# -- OCF codes, compared with ClusterLabs ---------------------------------------------------------

@pytest.mark.skipif(not CLUSTERLABS.exists(), reason="Debian's resource-agents (ClusterLabs IPaddr2) missing")
def test_ocf_codes_match_clusterlabs(c, cleanup):
    ip = vip(c, 210)
    good = {"ip": ip, "cidr_netmask": "24"}
    cleanup.append(("node1", good))
    steps = [
        ("monitor", good, None), ("status", good, None), ("start", good, None), ("monitor", good, None),
        ("monitor", good, {"interval": "10000"}), ("status", good, None), ("start", good, None),
        ("stop", good, None),
        ("monitor", good, None), ("monitor", good, {"interval": "10000"}), ("stop", good, None),
        ("validate-all", good, None), ("validate-all", {"ip": vip(c, 300), "cidr_netmask": "24"}, None),
        ("validate-all", {"ip": ip, "cidr_netmask": "33"}, None),
        ("validate-all", {"ip": ip, "nic": "nosuch0"}, None),
        ("validate-all", {"ip": ip, "arp_count": "0"}, None),
        ("validate-all", {"ip": ip, "iflabel": "waytoolonglabel"}, None),
        ("validate-all", {"ip": "10.99.99.1"}, None),  # no route: nic/netmask cannot be found
        ("start", {"ip": ip, "cidr_netmask": "33"}, None), ("monitor", {"ip": vip(c, 300)}, None),
        ("monitor", {"ip": vip(c, 300), "nic": "eth0", "cidr_netmask": "24"}, {"interval": "10000"}),
        ("stop", {"ip": "10.99.99.1"}, None), ("frobnicate", good, None), ("meta-data", good, None),
    ]
    results = {}
    for name, agent in (("clusterlabs", theirs), ("hadaemon", ours)):
        codes = []
        for action, params, meta in steps:
            rc, err, _ = agent(c, "node1", action, meta, **params)
            codes.append((action, rc, has_addr(c, "node1", ip, 24)))
        results[name] = codes
        assert not has_addr(c, "node1", ip, 24)
    for step, a, b in zip(steps, results["clusterlabs"], results["hadaemon"]):
        print(f"{step[0]:<13} {step[1]} meta={step[2]}: clusterlabs rc={a[1]} hadaemon rc={b[1]}")
    assert results["hadaemon"] == results["clusterlabs"]
    # The sequence exercises every code the issue names.
    assert {rc for _, rc, _ in results["hadaemon"]} >= {0, 1, 3, 6, 7}


# -- gratuitous ARP on the wire -------------------------------------------------------------------

@pytest.mark.parametrize("count,interval_ms,run_arping", [(None, None, "true"), (3, 400, "false")])
def test_garp_count_spacing_and_time_to_first(c, cleanup, count, interval_ms, run_arping):
    ip = vip(c, 211)
    params = {"ip": ip, "cidr_netmask": "24", "run_arping": run_arping}
    if count is None:  # the defaults: arp_count 5, arp_interval 200 ms
        count, interval_ms = 5, 200
    else:
        params.update(arp_count=count, arp_interval=interval_ms)
    cleanup.append(("node2", params))
    mac = c.mac("node2")
    with c.tcpdump("client", "arp") as cap:
        rc, err, t0 = ours(c, "node2", "start", **params)
        t_return = time.time()
        assert rc == 0, err
        time.sleep(count * interval_ms / 1000 + 0.5)
    frames = read_pcap(cap.stop())
    requests = garps(frames, ip, mac, garp.ARPOP_REQUEST)
    replies = garps(frames, ip, mac, garp.ARPOP_REPLY)
    for _, f in frames:  # both forms, as sent: to the broadcast MAC, request tha 0, reply tha = sha
        a = garp.parse_arp(f)
        if a and a[1] == mac and a[2] == ip:
            assert f[:6] == b"\xff" * 6 and a[4] == ip, a
            assert a[3] == (garp.ZERO_MAC if a[0] == garp.ARPOP_REQUEST else mac), a
    gaps = [b - a for a, b in zip(requests, requests[1:])]
    print(f"arp_count={count} arp_interval={interval_ms}ms: {len(requests)} requests, {len(replies)} replies; "
          f"gaps {[round(g * 1000) for g in gaps]} ms")
    print(f"agent process start -> first GARP on the wire (collision probe {run_arping}): "
          f"{(requests[0] - t0) * 1000:.0f} ms "
          f"(start returned after {(t_return - t0) * 1000:.0f} ms)")
    assert len(requests) == count and len(replies) == count
    assert all(0.5 * interval_ms / 1000 <= g <= 2.0 * interval_ms / 1000 for g in gaps)
    assert abs(sum(gaps) / len(gaps) - interval_ms / 1000) < 0.25 * interval_ms / 1000
    # start returns promptly: the later rounds are sent in the background
    assert t_return < requests[-1]


IN_PROCESS = """
import json, sys, time
from hadaemon.agents import ipaddr2
from hadaemon.io import garp
import pyroute2, scapy.layers.l2  # what an LRM running agents in-process has loaded already
params, env = json.loads(sys.stdin.read())
t0 = time.time()
rc = ipaddr2.run("start", params, env)
print(json.dumps([rc, t0]))
"""


def in_process_start(c, node, **params):
    """Run the start action in-process (modules preloaded, like the LRM will); (rc, t0)."""
    import json

    env = {"HADAEMON_RUNDIR": str(c.workdir / "run" / node)}
    cp = c.run(node, [sys.executable, "-c", IN_PROCESS], input=json.dumps([params, env]), env={
        "PYTHONPATH": str(REPO)}, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout.strip().splitlines()[-1])


def test_time_to_first_garp(c, cleanup):
    """Failover speed: agent start -> first GARP on the wire, as a process and in-process (figures)."""
    ip = vip(c, 219)
    figures = {}
    for mode in ("process", "in-process"):
        for run_arping in ("true", "false"):
            p = {"ip": ip, "cidr_netmask": "24", "arp_count": "1", "run_arping": run_arping}
            cleanup.append(("node2", p))
            took = []
            for _ in range(3):
                with c.tcpdump("client", "arp") as cap:
                    if mode == "process":
                        rc, err, t0 = ours(c, "node2", "start", **p)
                    else:
                        (rc, t0), err = in_process_start(c, "node2", **p), ""
                    assert rc == 0, err
                    time.sleep(0.1)
                first = garps(read_pcap(cap.stop()), ip, c.mac("node2"))
                assert len(first) == 2  # one round: request + reply
                took.append((first[0] - t0) * 1000)
                assert ours(c, "node2", "stop", **p)[0] == 0
            took.sort()
            figures[mode, run_arping] = took
            print(f"start -> first GARP on the wire, {mode:<10}, collision probe {run_arping:<5}: "
                  f"min {took[0]:.0f} ms, median {took[1]:.0f} ms, max {took[-1]:.0f} ms")
    # The collision probe listens 2 x 100 ms before the address is added: a lower bound with it on.
    assert figures["in-process", "true"][0] >= 200 and figures["process", "true"][0] >= 200


@pytest.mark.parametrize("state", ["reachable", "stale"])
def test_existing_entry_switches_on_first_garp(c, cleanup, state):
    ip = vip(c, 212)
    p1 = {"ip": ip, "cidr_netmask": "24", "arp_count": 1}
    cleanup += [("node1", p1), ("node2", p1)]
    assert ours(c, "node1", "start", **p1)[0] == 0
    assert c.run("client", ["ping", "-c", "1", "-W", "2", ip]).returncode == 0
    old, new = c.mac("node1"), c.mac("node2")
    if state == "stale":
        c.run("client", ["ip", "neigh", "change", ip, "lladdr", old, "dev", "eth0", "nud", "stale"], check=True)
    before = neigh(c, ip)
    assert old in before and state.upper() in before, before
    assert ours(c, "node1", "stop", **p1)[0] == 0  # the old node lets go (or dies)
    mon = c.spawn("client", ["ip", "-ts", "monitor", "neigh"], name=f"neighmon-{state}")
    time.sleep(0.3)
    with c.tcpdump("client", "arp") as cap:
        rc, err, t0 = ours(c, "node2", "start", **p1)  # arp_count=1: one round only
        assert rc == 0, err
        wait_until(lambda: new in neigh(c, ip), 3, message="client entry to switch to node2")
        time.sleep(0.2)
    mon.terminate(2)
    frames = read_pcap(cap.stop())
    first = garps(frames, ip, new)
    assert first, "no GARP captured"
    switched = monitor_switch_time(mon.output(), ip, new)
    assert switched is not None, mon.output()
    print(f"{state} entry: first GARP {(first[0] - t0) * 1000:.0f} ms after agent start; client entry "
          f"switched {(switched - first[0]) * 1000:.2f} ms after the GARP reached it; now: {neigh(c, ip)}")
    assert len(garps(frames, ip, new, garp.ARPOP_REQUEST)) == 1  # it was that single round that did it
    assert -0.001 <= switched - first[0] < 1.0


def test_new_entry_only_with_arp_accept(c, cleanup):
    ip = vip(c, 213)
    p = {"ip": ip, "cidr_netmask": "24", "arp_count": 1}
    cleanup.append(("node2", p))
    new = c.mac("node2")
    c.run("client", ["ip", "neigh", "del", ip, "dev", "eth0"])
    # arp_accept=0 (default): the GARP is on the wire but the client creates no entry
    with c.tcpdump("client", "arp") as cap:
        assert ours(c, "node2", "start", **p)[0] == 0
        time.sleep(0.5)
    assert garps(read_pcap(cap.stop()), ip, new)
    assert new not in neigh(c, ip)
    assert ours(c, "node2", "stop", **p)[0] == 0
    # arp_accept=1: the first GARP creates the entry
    c.run("client", ["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_accept=1", "net.ipv4.conf.eth0.arp_accept=1"],
          check=True)
    mon = c.spawn("client", ["ip", "-ts", "monitor", "neigh"], name="neighmon-new")
    time.sleep(0.3)
    with c.tcpdump("client", "arp") as cap:
        rc, err, t0 = ours(c, "node2", "start", **p)
        assert rc == 0, err
        wait_until(lambda: new in neigh(c, ip), 3, message="client to learn the VIP from the GARP")
        time.sleep(0.2)
    mon.terminate(2)
    first = garps(read_pcap(cap.stop()), ip, new)
    switched = monitor_switch_time(mon.output(), ip, new)
    assert first and switched is not None
    print(f"arp_accept=1: new entry {(switched - first[0]) * 1000:.2f} ms after the first GARP "
          f"({(first[0] - t0) * 1000:.0f} ms after agent start): {neigh(c, ip)}")
    assert -0.001 <= switched - first[0] < 1.0


def test_monitor_refresh_sends_arp_count_refresh(c, cleanup):
    ip = vip(c, 214)
    p = {"ip": ip, "cidr_netmask": "24", "arp_count": 1, "arp_count_refresh": 3, "arp_interval": 100}
    cleanup.append(("node1", p))
    assert ours(c, "node1", "start", **p)[0] == 0
    time.sleep(0.2)
    with c.tcpdump("client", "arp") as cap:
        assert ours(c, "node1", "monitor", {"interval": "10000"}, **p)[0] == 0
        time.sleep(0.6)
    sent = garps(read_pcap(cap.stop()), ip, c.mac("node1"), garp.ARPOP_REQUEST)
    print(f"monitor with arp_count_refresh=3: {len(sent)} GARP rounds")
    assert len(sent) == 3


def test_stop_kills_the_background_announcer(c, cleanup):
    ip = vip(c, 215)
    p = {"ip": ip, "cidr_netmask": "24", "arp_count": 40, "arp_interval": 100}
    cleanup.append(("node1", p))
    with c.tcpdump("client", "arp") as cap:
        assert ours(c, "node1", "start", **p)[0] == 0
        time.sleep(0.35)
        assert ours(c, "node1", "stop", **p)[0] == 0
        stopped = time.time()
        time.sleep(0.5)
    sent = garps(read_pcap(cap.stop()), ip, c.mac("node1"), garp.ARPOP_REQUEST)
    print(f"arp_count=40: {len(sent)} rounds before stop; {sum(t > stopped for t in sent)} after")
    assert 2 <= len(sent) < 40 and not [t for t in sent if t > stopped]
    assert not has_addr(c, "node1", ip, 24)


def test_nic_and_netmask_from_the_routing_table(c, cleanup):
    """No nic, no cidr_netmask: the most specific connected route containing ip gives both (findif)."""
    dummy, net = "vipx0", f"172.31.{c.base}"  # a veth pair inside node1 (no dummy module on every host)
    c.run("node1", ["ip", "link", "add", dummy, "type", "veth", "peer", "name", "vipx1"], check=True)
    try:
        c.run("node1", ["ip", "addr", "add", f"{net}.1/28", "dev", dummy], check=True)
        for dev in (dummy, "vipx1"):
            c.run("node1", ["ip", "link", "set", dev, "up"], check=True)
        c.run("node1", ["ip", "route", "add", f"{net}.0/24", "dev", "eth0"], check=True)  # less specific
        on_eth0, on_dummy = {"ip": vip(c, 220), "arp_count": 1}, {"ip": f"{net}.5", "arp_count": 1}
        cleanup += [("node1", on_eth0), ("node1", on_dummy)]
        for p in (on_eth0, on_dummy):
            rc, err, _ = ours(c, "node1", "start", **p)
            assert rc == 0, err
        assert has_addr(c, "node1", vip(c, 220), 24)
        assert has_addr(c, "node1", f"{net}.5", 28, dev=dummy) and not has_addr(c, "node1", f"{net}.5", 24)
        assert ours(c, "node1", "monitor", **on_dummy)[0] == 0
        for p in (on_eth0, on_dummy):
            assert ours(c, "node1", "stop", **p)[0] == 0
        assert not has_addr(c, "node1", vip(c, 220), 24) and not has_addr(c, "node1", f"{net}.5", 28, dev=dummy)
    finally:
        c.run("node1", ["ip", "link", "del", dummy])
        c.run("node1", ["ip", "route", "del", f"{net}.0/24", "dev", "eth0"])


def test_imports_only_what_is_needed(c, cleanup):
    """`python -X importtime` of an IPv4 start: pyroute2, and no scapy at all (the GARP frames are packed
    by hadaemon.io.garp; scapy builds only probes and IPv6 frames)."""
    ip = vip(c, 221)
    p = {"ip": ip, "cidr_netmask": "24", "arp_count": 1}
    cleanup.append(("node2", p))
    env = {f"OCF_RESKEY_{k}": str(v) for k, v in p.items()}
    env["HADAEMON_RUNDIR"] = str(c.workdir / "run" / "node2")
    costs = {}
    for action in ("meta-data", "start"):
        cp = c.run("node2", [sys.executable, "-X", "importtime", str(AGENT), action], env=env, timeout=60)
        assert cp.returncode == 0, cp.stderr
        rows = [line.split("|") for line in cp.stderr.splitlines() if line.startswith("import time:")]
        mods = {r[2].strip(): int(r[1]) for r in rows[1:] if len(r) == 3}  # name -> cumulative us
        top = {r[2].strip(): int(r[1]) for r in rows[1:] if len(r) == 3 and not r[2].startswith("  ")}
        costs[action] = mods
        print(f"{action}: {len(mods)} modules, top-level imports {sum(top.values()) / 1000:.0f} ms; "
              + ", ".join(f"{m} {top[m] / 1000:.0f} ms" for m in sorted(top, key=top.get)[-3:]))
    assert not {"pyroute2", "scapy", "urllib.request"} & set(costs["meta-data"])
    assert "pyroute2" in costs["start"]
    assert not {"scapy", "scapy.all", "scapy.layers.l2", "scapy.layers.inet6", "scapy.layers.inet"} & set(costs["start"])
    assert ours(c, "node2", "stop", **p)[0] == 0


# -- collisions and ownership ---------------------------------------------------------------------

def test_address_live_elsewhere_is_detected_at_start(c, cleanup):
    ip = vip(c, 216)
    p = {"ip": ip, "cidr_netmask": "24"}
    cleanup += [("node2", p)]
    c.run("node1", ["ip", "addr", "add", f"{ip}/24", "dev", "eth0"], check=True)  # another host has it
    rc, err, t0 = ours(c, "node2", "start", **p)
    took = time.time() - t0
    print(f"collision detected in {took * 1000:.0f} ms: {err.strip().splitlines()[-1]}")
    assert rc == 1 and "collision" in err and c.mac("node1") in err
    assert not has_addr(c, "node2", ip, 24)
    c.run("node1", ["ip", "addr", "del", f"{ip}/24", "dev", "eth0"], check=True)
    assert ours(c, "node2", "start", **p)[0] == 0
    sender = c.workdir / "run" / "node2" / "ipaddr2" / f"{ip}.send_arp.pid"
    wait_until(lambda: not sender.exists(), 5, message="the first start's background rounds to end")
    # Already ours: start is a no-op without a probe (and without a second announcement).
    with c.tcpdump("client", "arp") as cap:
        rc, err, t0 = ours(c, "node2", "start", **p)
        time.sleep(0.3)
    assert rc == 0
    frames = read_pcap(cap.stop())
    probes = [f for _, f in frames if (garp.parse_arp(f) or (0, "", ""))[2] == "0.0.0.0"]
    assert probes == [] and garps(frames, ip, c.mac("node2")) == []
    assert addrs(c, "node2").count(f" {ip}/24 ") == 1


def test_stop_removes_only_the_address_it_added(c, cleanup):
    ip = vip(c, 217)
    p = {"ip": ip, "cidr_netmask": "24", "iflabel": "vip"}
    cleanup.append(("node1", p))
    c.run("node1", ["ip", "addr", "add", f"{ip}/24", "dev", "eth0"], check=True)  # configured by the admin
    assert ours(c, "node1", "start", **p)[0] == 0
    assert ours(c, "node1", "monitor", **p)[0] == 0
    rc, err, _ = ours(c, "node1", "stop", **p)
    assert rc == 0 and "not added by this agent" in err
    assert has_addr(c, "node1", ip, 24)
    c.run("node1", ["ip", "addr", "del", f"{ip}/24", "dev", "eth0"], check=True)
    assert ours(c, "node1", "start", broadcast="+", **p)[0] == 0
    line = [x for x in addrs(c, "node1").splitlines() if f" {ip}/24 " in x][0]
    assert "eth0:vip" in line and f"brd 10.{c.base}.0.255 " in line, line
    assert ours(c, "node1", "stop", **p)[0] == 0
    assert not has_addr(c, "node1", ip, 24)
    assert ours(c, "node1", "monitor", **p)[0] == 7


def test_lvs_support_moves_the_vip_off_lo_and_back(c, cleanup):
    ip = vip(c, 218)
    p = {"ip": ip, "cidr_netmask": "24", "lvs_support": "true"}
    cleanup.append(("node1", p))
    c.run("node1", ["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True)
    try:
        assert ours(c, "node1", "start", **p)[0] == 0
        assert has_addr(c, "node1", ip, 24) and not has_addr(c, "node1", ip, 32, dev="lo")
        assert ours(c, "node1", "stop", **p)[0] == 0
        assert not has_addr(c, "node1", ip, 24) and has_addr(c, "node1", ip, 32, dev="lo")
    finally:
        c.run("node1", ["ip", "addr", "del", f"{ip}/32", "dev", "lo"])


# -- IPv6 -----------------------------------------------------------------------------------------

def test_ipv6_unsolicited_na_and_dad(c, cleanup):
    from scapy.layers.inet6 import ICMPv6ND_NA
    from scapy.layers.l2 import Ether

    net = f"fd00:{c.base:x}::"
    ip = f"{net}200"
    for node, host in (("node1", 1), ("node2", 2), ("client", 250)):
        c.run(node, ["ip", "-6", "addr", "replace", f"{net}{host:x}/64", "dev", "eth0", "nodad"], check=True)
    p = {"ip": ip, "cidr_netmask": "64", "arp_count": 3, "arp_interval": 200, "preferred_lft": "0"}
    cleanup += [("node1", p), ("node2", p)]
    old, new = c.mac("node1"), c.mac("node2")
    c.run("client", ["ip", "-6", "neigh", "replace", ip, "lladdr", old, "dev", "eth0", "nud", "stale"], check=True)
    with c.tcpdump("client", "icmp6") as cap:
        rc, err, t0 = ours(c, "node2", "start", **p)
        took = time.time() - t0
        assert rc == 0, err
        wait_until(lambda: new in neigh(c, ip), 3, message="client IPv6 entry to switch to node2")
    nas = []
    for ts, f in read_pcap(cap.stop()):
        pkt = Ether(f)
        if ICMPv6ND_NA in pkt and pkt.src == new and pkt[ICMPv6ND_NA].tgt == ip:
            nas.append((ts, pkt[ICMPv6ND_NA].O))
    print(f"IPv6: start took {took * 1000:.0f} ms (kernel DAD), {len(nas)} unsolicited NAs, "
          f"client entry: {neigh(c, ip)}")
    gaps = [b - a for (a, _), (b, _) in zip(nas, nas[1:])]
    print(f"IPv6: NA gaps {[round(g * 1000) for g in gaps]} ms (arp_interval 200 ms)")
    assert len(nas) == 3 and all(o == 1 for _, o in nas)
    assert all(0.1 <= g <= 0.4 for g in gaps)
    assert "preferred_lft 0sec" in c.run("node2", ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout
    assert ours(c, "node2", "stop", **p)[0] == 0 and not has_addr(c, "node2", ip, 64)
    # DAD: node1 holds the address, node2's start fails and leaves nothing behind.
    c.run("node1", ["ip", "-6", "addr", "add", f"{ip}/64", "dev", "eth0", "nodad"], check=True)
    rc, err, _ = ours(c, "node2", "start", **p)
    print(f"IPv6 collision: rc={rc} {err.strip().splitlines()[-1]}")
    assert rc == 1 and "collision" in err
    assert not has_addr(c, "node2", ip, 64)
    c.run("node1", ["ip", "-6", "addr", "del", f"{ip}/64", "dev", "eth0"], check=True)


# -- differential runs against ClusterLabs IPaddr2 ------------------------------------------------

@pytest.mark.skipif(not CLUSTERLABS.exists(), reason="Debian's resource-agents (ClusterLabs IPaddr2) missing")
def test_differential_against_clusterlabs(c, cleanup):
    """Random parameter combinations (seeded; HADAEMON_DIFF_SEED to explore): both agents must give
    the same codes, and after start the same address (label, broadcast, scope, prefix)."""
    import itertools
    import random
    import re

    seed = int(os.environ.get("HADAEMON_DIFF_SEED", "4"))
    rnd = random.Random(seed)
    b = c.base
    c.run("node1", ["ip", "-6", "addr", "replace", f"fd00:{b:x}::1/64", "dev", "eth0", "nodad"], check=True)
    ips = [f"10.{b}.0.150", f"10.{b}.0.300", f"10.{b}.0.1.5", f"fd00:{b:x}::150", "fe80::150", "10.99.0.1", "",
           "127.0.0.5", "abc"]
    cidrs = ["", "24", "32", "16", "33", "0", "255.255.255.0", "abc", "64", "128"]
    nics = ["", "eth0", "nosuch0", "eth0:lbl", "lo", "eth0:averyverylonglabel"]
    brds = ["", "+", "-", f"10.{b}.0.127", "bad"]
    extras = [{}, {"arp_count": "0"}, {"arp_count": "x"}, {"arp_interval": "0"}, {"preferred_lft": ""},
              {"iflabel": "vip"}, {"arp_sender": "nope"}, {"lvs_support": "true"}]
    actions = ["validate-all", "monitor", "monitor-recurring", "status", "stop", "frobnicate"]
    static = list(itertools.product(ips, cidrs, nics, brds, range(len(extras)), actions))
    rnd.shuffle(static)

    def call(agent, action, params):
        meta = None
        if action == "monitor-recurring":
            action, meta = "monitor", {"interval": "10000"}
        return agent(c, "node1", action, meta, **params)[0]

    def vip_addrs():
        out = c.run("node1", ["ip", "-o", "addr"], check=True).stdout
        return sorted(re.sub(r"\s+", " ", line.split(" ", 1)[1]).replace("\\", "").replace(" tentative", "")
                      for line in out.splitlines() if re.search(r"(\.150|::150|127\.0\.0\.5|10\.99\.0\.1)/", line))

    def wipe():
        for ip, dev in ((f"10.{b}.0.150", "eth0"), (f"fd00:{b:x}::150", "eth0"), ("127.0.0.5", "lo"),
                        ("127.0.0.5", "eth0"), (f"10.{b}.0.150", "lo"), (f"fd00:{b:x}::150", "lo")):
            c.run("node1", ["ip", "addr", "flush", "dev", dev, "to", ip])

    diffs = []
    for ip, cidr, nic, brd, extra, action in static[:30]:
        params = {k: v for k, v in (("ip", ip), ("cidr_netmask", cidr), ("nic", nic), ("broadcast", brd)) if v}
        params.update(extras[extra], arp_count=extras[extra].get("arp_count", "1"))
        got = (call(theirs, action, params), call(ours, action, params))
        if got[0] != got[1]:
            diffs.append((action, params, got))
    # mostly startable combinations, so the address each agent puts up can be compared
    start_extras = [{}, {"iflabel": "vip"}, {"lvs_support": "true"}, {"preferred_lft": "0"}, {"nodad": "true"}]
    starts = list(itertools.product([f"10.{b}.0.150", f"fd00:{b:x}::150", "127.0.0.5"],
                                    ["", "24", "32", "16", "255.255.255.0", "64"], ["", "eth0", "eth0:lbl", "lo"],
                                    ["", "+", "-", f"10.{b}.0.127"], range(len(start_extras))))
    rnd.shuffle(starts)
    started = 0
    for ip, cidr, nic, brd, extra in starts[:10]:
        params = {k: v for k, v in (("ip", ip), ("cidr_netmask", cidr), ("nic", nic), ("broadcast", brd)) if v}
        params.update(start_extras[extra], arp_count="1")
        seen = []
        for agent in (theirs, ours):
            rc_start = call(agent, "start", params)
            after_start = vip_addrs()
            rc_monitor = call(agent, "monitor", params)
            rc_stop = call(agent, "stop", params)
            seen.append((rc_start, after_start, rc_monitor, rc_stop, vip_addrs()))
            wipe()
        started += seen[0][0] == 0
        if seen[0] != seen[1]:
            diffs.append(("start/monitor/stop", params, seen))
    print(f"differential seed {seed}: 30 single actions + 10 start/monitor/stop sequences ({started} started), "
          f"{len(diffs)} differences")
    for d in diffs:
        print("  ", d)
    assert diffs == []


PREPARED = r"""
import json, os, subprocess, sys, time
from hadaemon.agents import ipaddr2
ip, rundir, between = sys.argv[1], sys.argv[2], sys.argv[3]
env = {"HADAEMON_RUNDIR": rundir, "HADAEMON_IN_PROCESS": "1", "OCF_RESKEY_CRM_meta_timeout": "20000"}
params = {"ip": ip, "cidr_netmask": "24", "arp_count": "2", "arp_interval": "100", "run_arping": "false"}
out = {"prepared": ipaddr2.prepare("start", params, env)}
if between == "added":     # someone else adds the address after the start was prepared
    subprocess.run(["ip", "addr", "add", ip + "/24", "dev", "eth0"], check=True)
if between == "changed":   # the start comes with other parameters: the prepared one is not used
    params = dict(params, arp_count="1")
armed = None
if between in ("armed", "armed-not-triggered", "armed-late"):   # a thread waits for trigger() to add the address
    import threading
    if between == "armed-late":   # triggered before its thread waits: the thread makes the change all the same
        out["triggered"] = ipaddr2.trigger("start", params, env)
    armed = threading.Thread(target=lambda: out.update(armed=ipaddr2.armed_start("start", params, env, 30)))
    armed.start()
    time.sleep(0.1)
    if between == "armed":
        out["triggered"] = ipaddr2.trigger("start", params, env)
t0 = time.monotonic()
res = ipaddr2.execute("start", params, env)
if armed is not None:
    armed.join(5)
    out["armed_alive"] = armed.is_alive()
out.update(rc=res.rc, reason=res.reason, seconds=time.monotonic() - t0, left=len(ipaddr2._PREPARED))
print(json.dumps(out), flush=True)
time.sleep(0.5)   # the later rounds are sent by a thread of this process (in-process, as in ha-crmd)
"""


@pytest.mark.parametrize("between", ["nothing", "added", "changed", "armed", "armed-not-triggered", "armed-late"])
def test_a_prepared_start_adds_and_announces(c, cleanup, between):
    """prepare() (a handoff's new node, while the old one stops) then start: the same result as an
    unprepared start (address, state, GARPs on the wire); an address that appeared in between is
    found as an unprepared start finds it; other parameters do not use what was prepared. Armed: a
    thread adds the address when triggered and the start returns its result; not triggered, the
    start does it itself and the armed thread gives up; triggered before the thread waits, the thread
    makes the change all the same (the start waits for it, and does not hang)."""
    import json

    ip = vip(c, 47)
    params = {"ip": ip, "cidr_netmask": 24}
    cleanup.append(("node1", params))
    script = c.workdir / "prepared.py"
    script.write_text(PREPARED)
    mac = c.mac("node1")
    with c.tcpdump("client", "arp") as cap:
        cp = c.run("node1", [sys.executable, str(script), ip, str(c.workdir / "run" / "node1"), between],
                   env={"PYTHONPATH": str(REPO)}, timeout=60)
        assert cp.returncode == 0, cp.stderr
        time.sleep(0.4)
        frames = read_pcap(cap.stop())
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    assert out["prepared"] is True and out["rc"] == 0, out
    assert out["left"] == 0          # taken (or dropped) by the start
    if between.startswith("armed"):
        assert out["armed"] is (between != "armed-not-triggered") and out["armed_alive"] is False, out
        assert out["seconds"] < 10, out
    assert has_addr(c, "node1", ip, 24)
    sent = garps(frames, ip, mac)
    state = c.workdir / "run" / "node1" / "ipaddr2" / f"{ip}.json"
    if between == "added":
        assert sent == [] and not state.exists()   # not ours: no announcement, no state
        assert "not added by this agent" in cp.stderr
    else:
        assert len(sent) >= 2 * (1 if between == "changed" else 2) and state.exists()
        assert ours(c, "node1", "stop", **params)[0] == 0 and not has_addr(c, "node1", ip, 24)


PREPARED_STOP = r"""
import json, select, subprocess, sys
from hadaemon.agents import ipaddr2
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
ip, rundir, between, how = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
env = {"HADAEMON_RUNDIR": rundir, "HADAEMON_IN_PROCESS": "1", "OCF_RESKEY_CRM_meta_timeout": "20000"}
params = {"ip": ip, "cidr_netmask": "24", "arp_count": "1", "run_arping": "false"}
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
assert ipaddr2.execute("start", params, env).rc == 0
if how == "helper":
    assert handoff.helper() is not None
import socket
frames = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))   # ETH_P_ALL: this host's own too
seen = []
def removed(nic):   # called while the stop runs: the address must be gone by then, and the frame out
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], capture_output=True, text=True).stdout
    seen.append(f" {ip}/24 " in out)
    got = False
    while not got and select.select([frames], [], [], 0.5)[0]:
        got = handoff.parse_release(frames.recv(2048), keys) == ("node1", "7:3:0:abc")
    seen.append(got)
release = None if how == "none" else (lambda mac: handoff.release_frame(mac, keys, "node1", "7:3:0:abc"))
out = {"prepared": ipaddr2.prepare("stop", params, env, removed=removed, release=release)}
if between == "removed":     # gone (someone else removed it) after the stop was prepared
    subprocess.run(["ip", "addr", "del", ip + "/24", "dev", "eth0"], check=True)
if between == "discarded":   # the stop will not run (its chain stopped): nothing prepared is left
    ipaddr2.discard("stop", params, env)
    out["left"] = len(ipaddr2._PREPARED)
    assert ipaddr2.execute("stop", params, env).rc == 0
else:
    out["rc"] = ipaddr2.execute("stop", params, env).rc
out["seen"] = seen
print(json.dumps(out), flush=True)
"""


@pytest.mark.parametrize("how", ["none", "thread", "helper"])
@pytest.mark.parametrize("between", ["nothing", "removed", "discarded"])
def test_a_prepared_stop_removes_and_tells_at_once(c, cleanup, between, how):
    """prepare('stop', removed=f, release=r) (a handoff's old node, while the rest of its chain stops)
    then stop: the address and state are gone, f was called once the address was gone (not before)
    and the release frame r made was out by then (sent by the stop's thread, or by the handoff
    helper process when it runs); an address already gone is stopped (and released) all the same; a
    discarded preparation leaves nothing."""
    import json

    ip = vip(c, 48)
    params = {"ip": ip, "cidr_netmask": 24}
    cleanup.append(("node1", params))
    script = c.workdir / "prepared_stop.py"
    script.write_text(PREPARED_STOP)
    cp = c.run("node1", [sys.executable, str(script), ip, str(c.workdir / "run" / "node1"), between, how],
               env={"PYTHONPATH": str(REPO)}, timeout=60)
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    assert out["prepared"] is True, out
    assert not has_addr(c, "node1", ip, 24)
    assert not (c.workdir / "run" / "node1" / "ipaddr2" / f"{ip}.json").exists()
    if between == "discarded":
        assert out["left"] == 0 and out["seen"] == []
    else:
        assert out["rc"] == 0 and out["seen"] == [False, how != "none"], out


ARMED_LISTEN = r"""
import json, logging, sys, threading, time
from hadaemon.agents import ipaddr2
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
logging.basicConfig(level=logging.INFO)
ip, rundir, want, how = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
env = {"HADAEMON_RUNDIR": rundir, "HADAEMON_IN_PROCESS": "1", "OCF_RESKEY_CRM_meta_timeout": "20000"}
params = {"ip": ip, "cidr_netmask": "24", "arp_count": "1", "run_arping": "false"}
out = {"prepared": ipaddr2.prepare("start", params, env)}
went = threading.Event()
check = lambda frame: handoff.parse_release(frame, keys) == ("node1", want)
if how.startswith("helper"):   # the helper process waits for the frame and adds the address
    assert handoff.helper() is not None
    listen = (handoff.listen_socket(), check, handoff.release_tails(keys, "node1", want))
else:
    listen = (handoff.ETH_P_HANDOFF, check)
t = threading.Thread(target=lambda: out.update(armed=ipaddr2.armed_start(
    "start", params, env, 5, listen=listen, on_go=went.set)))
t.start()
print("armed", flush=True)
if how == "helper-trigger":   # the release through ha-heartbeat (trigger) while the helper waits for the frame
    time.sleep(1.5)
    out["triggered"] = ipaddr2.trigger("start", params, env)
out["went"] = went.wait(6)
t.join(6)
out["rc"] = ipaddr2.execute("start", params, env).rc
print(json.dumps(out), flush=True)
"""


SEND_RELEASE = r"""
import sys
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
handoff.send_release("eth0", parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n"), "node1", sys.argv[1])
"""


@pytest.mark.parametrize("tkey,how", [("7:3:0:abc", "thread"), ("7:3:0:other", "thread"), ("7:3:0:abc", "helper"),
                                      ("7:3:0:other", "helper"), ("7:3:0:other", "helper-trigger")])
def test_an_armed_start_goes_on_the_old_nodes_release_frame(c, cleanup, tkey, how):
    """node2's armed start listens for node1's signed release frame (hadaemon.io.handoff), in a thread
    of its own or through the handoff helper process: the frame for the key it waits for makes it add
    the address at once; a frame for another key does not (the start then does it itself when it runs,
    and a helper that was waiting leaves no state file behind); the helper's start also goes on
    trigger() (the release through ha-heartbeat)."""

    ip = vip(c, 49)
    params = {"ip": ip, "cidr_netmask": 24}
    cleanup.append(("node2", params))
    script = c.workdir / "armed_listen.py"
    script.write_text(ARMED_LISTEN)
    with _NsScript(c, "node2", script, ip, c.workdir / "run" / "node2", "7:3:0:abc", how) as s:
        assert s.proc.stdout.readline().strip() == "armed"
        time.sleep(0.3)   # the listening socket is bound once the thread runs
        sender = c.workdir / "send_release.py"
        sender.write_text(SEND_RELEASE)
        for _ in range(3):
            c.run("node1", [sys.executable, str(sender), tkey], env={"PYTHONPATH": str(REPO)}, check=True)
            time.sleep(0.05)
        out, stderr = s.result(30)
    assert out["prepared"] is True and out["rc"] == 0, (out, stderr)
    goes = tkey == "7:3:0:abc" or how == "helper-trigger"
    assert out["went"] is goes and out["armed"] is goes, (out, stderr)
    assert has_addr(c, "node2", ip, 24)
    assert ("(prepared; release frame" in stderr) is (tkey == "7:3:0:abc"), stderr
    assert ("handoff helper, at" in stderr) is (how.startswith("helper") and goes), stderr
    state = c.workdir / "run" / "node2" / "ipaddr2"
    assert sorted(p.name for p in state.iterdir()) == [f"{ip}.json"], list(state.iterdir())


STOP_WAITS = r"""
import json, logging, sys, threading, time
from hadaemon.agents import ipaddr2
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
logging.basicConfig(level=logging.INFO)
ip, rundir, wait_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
env = {"HADAEMON_RUNDIR": rundir, "HADAEMON_IN_PROCESS": "1", "OCF_RESKEY_CRM_meta_timeout": "20000"}
params = {"ip": ip, "cidr_netmask": "24", "arp_count": "1", "run_arping": "false"}
assert ipaddr2.execute("start", params, env).rc == 0
assert handoff.helper() is not None
wait = (handoff.listen_socket(), [handoff.release_tails(keys, "node2", "7:3:0:abc", magic=handoff.ARMED)], wait_s)
out = {"prepared": ipaddr2.prepare("stop", params, env, release=lambda mac: handoff.release_frame(
    mac, keys, "node1", "7:3:0:abc"), wait=wait)}
print("prepared", flush=True)
t0 = time.monotonic()
out["rc"] = ipaddr2.execute("stop", params, env).rc
out["seconds"] = time.monotonic() - t0
print(json.dumps(out), flush=True)
"""

SEND_ARMED = r"""
import sys
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import garp, handoff
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
with garp.LinkSocket("eth0") as link:
    link.send([handoff.release_frame(link.mac, keys, sys.argv[1], "7:3:0:abc", magic=handoff.ARMED)])
"""


@pytest.mark.parametrize("armed_by", ["node2", "node3", None])
def test_a_prepared_stop_waits_for_the_new_nodes_armed_frame(c, cleanup, armed_by):
    """With the handoff helper, a prepared stop given wait= removes the address only once the new node
    (node2) said its start is armed (its signed armed frame), or after the wait's bound when it does
    not say so (nothing, or a frame naming another node): then it stops all the same."""

    ip = vip(c, 50)
    params = {"ip": ip, "cidr_netmask": 24}
    cleanup.append(("node1", params))
    script = c.workdir / "stop_waits.py"
    script.write_text(STOP_WAITS)
    bound = 20 if armed_by == "node2" else 3.0
    with _NsScript(c, "node1", script, ip, c.workdir / "run" / "node1", bound) as s:
        assert s.proc.stdout.readline().strip() == "prepared"
        time.sleep(0.5)
        still_there = has_addr(c, "node1", ip, 24)     # the stop waits: the address stays meanwhile
        if armed_by:
            sender = c.workdir / "send_armed.py"
            sender.write_text(SEND_ARMED)
            c.run("node2", [sys.executable, str(sender), armed_by], env={"PYTHONPATH": str(REPO)}, check=True)
        out, stderr = s.result(60)
    assert out["prepared"] is True and out["rc"] == 0, (out, stderr)
    assert still_there and not has_addr(c, "node1", ip, 24)
    assert ("start is armed" in stderr) is (armed_by == "node2"), stderr
    assert "release frame sent" in stderr
    if armed_by == "node2":
        assert out["seconds"] < 10, out           # went on the frame, long before its bound
    else:
        assert out["seconds"] >= bound - 0.5, out  # waited its bound, then stopped all the same


HELPER_RESTART = r"""
import json, os, signal, time
from hadaemon.io import handoff
first = handoff.helper()
assert first is not None and first.ready.wait(10), "helper not ready"
info = dict(first.info)
os.kill(first.proc.pid, signal.SIGKILL)
deadline = time.monotonic() + 10
while not first.gone and time.monotonic() < deadline:
    time.sleep(0.01)
second = handoff.helper()
second.ready.wait(10)
print(json.dumps({"priority": info.get("priority"), "gone": first.gone, "reaped": first.proc.returncode,
                  "again": second is not first and not second.gone and second.proc.poll() is None}), flush=True)
"""


def test_the_handoff_helper_runs_real_time_and_is_started_again_when_it_died(c):
    """The helper process says it runs at SCHED_RR 1 (root may); killed, it is noticed, reaped, and the
    next helper() starts a new one."""
    import json

    script = c.workdir / "helper_restart.py"
    script.write_text(HELPER_RESTART)
    cp = c.run("node1", [sys.executable, str(script)], env={"PYTHONPATH": str(REPO)}, timeout=60)
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    assert out["priority"] in ("SCHED_RR 1", "nice -10", "normal") and out["gone"] is True, out
    assert out["reaped"] == -9 and out["again"] is True, out


CONCURRENT = r"""
import json, logging, subprocess, sys, threading, time
from hadaemon.agents import ipaddr2
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
logging.basicConfig(level=logging.INFO)
ip1, ip2, rundir = sys.argv[1], sys.argv[2], sys.argv[3]
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
env = {"HADAEMON_RUNDIR": rundir, "HADAEMON_IN_PROCESS": "1", "OCF_RESKEY_CRM_meta_timeout": "20000"}
p1 = {"ip": ip1, "cidr_netmask": "24", "arp_count": "1", "run_arping": "false"}
p2 = {"ip": ip2, "cidr_netmask": "24", "arp_count": "1", "run_arping": "false"}
assert ipaddr2.execute("start", p1, env).rc == 0
assert handoff.helper() is not None
wait = (handoff.listen_socket(), [handoff.release_tails(keys, "node2", "7:3:0:abc", magic=handoff.ARMED)], 20)
assert ipaddr2.prepare("stop", p1, env, release=lambda mac: handoff.release_frame(mac, keys, "node1", "7:3:0:abc"),
                       wait=wait)
out = {}
stop = threading.Thread(target=lambda: out.update(stop=ipaddr2.execute("stop", p1, env).rc))
stop.start()   # waits in the helper for node2's armed frame
time.sleep(0.3)
assert ipaddr2.prepare("start", p2, env)
listen = (handoff.listen_socket(), lambda f: False, handoff.release_tails(keys, "node2", "7:9:0:def"))
armed = threading.Thread(target=lambda: out.update(armed=ipaddr2.armed_start("start", p2, env, 10, listen=listen)))
armed.start()
time.sleep(0.3)
t0 = time.monotonic()
out["triggered"] = ipaddr2.trigger("start", p2, env)   # the helper answers while the stop still waits
out["trigger_s"] = time.monotonic() - t0
armed.join(10)
out["start"] = ipaddr2.execute("start", p2, env).rc
show = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], capture_output=True, text=True).stdout
out["ip1_during"], out["ip2_during"] = f" {ip1}/24 " in show, f" {ip2}/24 " in show
print("started", flush=True)
stop.join(30)
print(json.dumps(out), flush=True)
"""


def test_the_helper_serves_an_armed_start_while_a_stop_waits_for_an_armed_frame(c, cleanup):
    """Two groups moving both ways between two nodes: node1's helper waits (up to its bound) for node2's
    armed frame before it removes one address, and meanwhile takes node1's own armed start of another
    address (trigger: it goes at once), so neither waits for the other's bound."""

    ip1, ip2 = vip(c, 51), vip(c, 52)
    cleanup += [("node1", {"ip": ip1, "cidr_netmask": 24}), ("node1", {"ip": ip2, "cidr_netmask": 24})]
    script = c.workdir / "helper_both_ways.py"   # (not concurrent.py: it would shadow the concurrent package)
    script.write_text(CONCURRENT)
    with _NsScript(c, "node1", script, ip1, ip2, c.workdir / "run" / "node1") as s:
        line = s.proc.stdout.readline()
        assert line.strip() == "started", (line, s.proc.wait(30), s.proc.stderr.read()[-2000:])
        sender = c.workdir / "send_armed.py"
        sender.write_text(SEND_ARMED)
        c.run("node2", [sys.executable, str(sender), "node2"], env={"PYTHONPATH": str(REPO)}, check=True)
        out, stderr = s.result(60)
    assert out["triggered"] is True and out["armed"] is True and out["start"] == 0, (out, stderr)
    assert out["trigger_s"] < 5 and out["ip1_during"] and out["ip2_during"], (out, stderr)
    assert out["stop"] == 0 and "start is armed" in stderr, (out, stderr)
    assert not has_addr(c, "node1", ip1, 24) and has_addr(c, "node1", ip2, 24)


ARMED_REPEATS = r"""
import json, sys, threading
from hadaemon.agents import ipaddr2
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
ip, rundir = sys.argv[1], sys.argv[2]
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
env = {"HADAEMON_RUNDIR": rundir, "HADAEMON_IN_PROCESS": "1", "OCF_RESKEY_CRM_meta_timeout": "20000"}
params = {"ip": ip, "cidr_netmask": "24", "arp_count": "1", "run_arping": "false"}
assert handoff.helper() is not None and ipaddr2.prepare("start", params, env)
listen = (handoff.listen_socket(), lambda f: handoff.parse_release(f, keys) == ("node1", "7:3:0:abc"),
          handoff.release_tails(keys, "node1", "7:3:0:abc"),
          lambda mac: handoff.release_frame(mac, keys, "node2", "7:3:0:abc", magic=handoff.ARMED))
out = {}
t = threading.Thread(target=lambda: out.update(armed=ipaddr2.armed_start("start", params, env, 20, listen=listen)))
t.start()
print("armed", flush=True)
t.join(30)
out["rc"] = ipaddr2.execute("start", params, env).rc
print(json.dumps(out), flush=True)
"""

HEAR_ARMED = r"""
import select, sys, time
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
sock, heard, deadline = handoff.listen_socket(), 0, time.monotonic() + 3
while time.monotonic() < deadline and select.select([sock], [], [], max(0, deadline - time.monotonic()))[0]:
    heard += handoff.parse_release(sock.recv(2048), keys, magic=handoff.ARMED) == ("node2", "7:3:0:abc")
    if heard:
        break
print(heard)
"""


def test_the_armed_frame_is_repeated_for_an_old_node_that_listens_late(c, cleanup):
    """The new node (node2) armed before the old node's stop chain arrived there: node1 starts listening
    only 0.5 s later and still hears node2's armed frame (repeated while armed), then releases."""

    ip = vip(c, 53)
    cleanup.append(("node2", {"ip": ip, "cidr_netmask": 24}))
    script, hear, release = (c.workdir / "armed_repeats.py", c.workdir / "hear_armed.py",
                             c.workdir / "send_release.py")
    script.write_text(ARMED_REPEATS)
    hear.write_text(HEAR_ARMED)
    release.write_text(SEND_RELEASE)
    with _NsScript(c, "node2", script, ip, c.workdir / "run" / "node2") as s:
        assert s.proc.stdout.readline().strip() == "armed"
        time.sleep(0.5)
        heard = c.run("node1", [sys.executable, str(hear)], env={"PYTHONPATH": str(REPO)}, timeout=30)
        c.run("node1", [sys.executable, str(release), "7:3:0:abc"], env={"PYTHONPATH": str(REPO)}, check=True)
        out, stderr = s.result(60)
    assert heard.stdout.strip() == "1", (heard.stdout, heard.stderr)
    assert out["armed"] is True and out["rc"] == 0, (out, stderr)
    assert has_addr(c, "node2", ip, 24)


WAIT_FRAMES = r"""
import json, sys, time
from hadaemon.core.heartbeat.authkeys import parse_authkeys
from hadaemon.io import handoff
keys = parse_authkeys("auth 1\n1 sha256 0123456789abcdef0123\n")
sock = handoff.listen_socket()
print("listening", flush=True)
t0 = time.monotonic()
ok = handoff.wait_frames(sock, [handoff.release_tails(keys, "node2", "7:3:0:abc", magic=handoff.ARMED)],
                         float(sys.argv[1]))
print(json.dumps({"ok": ok, "seconds": time.monotonic() - t0}), flush=True)
"""


@pytest.mark.parametrize("armed_by", ["node2", "node3"])
def test_a_leading_chain_waits_for_its_followers_armed_frame(c, armed_by):
    """handoff.wait_frames (a handoff's leading chain, before its first stop): true as soon as the
    follower (node2) sent its armed frame for that key; a frame naming another node does not count,
    and the wait ends false at its bound."""

    script, sender = c.workdir / "wait_frames.py", c.workdir / "send_armed.py"
    script.write_text(WAIT_FRAMES)
    sender.write_text(SEND_ARMED)
    bound = 20 if armed_by == "node2" else 2.0
    with _NsScript(c, "node1", script, str(bound)) as s:
        assert s.proc.stdout.readline().strip() == "listening"
        c.run("node2", [sys.executable, str(sender), armed_by], env={"PYTHONPATH": str(REPO)}, check=True)
        out, stderr = s.result(60)
    if armed_by == "node2":
        assert out["ok"] is True and out["seconds"] < 10, (out, stderr)
    else:
        assert out["ok"] is False and out["seconds"] >= bound - 0.1, (out, stderr)
