"""Overlapping reloads and slow name resolution (nft backend, namespaces): reloads are serialised and the
newest file wins; 30 quick SIGHUPs against a DNS server that never answers neither pile up lookups nor delay
a real server's failure reaching the table."""
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster
from tests.integration.director_env import PYTHON, DirectorEnv

pytestmark = [pytest.mark.root, pytest.mark.slow]

# A DNS server for the director's namespace: <n>.slow.test answers after 2 s (within the director's 3 s lookup bound), *.dead.test never, others at once
# (all with 192.0.2.<n>); queries are logged to stdout.
DNS_SERVER = r"""
import socket, struct, sys, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("READY", flush=True)
def answer(data, addr):
    qid = data[:2]
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode()); i += 1 + data[i]
    name = ".".join(labels)
    qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
    question = data[12:i + 5]
    print("query", name, qtype, flush=True)
    if name.endswith("dead.test"):
        return
    if name.endswith("slow.test"):
        time.sleep(2)
    n = int(labels[0]) if labels[0].isdigit() else 1
    if qtype != 1:      # only A records
        s.sendto(qid + b"\x81\x80" + struct.pack("!HHHH", 1, 0, 0, 0) + question, addr)
        return
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, n])
    s.sendto(qid + b"\x81\x80" + struct.pack("!HHHH", 1, 1, 0, 0) + question + rr, addr)
while True:
    data, addr = s.recvfrom(512)
    threading.Thread(target=answer, args=(data, addr), daemon=True).start()
"""


@pytest.fixture
def env():
    with Cluster(["dir1", "dir2"], client=True) as c:
        e = DirectorEnv(c)
        # `ip netns exec` mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf: the director's DNS server
        ns_dir = Path("/etc/netns") / c.netns("dir1")
        ns_dir.mkdir(parents=True)
        try:
            (ns_dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
            script = c.workdir / "dns.py"
            script.write_text(DNS_SERVER)
            e.dns = c.spawn("dir1", [PYTHON, str(script)], name="dns")
            deadline = time.monotonic() + 30
            while "READY" not in e.dns.output() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "READY" in e.dns.output(), e.dns.output()
            yield e
        finally:
            shutil.rmtree(ns_dir, ignore_errors=True)


def start_director(env):
    return env.c.spawn("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft", "--no-dbus",
                                str(env.config_path)], name="ldirectord")


def extra_virtual(port: int, real: str) -> str:
    return f"virtual={env_vip[0]}:{port}\n\treal={real}:80 gate\n\tchecktype=on\n"


env_vip = [""]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_overlapping_reloads_newest_file_wins(env):
    env_vip[0] = env.vip
    env.config(quiescent="yes")
    env.add_vip("dir1")
    d = start_director(env)
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3})
    # reload 1: an older file whose real's host name takes 2 s to resolve
    env.config(quiescent="yes", extra=extra_virtual(8080, "7.slow.test"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "7.slow.test" in env.dns.output(), 15, "the slow lookup")
    # reload 2: a newer file, requested while reload 1 is still resolving
    env.config(quiescent="yes", extra=extra_virtual(8081, "8.fast.test"))
    d.signal(signal.SIGHUP)
    try:
        wait_for(lambda: d.output().count("reloaded ") >= 2, 30, "two reloads")
    except AssertionError:
        print(d.output()[-3000:], env.dns.output()[-1000:])
        raise
    time.sleep(1.0)
    table = env.table()
    print(d.output()[-1500:])
    assert f"tcp:{env.vip}:8081" in table, table.keys()                 # the newest file is in force
    assert f"tcp:{env.vip}:8080" not in table, table.keys()             # the older one was not applied after it
    assert table[f"tcp:{env.vip}:8081"].dests["192.0.2.8:80"].weight == 1
    # reloads ran one after the other, in the order the files were written
    assert d.output().count("reloaded ") == 2


def test_quick_sighups_with_dead_dns_do_not_delay_the_table(env):
    env_vip[0] = env.vip
    env.config(quiescent="yes")
    env.add_vip("dir1")
    d = start_director(env)
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})
    env.config(quiescent="yes", extra=extra_virtual(8080, "9.dead.test"))
    for _ in range(30):
        d.signal(signal.SIGHUP)
        time.sleep(0.05)
    t0 = time.monotonic()
    env.set_health("rs1", False)
    env.wait_weights({rs1: 0, rs2: 3}, timeout=30)
    delay = time.monotonic() - t0
    print(f"rs1's failure reached the table {delay:.1f}s after it began (checkinterval 1 s, checktimeout 1 s)")
    assert delay < 10, delay                 # 18.5 s before: every worker thread was stuck in a lookup
    wait_for(lambda: "reload refused" in d.output(), 60, "the refusal")
    out = d.output()
    refused = re.findall(r"reload refused.*", out)
    print(f"30 SIGHUPs -> {len(refused)} refused reload(s): {refused[0]}")
    assert "9.dead.test" in refused[0] and "could not resolve host" in refused[0]
    assert 1 <= len(refused) <= 3, refused   # coalesced: not 30 loads
    assert env.dns.output().count("query 9.dead.test 1") <= 3
    assert f"tcp:{env.vip}:8080" not in env.table()
    env.set_health("rs1", True)
    env.wait_weights({rs1: 1, rs2: 3})
