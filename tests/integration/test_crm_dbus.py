"""org.hadaemon.Crm1 through busctl on a private system-like bus, exported over a stand-in backend
(tests/integration/crm_fake.py: real edits, real scheduler, in-memory CIB): the contract XML, properties,
MigrateResource and the other calls, D-Bus errors for bad arguments, signals, the busconfig policy."""
import grp
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.testing.dbus import PrivateBus
from hadaemon.testing.procs import Proc

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
CIB = REPO / "tests" / "unit" / "data" / "crm_two_groups.xml"
BUS_NAME = "org.hadaemon.Crm1"
OBJECT_PATH = "/org/hadaemon/Crm1"
INTERFACE = "org.hadaemon.Crm1"


class Env:
    def __init__(self, bus: PrivateBus, proc: Proc, monitor):
        self.bus, self.proc, self.monitor = bus, proc, monitor
        self.signals: list = []

    def busctl(self, *args, check=True):
        cp = subprocess.run(["busctl", f"--address={self.bus.address}", *args], capture_output=True, text=True,
                            timeout=30)
        if check:
            assert cp.returncode == 0, cp.stderr
        return cp

    def call(self, member, sig="", *args, check=True):
        return self.busctl("call", "--", BUS_NAME, OBJECT_PATH, INTERFACE, member,
                           *([sig, *map(str, args)] if sig else []), check=check)

    def status(self) -> dict:
        cp = self.busctl("--json=short", "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Status")
        return json.loads(json.loads(cp.stdout)["data"])

    def where(self, rsc) -> list:
        return next(r for r in self.status()["resources"] if r["id"] == rsc)["nodes"]

    def read_signals(self, want, timeout=15):
        """Signals seen by busctl monitor until want(list) holds."""
        os.set_blocking(self.monitor.stdout.fileno(), False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not want(self.signals):
            line = self.monitor.stdout.readline()
            if not line:
                time.sleep(0.05)
                continue
            msg = json.loads(line)
            if msg.get("type") == "signal" and msg.get("interface") == INTERFACE:
                self.signals.append((msg["member"], msg["payload"]["data"]))
        return self.signals


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("crmbus")
    with PrivateBus() as bus:
        os.chmod(bus.workdir, 0o755)  # the policy tests connect as nobody
        proc = Proc([sys.executable, "-m", "tests.integration.crm_fake", "--cib", str(CIB), "--node", "admin1",
                     "--members", "admin1,admin2"], work / "crm_fake.log", env=dict(os.environ, **bus.env),
                    name="crm_fake", cwd=str(REPO))
        monitor = subprocess.Popen(["busctl", f"--address={bus.address}", "--json=short", "monitor",
                                    "--match", f"type='signal',interface='{INTERFACE}'"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            proc.wait_output("ready", timeout=60)
            yield Env(bus, proc, monitor)
        finally:
            monitor.terminate()
            monitor.wait(5)
            proc.terminate()


def members(iface):
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
    live = ET.fromstring(env.busctl("introspect", "--xml-interface", BUS_NAME, OBJECT_PATH).stdout)
    contract = ET.parse(REPO / "dbus" / "org.hadaemon.Crm1.xml").getroot()
    path = f"interface[@name='{INTERFACE}']"
    assert members(live.find(path)) == members(contract.find(path))
    # argument names too: they are the documentation busctl shows
    names = {m.get("name"): [a.get("name") for a in m.findall("arg") if a.get("direction", "in") == "in"]
             for m in contract.find(path).findall("method")}
    live_names = {m.get("name"): [a.get("name") for a in m.findall("arg") if a.get("direction", "in") == "in"]
                  for m in live.find(path).findall("method")}
    assert live_names == names


def test_properties(env):
    props = json.loads(env.busctl("--json=short", "call", BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties",
                                  "GetAll", "s", INTERFACE).stdout)["data"][0]
    assert props["LocalNode"]["data"] == "admin1" and props["DC"]["data"] == "admin1"
    assert props["HaveQuorum"]["data"] is True
    assert props["CibEpoch"]["data"].count(":") == 2
    status = json.loads(props["Status"]["data"])
    assert status["nodes"]["admin2"]["state"] == "online"
    assert next(r for r in status["resources"] if r["id"] == "webserver")["members"] == ["web_ip", "web_fs"]


def test_busctl_migrate_resource_moves_the_group_and_clear_brings_it_back(env):
    assert env.where("webserver") == ["admin1"]
    before = env.busctl("get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "CibEpoch").stdout.split()[1].strip('"')
    cp = env.busctl("call", BUS_NAME, OBJECT_PATH, INTERFACE, "MigrateResource", "ss", "webserver", "admin2")
    epoch = cp.stdout.split()[1].strip('"')
    assert int(epoch.split(":")[1]) == int(before.split(":")[1]) + 1
    assert env.where("webserver") == ["admin2"]
    cib = ET.fromstring(json.loads(env.busctl("--json=short", "call", BUS_NAME, OBJECT_PATH, INTERFACE,
                                              "GetCib").stdout)["data"][0])
    loc = cib.find(".//rsc_location[@id='cli-prefer-webserver']")
    assert loc.get("node") == "admin2" and loc.get("score") == "INFINITY"
    # the signals of that change
    seen = env.read_signals(lambda s: ("ResourceStateChanged", ["web_fs", "admin2", "Started"]) in s
                            and any(m == "TransitionEnded" for m, _ in s))
    assert ("CibChanged", [epoch]) in seen
    assert ("ResourceStateChanged", ["web_ip", "admin1", "Stopped"]) in seen
    assert any(m == "TransitionStarted" for m, _ in seen)
    env.call("ClearResource", "ss", "webserver", "")
    assert env.where("webserver") == ["admin1"]
    assert "cli-prefer" not in env.call("GetCib").stdout


def test_standby_online_ban_disable_enable_cleanup(env):
    env.call("StandbyNode", "s", "admin2")
    assert env.status()["nodes"]["admin2"]["state"] == "standby" and env.where("mysql") == ["admin1"]
    env.call("OnlineNode", "s", "admin2")
    assert env.where("mysql") == ["admin2"]
    env.call("BanResource", "sss", "mysql", "admin2", "PT1H")
    assert "cli-ban-mysql-on-admin2-lifetime" in env.call("GetCib").stdout
    assert env.where("mysql") == ["admin1"]
    env.call("ClearResource", "ss", "mysql", "admin2")
    assert env.where("mysql") == ["admin2"]
    env.call("MigrateResourceFor", "sss", "mysql", "admin1", "PT10M")
    assert "cli-prefer-lifetime-end-mysql" in env.call("GetCib").stdout and env.where("mysql") == ["admin1"]
    env.call("ClearResource", "ss", "mysql", "")
    env.call("MigrateResource", "ss", "mysql", "")  # away from where it runs, as crm_resource --move does
    assert "cli-ban-mysql-on-admin2" in env.call("GetCib").stdout and env.where("mysql") == ["admin1"]
    env.call("ClearResource", "ss", "mysql", "")
    env.call("DisableResource", "s", "mysql")
    mysql = next(r for r in env.status()["resources"] if r["id"] == "mysql")
    assert mysql["nodes"] == [] and mysql["target_role"] == "Stopped"
    env.call("EnableResource", "s", "mysql")
    assert env.where("mysql") == ["admin2"]
    env.call("SetMaintenance", "sb", "", "true")
    assert "maintenance-mode" in env.call("GetCib").stdout
    env.call("SetMaintenance", "sb", "", "false")
    env.call("CleanupResource", "ss", "webserver", "admin1")
    assert env.where("webserver") == ["admin1"]  # re-probed and started again by the next transition


def test_resources_groups_and_constraints(env):
    env.call("CreatePrimitive", "ssssa{ss}a{ss}aa{ss}s", "web_site", "ocf", "heartbeat", "Dummy",
             "1", "fake", "x", "0", "1", "2", "name", "monitor", "interval", "10s", "webserver")
    assert env.where("web_site") == ["admin1"]
    env.call("UpdateResource", "sa{ss}a{ss}", "web_site", "1", "fake", "y", "0")
    assert 'name="fake" value="y"' in env.call("GetCib").stdout.replace('\\"', '"')
    cp = env.call("AddLocation", "ssss", "", "mysql", "admin1", "INFINITY")
    cid = cp.stdout.split()[1].strip('"')
    assert cid == "location-mysql-admin1-INFINITY" and env.where("mysql") == ["admin1"]
    env.call("DeleteConstraint", "s", cid)
    assert env.where("mysql") == ["admin2"]
    env.call("AddColocation", "ssss", "apart", "mysql", "webserver", "-INFINITY")
    env.call("AddOrder", "ssss", "", "mysql", "webserver", "Optional")
    env.call("DeleteConstraint", "s", "apart")
    env.call("CreatePrimitive", "ssssa{ss}a{ss}aa{ss}s", "cron", "lsb", "", "cron", "0", "0", "0", "")
    env.call("CreateGroup", "sas", "tools", "1", "cron")
    env.call("RemoveFromGroup", "ss", "webserver", "web_site")
    env.call("AddToGroup", "ssss", "tools", "web_site", "cron", "")
    tools = next(r for r in env.status()["resources"] if r["id"] == "tools")
    assert tools["members"] == ["web_site", "cron"]
    env.call("DeleteGroup", "s", "tools")
    env.call("DeleteResource", "s", "web_site")
    env.call("DeleteResource", "s", "cron")
    ids = [r["id"] for r in env.status()["resources"]]
    assert "web_site" not in ids and "tools" not in ids


@pytest.mark.parametrize("args,error,words", [
    (("MigrateResource", "ss", "nosuch", "admin2"), "UnknownResource", "no resource 'nosuch'"),
    (("MigrateResource", "ss", "webserver", "admin9"), "UnknownNode", "no node 'admin9'"),
    (("MigrateResource", "ss", "webserver", "admin1"), "Conflict", "already active on admin1"),
    (("MigrateResource", "ss", "", "admin2"), "InvalidArgument", "resource must be"),
    (("MigrateResourceFor", "sss", "webserver", "admin2", "soon"), "InvalidArgument", "invalid lifetime"),
    (("StandbyNode", "s", "nosuch"), "UnknownNode", "no node"),
    (("AddLocation", "ssss", "", "mysql", "admin1", "lots"), "InvalidArgument", "invalid score"),
    (("DeleteConstraint", "s", "nosuch"), "UnknownConstraint", "no constraint"),
    (("CreatePrimitive", "ssssa{ss}a{ss}aa{ss}s", "x", "ocf", "", "Dummy", "0", "0", "0", ""),
     "InvalidArgument", "needs a provider"),
    (("ReplaceCib", "s", "<cib><configuration>"), "InvalidArgument", "invalid XML"),
    (("ReplaceCib", "s", (REPO / "tests" / "unit" / "data" / "heartbeat21_cib.xml").read_text()), "InvalidArgument",
     "this is a Heartbeat 2.x CIB (<attributes> wrappers around nvpairs (line 6)); convert it first with "
     "`hactl cib upgrade"),
    (("ReplaceCib", "s", "<cib><configuration><resources><primitive id='x'/></resources></configuration></cib>"),
     "InvalidArgument", "needs a 'class' attribute"),
])
def test_bad_arguments_get_a_dbus_error_with_a_message(env, args, error, words):
    cp = env.call(*args, check=False)
    assert cp.returncode != 0
    assert words in cp.stderr, cp.stderr
    # busctl prints only the message; the error name is checked with dbus-send
    argv = ["dbus-send", f"--bus={env.bus.address}", "--print-reply", f"--dest={BUS_NAME}", OBJECT_PATH,
            f"{INTERFACE}.{args[0]}"]
    types = {"s": "string", "b": "boolean"}
    if all(c in types for c in args[1]):
        argv += [f"{types[c]}:{v}" for c, v in zip(args[1], args[2:])]
        ds = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert f"org.hadaemon.Crm1.Error.{error}" in ds.stderr, ds.stderr
    assert env.proc.alive()
    assert "Traceback" not in env.proc.output()  # a refused request is an answer, not a daemon error


def test_move_without_node_needs_one_active_node(env):
    env.call("DisableResource", "s", "mysql")
    try:
        cp = env.call("MigrateResource", "ss", "mysql", "", check=False)
        assert cp.returncode != 0 and "'mysql' is active on 0 nodes: give the node to move it to" in cp.stderr
    finally:
        env.call("EnableResource", "s", "mysql")
    assert env.where("mysql") == ["admin2"]


def test_replace_cib_replaces_the_configuration(env):
    cib = ET.fromstring(env.call("GetCib").stdout.split(" ", 1)[1].strip()[1:-1].encode().decode("unicode_escape"))
    cib.find(".//rsc_location[@id='web-prefers-admin1']").set("score", "-100")
    cp = env.call("ReplaceCib", "s", ET.tostring(cib, encoding="unicode"))
    assert cp.stdout.startswith('s "')
    assert env.where("webserver") == ["admin2"]
    cib.find(".//rsc_location[@id='web-prefers-admin1']").set("score", "100")
    env.call("ReplaceCib", "s", ET.tostring(cib, encoding="unicode"))
    assert env.where("webserver") == ["admin1"]


def _as_user(env, gid_extra=None):
    groups = ["--clear-groups"] if gid_extra is None else [f"--groups={gid_extra}"]
    return ["setpriv", "--reuid=65534", "--regid=65534", *groups]


def test_policy_everyone_reads_status_only_root_and_haclient_change(env):
    nobody = _as_user(env) + ["busctl", f"--address={env.bus.address}"]
    cp = subprocess.run(nobody + ["get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "DC"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and cp.stdout.strip() == 's "admin1"', cp.stderr
    for member, sig, args in (("MigrateResource", "ss", ["webserver", "admin2"]), ("GetCib", "", [])):
        cp = subprocess.run(nobody + ["call", BUS_NAME, OBJECT_PATH, INTERFACE, member, *([sig] if sig else []),
                                      *args], capture_output=True, text=True, timeout=30)
        assert cp.returncode != 0 and "denied" in cp.stderr.lower(), cp.stderr
    assert env.where("webserver") == ["admin1"]
    haclient = grp.getgrnam("haclient").gr_gid
    member = _as_user(env, haclient) + ["busctl", f"--address={env.bus.address}"]
    cp = subprocess.run(member + ["call", BUS_NAME, OBJECT_PATH, INTERFACE, "StandbyNode", "s", "admin2"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    env.call("OnlineNode", "s", "admin2")


def test_policy_only_root_owns_the_name(env):
    def request_name(prefix):
        return subprocess.run(prefix + ["dbus-send", f"--bus={env.bus.address}", "--print-reply",
                                        "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus.RequestName", f"string:{BUS_NAME}", "uint32:4"],
                              capture_output=True, text=True, timeout=30)

    root = request_name([])
    assert root.returncode == 0 and root.stdout.split()[-2:] == ["uint32", "3"], root.stdout + root.stderr
    haclient = grp.getgrnam("haclient").gr_gid
    for user in (_as_user(env), _as_user(env, haclient)):
        cp = request_name(user)
        assert cp.returncode != 0 and "not allowed to own" in cp.stderr, cp.stderr
