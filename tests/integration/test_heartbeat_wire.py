"""ha-heartbeat against hostile traffic: fuzzed garbage and replayed captures are dropped and counted."""
import random
import sys
import time

import pytest

from hadaemon.testing.heartbeat import HeartbeatCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["node1", "node2", "node3"]

# Sends each hex-encoded datagram of a file to ADDR:PORT from inside a namespace (plain UDP socket).
SENDER = r"""
import socket, sys, time
path, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
n = 0
for line in open(path):
    line = line.strip()
    if not line:
        continue
    s.sendto(b"" if line == "-" else bytes.fromhex(line), (addr, port))
    n += 1
    if n % 50 == 0:
        time.sleep(0.005)
print(n)
"""


def send_datagrams(c, src, datagrams, addr, port=694):
    path = c.workdir / f"send-{time.monotonic_ns()}.hex"
    path.write_text("\n".join(d.hex() or "-" for d in datagrams) + "\n")
    cp = c.run(src, [sys.executable, "-c", SENDER, str(path), addr, str(port)], check=True, timeout=60)
    return int(cp.stdout.strip())


def captured_payloads(cap):
    from scapy.all import UDP

    return [bytes(p[UDP].payload) for p in cap.packets() if UDP in p]


def capture_from(c, src, seconds):
    """The UDP payloads node1 receives from `src` on port 694 during `seconds` (tcpdump in node1)."""
    with c.tcpdump("node1", f"udp port 694 and src host {c.addr(src)}") as cap:
        time.sleep(seconds)
    return captured_payloads(cap)


def test_garbage_never_crashes_the_daemon_and_is_counted_per_reason():
    with Cluster(NODES, client=True) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="1", initdead="2")
        hb.start_all()
        hb.wait_states("node1", {n: "up" for n in NODES})
        # a few genuine packets to mutate
        genuine = capture_from(c, "node2", 0.6)
        assert len(genuine) >= 3
        rnd = random.Random(2)
        garbage = []
        for _ in range(300):  # random bytes of random sizes
            garbage.append(rnd.randbytes(rnd.choice([0, 1, 2, 3, 4, 10, 60, 200, 1400, 9000])))
        for _ in range(300):  # our magic and version, random rest: key lookups, truncation, digests
            garbage.append(b"HD\x01" + rnd.randbytes(rnd.randint(0, 300)))
        for _ in range(300):  # genuine packets with one flipped byte or truncated
            g = bytearray(rnd.choice(genuine))
            if rnd.random() < 0.5:
                i = rnd.randrange(len(g))
                g[i] ^= 1 << rnd.randrange(8)
                garbage.append(bytes(g))
            else:
                garbage.append(bytes(g[:rnd.randrange(len(g))]))
        garbage += [b"HD\x09\x01" + rnd.randbytes(80) for _ in range(20)]  # unknown protocol version
        garbage += [rnd.randbytes(65400) for _ in range(5)]  # larger than any packet we accept
        before = hb.props("node1")["DropCounters"]
        sent = send_datagrams(c, "client", garbage, c.addr("node1"))
        assert sent == len(garbage)
        send_datagrams(c, "client", garbage[:200], _bcast(c))
        time.sleep(0.5)
        assert hb.procs["node1"].alive() and hb.procs["node2"].alive()
        after = hb.props("node1")["DropCounters"]
        delta = {k: after[k] - before.get(k, 0) for k in after}
        for reason in ("malformed", "auth", "version", "oversized"):
            assert delta[reason] > 0, (reason, delta)
        # every datagram was dropped exactly once (loss on a quiet local bridge aside: allow 2 %)
        assert sum(delta.values()) >= 0.98 * (len(garbage) + 200), delta
        assert hb.props("node1")["Members"] == NODES
        assert "Traceback" not in hb.procs["node1"].output()


def _bcast(c):
    net = c.subnet(0).split("/")[0].rsplit(".", 1)[0]
    return f"{net}.255"


def test_captured_packets_replayed_from_the_wire_are_rejected_and_counted():
    with Cluster(NODES, client=True) as c:
        hb = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        hb.start_all()
        hb.wait_states("node1", {n: "up" for n in NODES})
        packets = capture_from(c, "node2", 1.0)
        assert len(packets) >= 5
        # replayed while node2 is alive: every copy is a replay
        before = hb.props("node1")["DropCounters"]["replay"]
        send_datagrams(c, "client", packets, c.addr("node1"))
        wait_until(lambda: hb.props("node1")["DropCounters"]["replay"] >= before + len(packets), 5,
                   message="replays counted")
        # node2 stops; its replayed heartbeats must not bring it back
        hb.procs["node2"].kill9()
        hb.wait_states("node1", {"node2": "dead"}, timeout=10)
        before = hb.props("node1")["DropCounters"]["replay"]
        for _ in range(3):
            send_datagrams(c, "client", packets, c.addr("node1"))
            send_datagrams(c, "client", packets, _bcast(c))
            time.sleep(0.3)
            assert hb.states("node1")["node2"] == "dead"
            assert hb.states("node3")["node2"] == "dead"
        after = hb.props("node1")["DropCounters"]["replay"]
        assert after - before >= 0.98 * 6 * len(packets)
        assert hb.props("node3")["DropCounters"]["replay"] >= 3 * len(packets) * 0.98
        assert "node2" not in hb.props("node1")["Members"]
        # node2's restart (new generation) is admitted; its old packets stay replays
        hb.restart("node2")
        hb.wait_states("node1", {"node2": "up"}, timeout=10)
        before = hb.props("node1")["DropCounters"]["replay"]
        send_datagrams(c, "client", packets, c.addr("node1"))
        wait_until(lambda: hb.props("node1")["DropCounters"]["replay"] >= before + 0.98 * len(packets), 5,
                   message="old-generation replays counted")
