"""The namespace-cluster and private-bus harnesses do what other tests rely on (real netns, nft, dbus)."""
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from hadaemon.testing.dbus import PrivateBus
from hadaemon.testing.netns import Cluster, cleanup_stale
from hadaemon.testing.procs import base_env, run_cmd, wait_until

pytestmark = pytest.mark.root

NODES = ["node1", "node2", "node3"]


def _netns_names():
    return {line.split()[0] for line in run_cmd(["ip", "netns", "list"]).stdout.splitlines() if line.strip()}


def _gone(pid):
    """True when pid no longer runs (absent or a zombie nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _received(ping_stdout):
    return int(re.search(r"(\d+) received", ping_stdout).group(1))


def test_every_member_pings_every_other():
    with Cluster(NODES, client=True) as c:
        assert c.addr("node1") != c.addr("node2")
        assert c.addr("client").endswith(".250")
        for a in c.members:
            for b in c.members:
                if a != b:
                    assert c.ping(a, b), f"{a} cannot ping {b}"
        # the bridge is in the cluster's switch namespace, not the host's
        sw_links = run_cmd(["ip", "-n", c.switch, "-o", "link"]).stdout
        assert "br0" in sw_links and c.port("node1") in sw_links
        host_links = run_cmd(["ip", "-o", "link"]).stdout
        assert c.mac("node1")[:14] not in host_links


def test_cut_fails_ping_and_restore_brings_it_back():
    with Cluster(NODES) as c:
        assert c.ping("node1", "node2")
        c.cut("node2")
        assert not c.ping("node1", "node2", timeout=1)
        link = c.run("node2", ["ip", "-o", "link", "show", "eth0"], check=True).stdout
        assert "state DOWN" in link
        # the bridge side sees the carrier go away
        port = run_cmd(["ip", "-n", c.switch, "-o", "link", "show", c.port("node2")]).stdout
        assert "NO-CARRIER" in port
        assert c.ping("node1", "node3")
        c.restore("node2")
        wait_until(lambda: c.ping("node1", "node2", timeout=1), 10, message="ping after restore")


def test_partition_blocks_traffic_but_carrier_stays_up():
    with Cluster(NODES) as c:
        assert c.ping("node1", "node3")
        c.partition("node3")
        assert not c.ping("node1", "node3", timeout=1)
        assert not c.ping("node3", "node2", timeout=1)
        assert c.ping("node1", "node2")
        link = c.run("node3", ["ip", "-o", "link", "show", "eth0"], check=True).stdout
        assert "LOWER_UP" in link and "NO-CARRIER" not in link and "state UP" in link
        assert "drop" in c.nft_ruleset()
        c.heal("node3")
        wait_until(lambda: c.ping("node1", "node3", timeout=1), 10, message="ping after heal")
        # partial partition: node3 loses node1 only
        c.partition("node3", peers=["node1"])
        assert not c.ping("node3", "node1", timeout=1)
        assert c.ping("node3", "node2")
        c.heal()
        assert "drop" not in c.nft_ruleset()
        wait_until(lambda: c.ping("node3", "node1", timeout=1), 10, message="ping after heal")


@pytest.mark.slow
def test_random_loss_drops_about_the_requested_share():
    with Cluster(NODES[:2]) as c:
        assert c.ping("node1", "node2")  # ARP resolved before loss starts
        c.loss(50, nodes=["node2"])
        with c.tcpdump("node2", "icmp and icmp[icmptype] == icmp-echo") as cap:
            cp = c.run("node1", ["ping", "-n", "-q", "-c", "200", "-i", "0.01", "-W", "1", c.addr("node2")],
                       timeout=60)
        arrived = len(cap.packets())
        # one-way: about half of the 200 requests reach node2 (mean 100, sd ~7)
        assert 60 <= arrived <= 140, arrived
        # round trip: request and reply each survive with p=0.5 -> about a quarter (mean 50, sd ~6)
        assert 15 <= _received(cp.stdout) <= 90, cp.stdout
        c.clear_loss()
        cp = c.run("node1", ["ping", "-n", "-q", "-c", "50", "-i", "0.01", "-W", "1", c.addr("node2")], timeout=30)
        assert _received(cp.stdout) == 50


def test_two_links_cut_one_keeps_the_other():
    with Cluster(NODES[:2], links=2) as c:
        assert c.subnet(0) != c.subnet(1)
        c.cut("node2", link=0)
        assert not c.ping("node1", "node2", link=0, timeout=1)
        assert c.ping("node1", "node2", link=1)
        c.cut("node2")  # all links
        assert not c.ping("node1", "node2", link=1, timeout=1)


def test_extra_host_and_tcpdump_sees_arp():
    with Cluster(NODES[:1], client=True) as c:
        ns = c.add_host("rs1")
        assert ns == c.netns("rs1") and c.addr("rs1").endswith(".100")
        with c.tcpdump("client", "arp") as cap:
            assert c.ping("rs1", "client")
        arps = [p for p in cap.packets() if p.haslayer("ARP")]
        assert any(p["ARP"].psrc == c.addr("rs1") for p in arps)


def test_process_controls():
    with Cluster(NODES[:1]) as c:
        p = c.spawn("node1", ["sh", "-c", "echo started; ip -o -4 addr show eth0; exec sleep 600"], name="sl")
        p.wait_output("started")
        assert c.addr("node1") in p.wait_output("eth0")  # it runs inside the node's namespace
        p.stop()
        wait_until(lambda: _state(p.pid) == "T", 5, message="stopped state")
        assert p.alive()
        p.cont()
        wait_until(lambda: _state(p.pid) == "S", 5, message="running state")
        old = p.pid
        p.kill9()
        assert not p.alive() and p.returncode == -signal.SIGKILL
        p.restart()
        assert p.alive() and p.pid != old
        wait_until(lambda: p.output().count("started") == 2, 10, message="second start in the log")


def test_processes_killed_and_everything_removed_even_when_block_raises():
    before = _netns_names()
    pids = []
    with pytest.raises(RuntimeError, match="boom"):
        with Cluster(NODES, client=True) as c:
            prefix, workdir = c.prefix, c.workdir
            c.partition("node2")
            c.loss(10)
            p1 = c.spawn("node1", ["sleep", "600"])
            # a process that leaves a grandchild behind and ignores SIGTERM
            p2 = c.spawn("node2", ["sh", "-c", "trap '' TERM; sleep 600 & echo child=$!; wait"], name="trap")
            p3 = c.spawn("node3", ["sleep", "600"])
            p3.stop()
            child = int(re.search(r"child=(\d+)", p2.wait_output("child=")).group(1))
            pids = [p1.pid, p2.pid, p3.pid, child]
            assert all(not _gone(pid) for pid in pids)
            c.dbus("node1")
            pids.append(c._buses["node1"].proc.pid)
            raise RuntimeError("boom")
    assert all(_gone(pid) for pid in pids), [(pid, _gone(pid)) for pid in pids]
    left = _netns_names()
    assert not any(n.startswith(prefix + "-") for n in left), left
    assert left <= before | {n for n in left if not n.startswith(prefix)}
    assert not workdir.exists()
    assert "table bridge hadaemon" not in run_cmd(["nft", "list", "tables"]).stdout  # never in the host ns


def test_sigterm_to_the_test_process_still_cleans_up():
    script = textwrap.dedent("""
        import time
        from hadaemon.testing.netns import Cluster
        with Cluster(["x"]) as c:
            p = c.spawn("x", ["sleep", "600"])
            print(c.prefix, p.pid, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=base_env())
    try:
        prefix, pid = proc.stdout.readline().split()
        assert f"{prefix}-x" in _netns_names()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any(n.startswith(prefix + "-") for n in _netns_names())
    assert _gone(int(pid))


def test_concurrent_clusters_do_not_collide():
    with Cluster(["a", "b"]) as c1, Cluster(["a", "b"]) as c2:
        assert c1.prefix != c2.prefix and c1.netns("a") != c2.netns("a")
        c1.partition("b")
        assert not c1.ping("a", "b", timeout=1)
        assert c2.ping("a", "b")


def test_cleanup_stale_removes_leftovers_of_a_killed_run():
    script = textwrap.dedent("""
        import os, sys
        from hadaemon.testing.dbus import PrivateBus
        from hadaemon.testing.netns import Cluster
        c = Cluster(["x", "y"]).start()
        c.spawn("x", ["sleep", "600"])
        bus = PrivateBus().start()  # outside any namespace
        print(c.prefix, bus.proc.pid, bus.workdir, flush=True)
        os.kill(os.getpid(), 9)
    """)
    cp = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=base_env())
    assert cp.returncode == -signal.SIGKILL, cp.stderr
    prefix, bus_pid, bus_dir = cp.stdout.split()
    assert {f"{prefix}-x", f"{prefix}-y", f"{prefix}-sw"} <= _netns_names()
    assert not _gone(int(bus_pid))
    with Cluster(["mine"]) as live:
        p = live.spawn("mine", ["sleep", "600"])
        removed = cleanup_stale()
        assert f"{prefix}-x" in removed and f"{prefix}-sw" in removed and bus_dir in removed
        assert live.netns("mine") in _netns_names() and p.alive()  # a live run is left alone
    assert not any(n.startswith(prefix + "-") for n in _netns_names())
    assert _gone(int(bus_pid))


SERVICE = textwrap.dedent("""
    import asyncio
    from hadaemon.bus.dbusnext import ServiceInterface, connect_system_bus, method

    class Echo(ServiceInterface):
        def __init__(self):
            super().__init__("org.hadaemon.HarnessTest")

        @method()
        def Echo(self, text: "s") -> "s":
            return text

    async def main():
        bus = await connect_system_bus()
        bus.export("/org/hadaemon/HarnessTest", Echo())
        print("owned", await bus.request_name("org.hadaemon.HarnessTest"), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")

OWN = '<policy user="root"><allow own="org.hadaemon.HarnessTest"/></policy>'
CALL = '<policy user="root"><allow send_destination="org.hadaemon.HarnessTest"/></policy>'


def test_cluster_private_bus_is_per_node():
    with Cluster(NODES[:2]) as c:
        a, b = c.dbus("node1"), c.dbus("node2")
        assert a != b and c.dbus_env("node1") == {"DBUS_SYSTEM_BUS_ADDRESS": a}
        out = c.run("node1", ["busctl", f"--address={a}", "list"], check=True).stdout
        assert "org.freedesktop.DBus" in out


@pytest.mark.parametrize("policy,call_ok", [(OWN, False), (OWN + CALL, True)])
def test_private_bus_name_shows_up_and_policy_is_system_like(tmp_path, policy, call_ok):
    with Cluster(NODES[:1]) as c:
        with PrivateBus(netns=c.netns("node1"), extra_policy=policy, workdir=tmp_path / "bus") as bus:
            svc = c.spawn("node1", [sys.executable, "-c", SERVICE], env=bus.env, name="svc")
            svc.wait_output("owned")
            assert "org.hadaemon.HarnessTest" in bus.busctl("list").stdout
            cp = bus.busctl("call", "org.hadaemon.HarnessTest", "/org/hadaemon/HarnessTest",
                            "org.hadaemon.HarnessTest", "Echo", "s", "hi", check=False)
            if call_ok:
                assert cp.returncode == 0 and cp.stdout.strip() == 's "hi"', cp
            else:
                assert cp.returncode != 0 and "Access denied" in cp.stderr, cp


def test_private_bus_denies_owning_a_name_without_policy(tmp_path):
    with PrivateBus(workdir=tmp_path / "bus") as bus:
        daemon = bus.proc.pid
        cp = subprocess.run([sys.executable, "-c", SERVICE], env=base_env(bus.env), capture_output=True,
                            text=True, timeout=30)
        assert cp.returncode != 0 and "not allowed to own" in cp.stderr
    assert _gone(daemon)


def test_haclient_group_exists_after_bus_start(tmp_path):
    with PrivateBus(workdir=tmp_path / "bus"):
        assert run_cmd(["getent", "group", "haclient"], check=False).returncode == 0


def test_spawned_output_is_logged_in_workdir():
    with Cluster(NODES[:1]) as c:
        p = c.spawn("node1", ["sh", "-c", "echo to-stdout; echo to-stderr >&2"], name="echo")
        assert p.wait(10) == 0
        assert p.log_path.parent.parent == c.workdir
        out = p.output()
        assert "to-stdout" in out and "to-stderr" in out
        assert c.run("node1", ["sh", "-c", "exit 3"]).returncode == 3
