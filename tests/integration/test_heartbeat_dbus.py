"""org.hadaemon.Heartbeat1 through busctl on a private system-like bus: introspect, properties, calls,
errors for bad arguments, the busconfig policy, hactl status."""
import asyncio
import grp
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.testing.heartbeat import BUS_NAME, INTERFACE, OBJECT_PATH, BusClient, HeartbeatCluster
from hadaemon.testing.netns import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NODES = ["node1", "node2"]


@pytest.fixture(scope="module")
def hb():
    with Cluster(NODES) as c:
        h = HeartbeatCluster(c, keepalive="100ms", deadtime="500ms", initdead="1")
        h.start_all()
        h.wait_states("node1", {"node2": "up"})
        yield h


def members(iface):
    """(kind, name) -> signature of an <interface> element's methods, signals and properties."""
    out = {}
    for m in iface.findall("method"):
        ins = "".join(a.get("type") for a in m.findall("arg") if a.get("direction", "in") == "in")
        outs = "".join(a.get("type") for a in m.findall("arg") if a.get("direction") == "out")
        out[("method", m.get("name"))] = (ins, outs)
    for s in iface.findall("signal"):
        out[("signal", s.get("name"))] = "".join(a.get("type") for a in s.findall("arg"))
    for p in iface.findall("property"):
        out[("property", p.get("name"))] = (p.get("type"), p.get("access"))
    return out


def contract():
    """The members of dbus/org.hadaemon.Heartbeat1.xml."""
    root = ET.parse(REPO / "dbus" / "org.hadaemon.Heartbeat1.xml").getroot()
    return members(root.find(f"interface[@name='{INTERFACE}']"))


def test_busctl_introspect_matches_the_contract_xml(hb):
    cp = hb.busctl("node1", "introspect", "--xml-interface", BUS_NAME, OBJECT_PATH)
    live = ET.fromstring(cp.stdout).find(f"interface[@name='{INTERFACE}']")
    got = members(live)
    assert len(got) == 14, sorted(got)  # 2 methods, 6 signals, 6 properties: the contract is not empty
    assert got == contract()
    table = hb.busctl("node1", "introspect", BUS_NAME, OBJECT_PATH).stdout
    assert ".Send" in table and ".Nodes" in table and ".MembershipChanged" in table


def test_busctl_get_property(hb):
    def get(prop):
        cp = hb.busctl("node1", "--json=short", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, prop)
        return json.loads(cp.stdout)

    assert get("LocalNode") == {"type": "s", "data": "node1"}
    nodes = get("Nodes")
    assert nodes["type"] == "a{s(sa{ss})}"
    assert nodes["data"]["node2"] == ["up", {"eth0": "up"}]
    assert nodes["data"]["node1"] == ["up", {"eth0": "up"}]
    assert get("Epoch")["data"] >= 1
    assert get("Generation")["data"] >= 1
    drops = get("DropCounters")
    assert drops["type"] == "a{st}" and set(drops["data"]) >= {"auth", "replay", "malformed", "oversized"}
    plain = hb.busctl("node1", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Members").stdout
    assert plain.strip() == 'as 2 "node1" "node2"'


def test_busctl_call_send_and_broadcast_deliver(hb):
    async def run():
        rx = await BusClient(hb.c.dbus("node2")).connect()
        got = []
        rx.on_signal(lambda member, args: got.append(args) if member == "MessageReceived" else None)
        cp = hb.busctl("node1", "call", BUS_NAME, OBJECT_PATH, INTERFACE, "Send", "ssay", "node2", "test",
                       "3", "104", "105", "33")
        assert cp.stdout.startswith("t ")
        cp = hb.busctl("node1", "call", BUS_NAME, OBJECT_PATH, INTERFACE, "Broadcast", "say", "all", "1", "7")
        assert cp.stdout.startswith("t ")
        for _ in range(100):
            if len(got) >= 2:
                break
            await asyncio.sleep(0.05)
        rx.close()
        return got

    got = asyncio.run(run())
    assert [(s, ch, bytes(b)) for s, ch, b in got] == [("node1", "test", b"hi!"), ("node1", "all", b"\x07")]


@pytest.mark.parametrize("args, raw, error, text", [
    (["Send", "ssay", "nosuch", "ch", "0"], ["Send", "ssay", ["nosuch", "ch", ""]],
     "org.hadaemon.Heartbeat1.Error.UnknownNode", "unknown node 'nosuch'"),
    (["Send", "ssay", "node1", "ch", "0"], ["Send", "ssay", ["node1", "ch", ""]],
     "org.hadaemon.Heartbeat1.Error.InvalidArgument", "local node"),
    (["Send", "ssay", "node2", "", "0"], ["Send", "ssay", ["node2", "", ""]],
     "org.hadaemon.Heartbeat1.Error.InvalidArgument", "channel"),
    (["Broadcast", "say", "has space", "0"], ["Broadcast", "say", ["has space", ""]],
     "org.hadaemon.Heartbeat1.Error.InvalidArgument", "channel"),
    (["Send", "sss", "node2", "ch", "x"], ["Send", "sss", ["node2", "ch", "x"]],
     "org.freedesktop.DBus.Error.UnknownMethod", "signature"),
    (["NoSuchMethod"], ["NoSuchMethod", "", []], "org.freedesktop.DBus.Error.UnknownMethod", ""),
])
def test_bad_arguments_get_a_dbus_error_with_a_message_and_the_daemon_keeps_running(hb, args, raw, error, text):
    cp = hb.busctl("node1", "call", BUS_NAME, OBJECT_PATH, INTERFACE, *args, check=False)
    assert cp.returncode != 0
    assert text in cp.stderr
    # busctl prints only the message; the error name is checked with a raw client
    cp2 = subprocess.run([sys.executable, "-c", RAW_CALL, hb.c.dbus("node1"), json.dumps(raw)],
                         capture_output=True, text=True, timeout=30)
    assert cp2.stdout.split()[0] == error, cp2.stdout + cp2.stderr
    assert hb.procs["node1"].alive()
    assert hb.props("node1")["Members"] == NODES


RAW_CALL = r"""
import asyncio, json, re, sys
from hadaemon.bus.dbusnext import Message, MessageBus, MessageType
async def main():
    bus = await MessageBus(bus_address=sys.argv[1]).connect()
    member, sig, body = json.loads(sys.argv[2])
    body = [b"" if t == "ay" else v for t, v in zip(re.findall(r"ay|.", sig), body)]
    reply = await bus.call(Message(destination="org.hadaemon.Heartbeat1", path="/org/hadaemon/Heartbeat1",
                                   interface="org.hadaemon.Heartbeat1", member=member, signature=sig, body=body))
    print(reply.error_name if reply.message_type == MessageType.ERROR else "ok", reply.body)
asyncio.run(main())
"""


def _as_user(hb, gid_extra=None):
    os.chmod(hb.c.workdir, 0o711)
    groups = ["--clear-groups"] if gid_extra is None else [f"--groups={gid_extra}"]
    return ["setpriv", "--reuid=65534", "--regid=65534", *groups, "busctl", f"--address={hb.c.dbus('node1')}"]


def test_policy_everyone_reads_only_root_sends(hb):
    nobody = _as_user(hb)
    cp = subprocess.run(nobody + ["get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "LocalNode"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and cp.stdout.strip() == 's "node1"', cp.stderr
    cp = subprocess.run(nobody + ["introspect", BUS_NAME, OBJECT_PATH], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and ".Send" in cp.stdout
    cp = subprocess.run(nobody + ["call", BUS_NAME, OBJECT_PATH, INTERFACE, "Send", "ssay", "node2", "c", "0"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stderr
    # a haclient member may not inject messages either (they would reach the peers' ha-crmd as this
    # node's): admins act through org.hadaemon.Crm1
    haclient = grp.getgrnam("haclient").gr_gid
    member = _as_user(hb, haclient)
    cp = subprocess.run(member + ["call", BUS_NAME, OBJECT_PATH, INTERFACE, "Send", "ssay", "node2", "crmd", "0"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stderr
    cp = subprocess.run(member + ["get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Members"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and "node1" in cp.stdout, cp.stderr
    cp = subprocess.run(["busctl", f"--address={hb.c.dbus('node1')}", "call", BUS_NAME, OBJECT_PATH, INTERFACE,
                         "Send", "ssay", "node2", "c", "0"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and cp.stdout.startswith("t "), cp.stderr   # root


def test_policy_only_root_owns_the_name(hb):
    """RequestName(org.hadaemon.Heartbeat1, DO_NOT_QUEUE): root is allowed (the name exists: reply 3),
    nobody and a haclient member are refused by the bus."""
    def request_name(prefix):
        argv = prefix + ["dbus-send", f"--bus={hb.c.dbus('node1')}", "--print-reply",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.RequestName", f"string:{BUS_NAME}", "uint32:4"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    root = request_name([])  # as root
    assert root.returncode == 0 and root.stdout.split()[-2:] == ["uint32", "3"], root.stdout + root.stderr
    haclient = grp.getgrnam("haclient").gr_gid
    for user in (_as_user(hb), _as_user(hb, haclient)):
        cp = request_name(user[:-2])  # the setpriv part, without busctl
        assert cp.returncode != 0, cp.stdout
        assert "AccessDenied" in cp.stderr and "not allowed to own" in cp.stderr, cp.stderr
    assert hb.props("node1")["LocalNode"] == "node1"


def test_hactl_status_shows_nodes_links_epoch_and_drops(hb):
    env = dict(os.environ, **hb.c.dbus_env("node1"))
    cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "status"], capture_output=True, text=True,
                        env=env, timeout=30)
    assert cp.returncode == 0, cp.stderr  # ha-crmd is not running here: said, and the membership part shown
    lines = cp.stdout.splitlines()
    assert lines[0] == "Membership:"
    assert lines[1].startswith("  * Local node: node1 (generation ")
    assert "membership epoch" in lines[1] and lines[1].endswith("node1 node2")
    assert lines[3].split() == ["NODE", "STATE", "LINK", "eth0"]
    assert lines[4].split() == ["node1", "(local)", "up", "up"]
    assert lines[5].split() == ["node2", "up", "up"]
    assert any(ln.startswith("Dropped packets: ") for ln in lines)
    assert "Not available: ha-crmd is not running (org.hadaemon.Crm1 is not on the bus)" in lines
    cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "status", "--json"], capture_output=True,
                        text=True, env=env, timeout=30)
    assert json.loads(cp.stdout)["heartbeat"]["Nodes"]["node2"] == ["up", {"eth0": "up"}]


def test_hactl_status_without_daemon_says_so():
    from hadaemon.testing.dbus import PrivateBus

    with PrivateBus() as bus:
        cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "status"], capture_output=True, text=True,
                            env=dict(os.environ, **bus.env), timeout=30)
    assert cp.returncode == 1
    err = cp.stderr.strip().splitlines()
    assert cp.stdout == "" and len(err) == 2
    assert err[0] == "hactl status: ha-crmd is not running (org.hadaemon.Crm1 is not on the bus)"
    assert err[1].startswith("hactl status: ha-heartbeat is not on the bus")
