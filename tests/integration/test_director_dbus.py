"""org.hadaemon.Director1 through busctl on a private system-like bus (nft backend in namespaces):
contract XML, properties with health, SetWeight/Drain/Restore/Reload, errors, the policy, signals, hactl."""
import grp
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from hadaemon.testing.dbus import PrivateBus
from hadaemon.testing.netns import Cluster
from tests.integration.director_env import PYTHON, REPO, DirectorEnv

pytestmark = [pytest.mark.root, pytest.mark.slow]

BUS_NAME = "org.hadaemon.Director1"
OBJECT_PATH = "/org/hadaemon/Director1"
INTERFACE = "org.hadaemon.Director1"


@pytest.fixture(scope="module")
def env():
    with Cluster(["dir1", "dir2"], client=True) as c:
        e = DirectorEnv(c)
        e.config(quiescent="yes")
        e.add_vip("dir1")
        e.proc = c.spawn("dir1", [PYTHON, "-m", "hadaemon.daemons.director", "--backend", "nft",
                                  str(e.config_path)], env=c.dbus_env("dir1"), name="ldirectord")
        e.monitor = subprocess.Popen(["busctl", f"--address={c.dbus('dir1')}", "--json=short", "monitor",
                                      "--match", f"type='signal',interface='{INTERFACE}'"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            e.wait_weights({e.key("rs1"): 1, e.key("rs2"): 3})
            yield e
        finally:
            e.monitor.terminate()
            e.monitor.wait(5)


def busctl(env, *args, check=True):
    cp = subprocess.run(["busctl", f"--address={env.c.dbus('dir1')}", *args], capture_output=True, text=True,
                        timeout=30)
    if check:
        assert cp.returncode == 0, cp.stderr
    return cp


def reals(env) -> dict:
    cp = busctl(env, "--json=short", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "RealServers")
    data = json.loads(cp.stdout)
    assert data["type"] == "a(ssssiibsdb)"
    return {r[1]: r for r in data["data"]}


def call(env, member, sig="", *args, check=True):
    return busctl(env, "call", BUS_NAME, OBJECT_PATH, INTERFACE, member, *([sig, *map(str, args)] if sig else []),
                  check=check)


def signatures(iface) -> dict:
    out = {}
    for m in iface.findall("method"):
        out[("method", m.get("name"))] = (
            "".join(a.get("type") for a in m.findall("arg") if a.get("direction", "in") == "in"),
            "".join(a.get("type") for a in m.findall("arg") if a.get("direction") == "out"))
    for s in iface.findall("signal"):
        out[("signal", s.get("name"))] = "".join(a.get("type") for a in s.findall("arg"))
    for p in iface.findall("property"):
        out[("property", p.get("name"))] = (p.get("type"), p.get("access"))
    return out


def test_introspection_matches_the_contract_xml(env):
    live = ET.fromstring(busctl(env, "introspect", "--xml-interface", BUS_NAME, OBJECT_PATH).stdout)
    contract = ET.parse(REPO / "dbus" / "org.hadaemon.Director1.xml").getroot()
    path = f"interface[@name='{INTERFACE}']"
    assert signatures(live.find(path)) == signatures(contract.find(path))


def test_properties_show_virtuals_and_reals_with_health(env):
    vs = json.loads(busctl(env, "--json=short", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE,
                           "VirtualServices").stdout)["data"]
    assert vs == [[f"tcp:{env.vip}:80", "tcp", env.vip, 80, 0, "wrr", 0, "", "negotiate", "http"]]
    r = reals(env)
    rs1 = r[env.key("rs1")]
    assert rs1[:6] == [f"tcp:{env.vip}:80", env.key("rs1"), "gate", "up", 1, 1]
    assert rs1[6] is True and "200" in rs1[7] and abs(rs1[8] - time.time()) < 30 and rs1[9] is False
    assert r[env.key("rs2")][3:6] == ["up", 3, 3]
    assert r["127.0.0.1:80"][3:5] == ["fallback", -1]
    backend = busctl(env, "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Backend").stdout.strip()
    assert backend == 's "nft"'


def test_drain_set_weight_restore(env):
    # RealServerChanged is coalesced per real over FLUSH_INTERVAL (0.1 s): the latest state of each real
    # is sent, so each step waits past that window before the next one, or its signal is rightly merged
    settle = 0.5
    rs1 = env.key("rs1")
    call(env, "Drain", "ss", env.vip + ":80", rs1)
    env.wait_weights({rs1: 0, env.key("rs2"): 3})
    assert reals(env)[rs1][3:6] == ["drained", 0, 1]
    assert [t for t in env.requests(4)] == ["rs2"] * 4
    time.sleep(settle)
    call(env, "SetWeight", "ssu", f"tcp:{env.vip}:80", env.rs["rs1"], 3)
    env.wait_weights({rs1: 3, env.key("rs2"): 3})
    assert reals(env)[rs1][9] is True
    time.sleep(settle)
    call(env, "Restore", "ss", f"tcp:{env.vip}:80", rs1)
    env.wait_weights({rs1: 1, env.key("rs2"): 3})
    # the signals were emitted (busctl monitor, JSON per message)
    deadline = time.monotonic() + 15
    seen = []
    os.set_blocking(env.monitor.stdout.fileno(), False)
    want = ([f"tcp:{env.vip}:80", rs1, "drained", 0], [f"tcp:{env.vip}:80", rs1, "up", 3],
            [f"tcp:{env.vip}:80", rs1, "up", 1])

    def in_order():   # drained, then up 3, then up 1 (the start's own signals come before them)
        k = 0
        for m in seen:
            if k < len(want) and m == want[k]:
                k += 1
        return k == len(want)

    while time.monotonic() < deadline and not in_order():
        line = env.monitor.stdout.readline()
        if not line:
            time.sleep(0.1)
            continue
        msg = json.loads(line)
        if msg.get("member") == "RealServerChanged":
            seen.append(msg["payload"]["data"])
    assert in_order(), seen


def test_all_drained_means_no_new_connections(env):
    """Every real at weight 0 while up: no fallback (a real is up), and no new connection gets through."""
    rs1, rs2 = env.key("rs1"), env.key("rs2")
    try:
        call(env, "Drain", "ss", f"tcp:{env.vip}:80", rs1)
        call(env, "Drain", "ss", f"tcp:{env.vip}:80", rs2)
        env.wait_weights({rs1: 0, rs2: 0})
        replies = env.requests(1)
        assert len(replies) == 1 and replies[0].startswith("ERR"), replies      # dropped: the client times out
    finally:
        call(env, "Restore", "ss", f"tcp:{env.vip}:80", rs1)
        call(env, "Restore", "ss", f"tcp:{env.vip}:80", rs2)
    env.wait_weights({rs1: 1, rs2: 3})


def test_bad_arguments_are_dbus_errors_with_a_message(env):
    cp = call(env, "Drain", "ss", "tcp:10.9.9.9:80", env.key("rs1"), check=False)
    assert cp.returncode != 0 and "no virtual service" in cp.stderr
    cp = call(env, "Drain", "ss", f"tcp:{env.vip}:80", "10.9.9.9:80", check=False)
    assert cp.returncode != 0 and "no real server" in cp.stderr
    cp = call(env, "SetWeight", "ssu", f"tcp:{env.vip}:80", env.key("rs1"), 70000, check=False)
    assert cp.returncode != 0 and "weight must be 0..65535" in cp.stderr
    cp = call(env, "Drain", "ss", "", "", check=False)
    assert cp.returncode != 0 and "must be 1.." in cp.stderr
    cp = call(env, "SetWeight", "ss", f"tcp:{env.vip}:80", env.key("rs1"), check=False)     # wrong signature
    assert cp.returncode != 0 and "could not be found" in cp.stderr
    # the daemon logs one line per refusal, not a traceback
    deadline = time.monotonic() + 5
    while "D-Bus request refused" not in env.proc.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "D-Bus request refused" in env.proc.output()
    assert "Exception in callback" not in env.proc.output()


def test_reload_bad_config_keeps_the_running_one(env):
    good = env.config_path.read_text()
    try:
        env.config_path.write_text(good + "\tscheduler=\n")
        cp = call(env, "Reload", check=False)
        assert cp.returncode != 0 and str(env.config_path) in cp.stderr, cp.stderr
    finally:
        env.config_path.write_text(good)
    reloads = busctl(env, "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Reloads").stdout.split()[1]
    call(env, "Reload")
    after = busctl(env, "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Reloads").stdout.split()[1]
    assert int(after) == int(reloads) + 1
    assert env.weights() == {env.key("rs1"): 1, env.key("rs2"): 3}


@pytest.mark.parametrize("bad,line,what", [
    # the case: accepted by ldirectord's parser, then every nft apply failed and the table froze
    ("virtual={vip}:80\n" + "".join(f"\treal=10.0.0.{i}:80 gate 2147483647\n" for i in (2, 3, 4)), 2, "0..65535"),
    ("", 1, "the file is empty"),                          # would have removed the virtual service
    ("# nothing but comments\n\n", 2, "no virtual service"),
])
def test_reload_refuses_what_the_table_cannot_take(env, bad, line, what):
    """A file the table cannot take (a weight over the one limit, 65535) or without any virtual service is
    refused by Reload with file:line, and the running configuration and table stay."""
    good = env.config_path.read_text()
    reloads = busctl(env, "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Reloads").stdout.split()[1]
    try:
        env.config_path.write_text(bad.format(vip=env.vip))
        cp = call(env, "Reload", check=False)
        assert cp.returncode != 0 and f"{env.config_path}:{line}:" in cp.stderr and what in cp.stderr, cp.stderr
    finally:
        env.config_path.write_text(good)
    after = busctl(env, "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Reloads").stdout.split()[1]
    assert after == reloads
    assert env.weights() == {env.key("rs1"): 1, env.key("rs2"): 3}
    assert "Traceback" not in env.proc.output()


def _as_user(env, gid_extra=None):
    os.chmod(env.c.workdir, 0o711)
    groups = ["--clear-groups"] if gid_extra is None else [f"--groups={gid_extra}"]
    return ["setpriv", "--reuid=65534", "--regid=65534", *groups, "busctl", f"--address={env.c.dbus('dir1')}"]


def test_policy_everyone_reads_only_root_and_haclient_call(env):
    nobody = _as_user(env)
    cp = subprocess.run(nobody + ["get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Backend"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and cp.stdout.strip() == 's "nft"', cp.stderr
    cp = subprocess.run(nobody + ["call", BUS_NAME, OBJECT_PATH, INTERFACE, "Drain", "ss", env.vip + ":80",
                                  env.key("rs1")], capture_output=True, text=True, timeout=30)
    assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stderr
    assert env.weights()[env.key("rs1")] == 1
    member = _as_user(env, grp.getgrnam("haclient").gr_gid)
    cp = subprocess.run(member + ["call", BUS_NAME, OBJECT_PATH, INTERFACE, "Listing"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and env.key("rs2") in cp.stdout, cp.stderr


def test_hactl_director_status_and_actions(env):
    e = dict(os.environ, **env.c.dbus_env("dir1"))

    def hactl(*args):
        return subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "director", *args],
                              capture_output=True, text=True, env=e, timeout=30)

    cp = hactl("status")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    print(cp.stdout)
    assert lines[2] == "Prot LocalAddress:Port Scheduler Flags"
    assert lines[4].startswith(f"TCP  {env.vip}:80 wrr")
    row = {ln.split()[1]: ln.split() for ln in lines if ln.startswith("  -> ") and "RemoteAddress" not in ln}
    assert row[env.key("rs1")][2:5] == ["Route", "1", "up"]
    assert row[env.key("rs2")][2:5] == ["Route", "3", "up"]
    assert row["127.0.0.1:80"][3:5] == ["-", "fallback"]
    assert hactl("drain", f"{env.vip}:80", env.key("rs2")).returncode == 0
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 0})
    assert hactl("weight", f"{env.vip}:80", env.key("rs2"), "2").returncode == 0
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 2})
    assert hactl("restore", f"{env.vip}:80", env.key("rs2")).returncode == 0
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3})
    cp = hactl("drain", "10.1.1.1:1", env.key("rs2"))
    assert cp.returncode == 1 and "UnknownVirtual" in cp.stderr and "Traceback" not in cp.stderr
    assert hactl("reload").returncode == 0


def test_hactl_gives_up_on_a_director_that_does_not_answer(env):
    """A director that owns its name but does not answer (stopped) and one that is not running at all:
    every hactl director subcommand ends within its 5 s timeout with a one-line message."""
    import signal

    e = dict(os.environ, **env.c.dbus_env("dir1"))
    subcommands = [["status"], ["drain", f"{env.vip}:80", env.key("rs1")], ["restore", f"{env.vip}:80", env.key("rs1")],
                   ["weight", f"{env.vip}:80", env.key("rs1"), "2"], ["reload"]]
    env.proc.signal(signal.SIGSTOP)
    try:
        for sub in subcommands:
            t0 = time.monotonic()
            cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "director", *sub], capture_output=True,
                                text=True, env=e, timeout=60)
            elapsed = time.monotonic() - t0
            print(sub[0], f"{elapsed:.1f}s", cp.stderr.strip())
            assert cp.returncode == 1 and "did not answer within 5s" in cp.stderr, cp.stderr
            assert len(cp.stderr.strip().splitlines()) == 1 and "Traceback" not in cp.stderr
    finally:
        env.proc.signal(signal.SIGCONT)
    # the calls hactl gave up on were still queued for the director: it handles them once resumed
    # (the last one set rs1's weight to 2); undo that
    call(env, "Restore", "ss", f"tcp:{env.vip}:80", env.key("rs1"))
    # no director on the bus at all (a bus without it): told at once that it is not running
    with PrivateBus() as other:
        e2 = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=other.address)
        for sub in subcommands:
            cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "director", *sub], capture_output=True,
                                text=True, env=e2, timeout=60)
            assert cp.returncode == 1 and "not running" in cp.stderr, cp.stderr
            assert len(cp.stderr.strip().splitlines()) == 1
    env.wait_weights({env.key("rs1"): 1, env.key("rs2"): 3})
