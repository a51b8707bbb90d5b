"""ha-ldirectord with the nftables backend in namespaces: 1:3 balancing through the VIP, the negotiate
check, quiescent (weight 0) versus removal, the fallback, recovery, and a SIGHUP reload without flapping."""
import json
import re
import signal
import time
from collections import Counter

import pytest

from hadaemon.io.lvs.nft import parse_listing
from hadaemon.testing.netns import Cluster
from hadaemon.testing.procs import wait_until
from tests.integration.director_env import PYTHON, DirectorEnv

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def env():
    with Cluster(["dir1", "dir2"], client=True) as c:
        yield DirectorEnv(c)


def start_director(env, director="dir1", extra=()):
    return env.c.spawn(director, [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft", "--no-dbus",
                                  *extra, str(env.config_path)], name="ldirectord")


def transitions(log: str) -> list:
    """[(real, virtual, up|down)] from the director's log."""
    return re.findall(r"real server (\S+) of (\S+) is (up|down)", log)


def test_balancing_quiescent_fallback_recovery_reload(env):
    env.config(quiescent="yes")
    env.add_vip("dir1")
    d = start_director(env)
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})

    # weights 1 and 3: new connections go 1:3 (numgen inc over 4 slots)
    replies = Counter(env.requests(40))
    print("40 requests through the VIP:", dict(replies))
    assert replies == Counter({"rs1": 10, "rs2": 30}), replies

    # rs1's /.test.html stops saying OK: negotiate fails, quiescent=yes -> weight 0, still listed
    env.set_health("rs1", False)
    env.wait_weights({rs1: 0, rs2: 3})
    replies = Counter(env.requests(12))
    assert replies == Counter({"rs2": 12}), replies

    # every real down: the fallback (127.0.0.1:80 on the director) is added and answers
    env.set_health("rs2", False)
    env.wait_weights({rs1: 0, rs2: 0, "127.0.0.1:80": 1})
    replies = Counter(env.requests(5))
    assert replies == Counter({"Server is repairing": 5}), replies

    # recovery: the reals come back with their weights, the fallback goes
    env.set_health("rs1", True)
    env.set_health("rs2", True)
    env.wait_weights({rs1: 1, rs2: 3})
    assert Counter(env.requests(8)) == Counter({"rs1": 2, "rs2": 6})

    # a reload (SIGHUP) with a changed config: unchanged reals keep their state, nothing flaps
    before = transitions(d.output())
    env.config(quiescent="yes", extra="# reloaded\n")
    with open(env.config_path, "a") as f:
        f.write("virtual=" + env.vip + ":8080\n\treal=" + env.rs["rs1"] + ":80 gate\n\tchecktype=connect\n")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 40
    while f"tcp:{env.vip}:8080" not in env.table() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"tcp:{env.vip}:8080" in env.table(), d.output()[-2000:]
    time.sleep(2.5)                           # two more check rounds
    assert "reloaded" in d.output()
    new = transitions(d.output())[len(before):]
    assert [t for t in new if t[1] == f"tcp:{env.vip}:80"] == [], f"reload flapped: {new}"
    assert (rs1, f"tcp:{env.vip}:8080", "up") in new
    assert env.weights() == {rs1: 1, rs2: 3}

    # a bad config on reload: the running one is kept, with the reason logged
    env.config_path.write_text(env.config_path.read_text() + "bogusdirective=1\n")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "reload refused" not in d.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "reload refused" in d.output() and "bogusdirective" in d.output()
    assert env.weights() == {rs1: 1, rs2: 3}
    assert f"tcp:{env.vip}:8080" in env.table()

    # a reload that drops a virtual service removes it from the table (ldirectord's code, not its manual)
    before = transitions(d.output())
    env.config(quiescent="yes")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while f"tcp:{env.vip}:8080" in env.table() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"tcp:{env.vip}:8080" not in env.table(), d.output()[-2000:]
    assert env.weights() == {rs1: 1, rs2: 3}
    assert [t for t in transitions(d.output())[len(before):] if t[1] == f"tcp:{env.vip}:80"] == []

    # stop: cleanstop removes what the director programmed
    d.terminate(timeout=10)
    assert env.table() == {}


def test_quiescent_no_removes_the_failed_real(env):
    env.config(quiescent="no")
    env.add_vip("dir1")
    start_director(env)
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})
    env.set_health("rs1", False)
    env.wait_weights({rs2: 3})
    assert Counter(env.requests(6)) == Counter({"rs2": 6})
    env.set_health("rs1", True)
    env.wait_weights({rs1: 1, rs2: 3})


def test_check_config_reports_file_and_line(env, tmp_path):
    bad = tmp_path / "bad.cf"
    bad.write_text("checkinterval=1\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tscheduler=wrr\n\tbogus=1\n")
    cp = env.c.run("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--check-config", str(bad)])
    assert cp.returncode != 0
    assert f"{bad}:5:" in cp.stderr and "Traceback" not in cp.stderr
    env.config()
    cp = env.c.run("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--check-config", str(env.config_path)])
    assert cp.returncode == 0, cp.stderr


def test_autoreload_follows_content_changes_only(env):
    env.config(quiescent="yes", autoreload="yes")
    env.add_vip("dir1")
    d = start_director(env)
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})
    env.config_path.touch()                      # mtime only: no reload
    time.sleep(2.5)
    assert "reloaded" not in d.output()
    text = env.config_path.read_text().replace(f"real={env.rs['rs2']}:80 gate 3", f"real={env.rs['rs2']}:80 gate 2")
    env.config_path.write_text(text)             # content: reload within a few seconds
    env.wait_weights({rs1: 1, rs2: 2}, timeout=40)
    assert d.output().count("reloaded") == 1
    assert Counter(env.requests(6)) == Counter({"rs1": 2, "rs2": 4})


def test_table_changed_behind_the_directors_back_is_repaired(env):
    env.config(quiescent="yes")
    env.add_vip("dir1")
    d = start_director(env, extra=("--resync-interval", "1"))
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})
    env.c.run("dir1", ["nft", "delete", "table", "ip", "hadaemon"], check=True)
    assert env.weights() == {}
    env.wait_weights({rs1: 1, rs2: 3}, timeout=30)
    assert "changed outside the director" in d.output()
    assert Counter(env.requests(4)) == Counter({"rs1": 1, "rs2": 3})


def test_ipv6_virtual_service_balances_through_ip6_hadaemon():
    """virtual6/real6 with the nft backend: the `ip6 hadaemon` table, DNAT + masquerade over IPv6, 1:3."""
    with Cluster(["dir1"], client=True, ipv6=True) as c:
        prefix = f"fd00:68:{c.base:x}::"
        hosts = {"dir1": 1, "client": 250}
        for name in ("rs1", "rs2"):
            c.add_host(name)
        hosts.update({"rs1": 11, "rs2": 12})
        for name, host in hosts.items():
            c.run(name, ["ip", "-6", "addr", "add", f"{prefix}{host:x}/64", "dev", "eth0", "nodad"], check=True)
        vip = f"{prefix}c8"
        c.run("dir1", ["ip", "-6", "addr", "add", f"{vip}/64", "dev", "eth0", "nodad"], check=True)
        c.run("dir1", ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"], check=True)
        for name in ("rs1", "rs2"):
            root = c.workdir / f"www-{name}"
            root.mkdir()
            (root / "index.html").write_text(f"{name}\n")
            (root / ".test.html").write_text("OK\n")
            c.spawn(name, [PYTHON, "-m", "http.server", "--bind", "::", "--directory", str(root), "80"], name="http")
        cfg = c.workdir / "ldirectord.cf"
        cfg.write_text(f"checktimeout=2\ncheckinterval=1\nquiescent=yes\nvirtual6=[{vip}]:80\n"
                       f"\treal6=[{prefix}b]:80 gate\n\treal6=[{prefix}c]:80 gate 3\n\tservice=http\n"
                       f"\trequest=\".test.html\"\n\treceive=\"OK\"\n\tscheduler=wrr\n\tprotocol=tcp\n")
        d = c.spawn("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft", "--no-dbus", str(cfg)],
                    name="ldirectord")
        key = f"tcp:[{vip}]:80"
        deadline = time.monotonic() + 60
        weights = {}
        while time.monotonic() < deadline:
            cp = c.run("dir1", ["nft", "-j", "list", "table", "ip6", "hadaemon"])
            if cp.returncode == 0:
                entry = parse_listing(json.loads(cp.stdout)).get(key)
                weights = {k: x.weight for k, x in entry.dests.items()} if entry else {}
                if weights == {f"[{prefix}b]:80": 1, f"[{prefix}c]:80": 3}:
                    break
            time.sleep(0.3)
        assert weights == {f"[{prefix}b]:80": 1, f"[{prefix}c]:80": 3}, d.output()[-2000:]
        script = c.workdir / "client.py"
        script.write_text("import sys, urllib.request\nfor i in range(8):\n"
                          "    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())\n")
        cp = c.run("client", [PYTHON, str(script), f"http://[{vip}]/"], timeout=120)
        assert Counter(cp.stdout.split()) == Counter({"rs1": 2, "rs2": 6}), cp.stderr
        d.terminate(timeout=10)
        assert c.run("dir1", ["nft", "list", "table", "ip6", "hadaemon"]).returncode != 0    # cleanstop


def test_persistence_keeps_a_client_on_one_real(env):
    """persistent=: the nft backend's per-real source sets send a client back to the same real."""
    env.config(quiescent="yes", extra="")
    text = env.config_path.read_text().replace("\tscheduler=wrr\n", "\tscheduler=wrr\n\tpersistent=300\n")
    env.config_path.write_text(text)
    env.add_vip("dir1")
    start_director(env)
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3})
    replies = env.requests(8)
    assert len(set(replies)) == 1 and replies[0] in ("rs1", "rs2"), replies   # one real for this client
    sets = env.c.run("dir1", ["nft", "list", "table", "ip", "hadaemon"]).stdout
    assert "timeout 5m" in sets and env.c.addr("client") in sets                # the client is remembered


def test_flap_damping_holds_a_flapping_real_down_until_stable(env):
    """--flap-damping 3/20: rs1 comes up (start), goes down, up, down: the 4th change within 20 s holds it
    down (weight 0, quiescent) although its checks pass again, logged as flapping; it is back once its
    checks have passed for 20 s in a row."""
    env.config(quiescent="yes")
    env.add_vip("dir1")
    d = start_director(env, extra=["--flap-damping", "3/20"])
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    env.wait_weights({rs1: 1, rs2: 3})
    for healthy in (False, True, False):
        env.set_health("rs1", healthy)
        env.wait_weights({rs1: 1 if healthy else 0, rs2: 3})
    # the events of a table update are logged after the update (between turns of the event loop)
    try:
        wait_until(lambda: "flapping: 4 changes in 20s, held down" in d.output(), 10, interval=0.1,
                   message="the flapping real logged as held down")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{d.output()[-2000:]}") from None
    env.set_health("rs1", True)
    t_held = time.monotonic()
    time.sleep(3)
    assert env.weights() == {rs1: 0, rs2: 3}      # checks pass, still held
    env.wait_weights({rs1: 1, rs2: 3}, timeout=80)
    print(f"held down for {time.monotonic() - t_held:.1f}s (window 20 s of passing checks)")
    assert time.monotonic() - t_held >= 12          # without damping it is back within a check or two
