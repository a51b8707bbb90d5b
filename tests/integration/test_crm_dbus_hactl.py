"""hactl status / resource / group / constraint / node / cib against org.hadaemon.Crm1 on a private bus
(the stand-in backend of tests/integration/crm_fake.py: real edits and scheduler, in-memory CIB)."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.testing.dbus import PrivateBus
from hadaemon.testing.procs import Proc

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
CIB = REPO / "tests" / "unit" / "data" / "crm_two_groups.xml"


@pytest.fixture
def crm(tmp_path):
    """A fresh stand-in ha-crmd per test (the tests change the CIB)."""
    with PrivateBus() as bus:
        proc = Proc([sys.executable, "-m", "tests.integration.crm_fake", "--cib", str(CIB), "--node", "admin1",
                     "--members", "admin1,admin2"], tmp_path / "crm_fake.log", env=dict(os.environ, **bus.env),
                    name="crm_fake", cwd=str(REPO))
        try:
            proc.wait_output("ready", timeout=60)
            yield bus
        finally:
            proc.terminate()


def hactl(bus, *args, check=True):
    env = dict(os.environ, **bus.env)
    env.pop("NO_COLOR", None)
    cp = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", *args], capture_output=True, text=True,
                        env=env, timeout=60, cwd=str(REPO))
    if check:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def where(bus, rsc):
    data = json.loads(hactl(bus, "status", "--json").stdout)
    return next(r for r in data["crm"]["resources"] if r["id"] == rsc)["nodes"]


def test_status_like_crm_mon_plain_when_piped_and_says_what_is_missing(crm):
    cp = hactl(crm, "status")
    out = cp.stdout
    assert "\033[" not in out  # piped: no colour
    assert "  * Current DC: admin1 - partition with quorum" in out
    assert "  * Online: [ admin1 (local) admin2 ]" in out
    assert "  * Resource Group: webserver:" in out
    assert "    * web_ip\t(ocf:heartbeat:Dummy):\t Started admin1" in out
    assert "    * db_server\t(ocf:heartbeat:Dummy):\t Started admin2" in out
    assert "    * web_fs: fail-count=1" in out
    assert "Not available: ha-heartbeat is not on the bus" in out
    assert "hactl status: ha-heartbeat is not on the bus" in cp.stderr
    coloured = hactl(crm, "status", "--color", "always").stdout
    assert "\033[32mStarted admin1\033[0m" in coloured
    data = json.loads(hactl(crm, "status", "--json").stdout)
    assert data["heartbeat"] is None and data["crm"]["dc"] == "admin1"
    assert len(data["errors"]) == 1 and data["errors"][0].startswith("ha-heartbeat is not on the bus")


def test_status_without_any_daemon():
    with PrivateBus() as bus:
        cp = hactl(bus, "status", check=False)
    assert cp.returncode == 1
    assert "ha-crmd is not running (org.hadaemon.Crm1 is not on the bus)" in cp.stderr
    assert "ha-heartbeat is not on the bus" in cp.stderr


def test_resource_move_clear_ban_enable_disable_cleanup_show(crm):
    cp = hactl(crm, "resource", "move", "webserver", "admin2")
    assert cp.stdout.startswith("webserver moves to admin2 (until 'hactl resource clear webserver') (CIB 0:13:0)")
    assert where(crm, "webserver") == ["admin2"]
    assert "cli-prefer-webserver: location webserver admin2 INFINITY" in hactl(crm, "constraint", "list").stdout
    hactl(crm, "resource", "clear", "webserver")
    assert where(crm, "webserver") == ["admin1"]
    hactl(crm, "resource", "ban", "mysql", "admin2")
    assert where(crm, "mysql") == ["admin1"]
    hactl(crm, "resource", "clear", "mysql", "admin2")
    out = hactl(crm, "resource", "move", "mysql", "admin1", "--lifetime", "PT5M").stdout
    assert out.startswith("mysql moves to admin1 for PT5M")
    assert "cli-prefer-mysql: location mysql rule INFINITY if #uname eq admin1 and date lt " in \
        hactl(crm, "constraint", "list").stdout
    assert where(crm, "mysql") == ["admin1"]
    hactl(crm, "resource", "clear", "mysql")
    assert hactl(crm, "resource", "move", "mysql").stdout.startswith("mysql moves away from where it ran")
    assert where(crm, "mysql") == ["admin1"]
    hactl(crm, "resource", "clear", "mysql")
    hactl(crm, "resource", "disable", "mysql")
    assert where(crm, "mysql") == []
    assert "(disabled)" in hactl(crm, "status").stdout
    hactl(crm, "resource", "enable", "mysql")
    assert where(crm, "mysql") == ["admin2"]
    hactl(crm, "resource", "unmanage", "webserver")
    assert "Started admin1 (unmanaged)" in hactl(crm, "status").stdout
    hactl(crm, "resource", "manage", "webserver")
    assert "fail-count" in hactl(crm, "status").stdout
    assert hactl(crm, "resource", "cleanup", "web_fs").stdout.startswith("web_fs cleaned up on every node")
    assert "fail-count" not in hactl(crm, "status").stdout
    show = hactl(crm, "resource", "show").stdout.splitlines()
    assert "webserver (group): Started admin1" in show and "  web_ip (primitive, ocf:heartbeat:Dummy): Started admin1" in show
    one = hactl(crm, "resource", "show", "web_ip").stdout
    assert one.startswith("web_ip: primitive, Started on admin1") and '<op id="web_ip-monitor-10s"' in one


@pytest.mark.parametrize("args,rc,words", [
    (("resource", "move", "nosuch", "admin2"), 1, "hactl resource move: no resource 'nosuch' (resources: "),
    (("resource", "move", "webserver", "admin9"), 1, "hactl resource move: no node 'admin9'"),
    (("resource", "move", "webserver", "admin2", "--lifetime", "1h"), 1, "invalid lifetime '1h'"),
    (("resource", "create", "x", "ocf:Dummy"), 1, "needs a provider"),
    (("resource", "create", "x", "Dummy"), 2, "is not CLASS:PROVIDER:TYPE or CLASS:TYPE"),
    (("constraint", "location", "mysql", "admin1", "much"), 1, "invalid score 'much'"),
    (("node", "standby", "admin9"), 1, "no node 'admin9'"),
    (("resource", "show", "nosuch"), 1, "no resource 'nosuch'"),
])
def test_refusals_are_one_line_and_an_exit_code(crm, args, rc, words):
    cp = hactl(crm, *args, check=False)
    assert cp.returncode == rc, cp.stderr
    assert words in cp.stderr and "Traceback" not in cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 1


def test_create_group_constraints_nodes(crm):
    hactl(crm, "resource", "create", "web_site", "ocf:heartbeat:Dummy", "fake=1", "--meta", "resource-stickiness=5",
          "--op", "monitor interval=10s timeout=20s", "--group", "webserver")
    assert where(crm, "web_site") == ["admin1"]
    hactl(crm, "resource", "update", "web_site", "fake=2", "--meta", "resource-stickiness=")
    cib = hactl(crm, "cib", "show", "--configuration").stdout
    assert '<nvpair id="web_site-instance_attributes-fake" name="fake" value="2" />' in cib
    assert "resource-stickiness" not in cib.split('id="web_site"')[1].split("</primitive>")[0]
    hactl(crm, "resource", "create", "cron", "lsb:cron")
    hactl(crm, "group", "create", "tools", "cron")
    hactl(crm, "group", "remove", "webserver", "web_site")
    hactl(crm, "group", "add", "tools", "web_site", "--before", "cron")
    tools = json.loads(hactl(crm, "status", "--json").stdout)["crm"]["resources"]
    assert next(r for r in tools if r["id"] == "tools")["members"] == ["web_site", "cron"]
    out = hactl(crm, "constraint", "location", "tools", "admin2", "INFINITY").stdout
    assert out.startswith("constraint location-tools-admin2-INFINITY added")
    assert where(crm, "tools") == ["admin2"]
    hactl(crm, "constraint", "colocation", "tools", "mysql", "-INFINITY", "--id", "tools-apart")
    hactl(crm, "constraint", "order", "mysql", "tools", "--kind", "Optional")
    listing = hactl(crm, "constraint", "list").stdout
    assert "tools-apart: colocation tools with mysql -INFINITY" in listing
    assert "order-mysql-tools-optional: order mysql then tools (Optional)" in listing
    hactl(crm, "constraint", "delete", "tools-apart")
    hactl(crm, "group", "delete", "tools")
    hactl(crm, "resource", "delete", "web_site")
    hactl(crm, "node", "standby", "admin2")
    assert "  * Standby: [ admin2 ]" in hactl(crm, "status").stdout
    hactl(crm, "node", "online", "admin2")
    hactl(crm, "node", "maintenance", "admin1", "on")
    assert "  * Maintenance: [ admin1 (local) ]" in hactl(crm, "status").stdout
    hactl(crm, "node", "maintenance", "admin1", "off")
    hactl(crm, "node", "maintenance", "--cluster", "on")
    assert "maintenance-mode" in hactl(crm, "cib", "show").stdout
    assert hactl(crm, "node", "maintenance", check=False).returncode == 2


def test_cib_export_import_round_trip(crm, tmp_path):
    out = tmp_path / "cib.xml"
    cp = hactl(crm, "cib", "export", str(out))
    assert cp.stdout.strip() == f"CIB 0:12:4 written to {out}"
    cib = ET.parse(out).getroot()
    cib.find(".//rsc_location[@id='web-prefers-admin1']").set("node", "admin2")
    new = tmp_path / "new.xml"
    ET.ElementTree(cib).write(new)
    cp = hactl(crm, "cib", "import", str(new))
    assert cp.stdout.startswith(f"configuration replaced from {new} (CIB 0:13:0)")
    assert where(crm, "webserver") == ["admin2"]
    # a CIB that does not load is refused locally with file:line
    bad = tmp_path / "bad.xml"
    bad.write_text(new.read_text().replace('rsc="mysql"', 'rsc=""', 1))
    cp = hactl(crm, "cib", "import", str(bad), check=False)
    assert cp.returncode == 2 and cp.stderr.startswith(f"{bad}:")
    # simulate replays what export wrote
    sim = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "simulate", str(out)], capture_output=True,
                         text=True, timeout=60)
    assert sim.returncode == 0 and "Started admin1" in sim.stdout


def test_hactl_without_ha_crmd_says_so():
    with PrivateBus() as bus:
        cp = hactl(bus, "resource", "move", "webserver", "admin2", check=False)
    assert cp.returncode == 3
    assert cp.stderr.strip() == "hactl resource move: ha-crmd is not running (org.hadaemon.Crm1 is not on the bus)"


def test_status_watch_redraws_on_a_change(crm):
    import signal
    import time

    env = dict(os.environ, **crm.env)
    watch = subprocess.Popen([sys.executable, "-m", "hadaemon.cli.hactl", "status", "--watch", "--interval", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    try:
        os.set_blocking(watch.stdout.fileno(), False)
        seen = []

        def read_until(text, timeout=30):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = watch.stdout.readline()
                if not line:
                    time.sleep(0.05)
                    continue
                seen.append(line)
                if text in line:
                    return True
            return False

        assert read_until("    * web_fs\t(ocf:heartbeat:Dummy):\t Started admin1"), "".join(seen)
        draws = sum(1 for ln in seen if ln.startswith("hactl status --watch"))
        hactl(crm, "resource", "move", "webserver", "admin2")
        # the change's signals wake it long before the 60 s interval
        assert read_until("    * web_fs\t(ocf:heartbeat:Dummy):\t Started admin2", timeout=20), "".join(seen)
        assert sum(1 for ln in seen if ln.startswith("hactl status --watch")) > draws
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(10) == 130


def test_status_for_everyone_changes_for_root_and_haclient_only(crm):
    import grp

    os.chmod(crm.workdir, 0o755)
    env = dict(os.environ, **crm.env)
    haclient = grp.getgrnam("haclient").gr_gid

    def as_user(groups, *args):
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", *groups, sys.executable, "-m",
                               "hadaemon.cli.hactl", *args], capture_output=True, text=True, env=env, timeout=60,
                              cwd=str(REPO))

    cp = as_user(["--clear-groups"], "status")
    assert cp.returncode == 0 and "Started admin1" in cp.stdout, cp.stderr
    cp = as_user(["--clear-groups"], "resource", "move", "webserver", "admin2")
    assert cp.returncode == 1 and cp.stderr.startswith("hactl resource move: permission denied"), cp.stderr
    cp = as_user([f"--groups={haclient}"], "resource", "move", "webserver", "admin2")
    assert cp.returncode == 0, cp.stderr
    assert where(crm, "webserver") == ["admin2"]


def _on_a_terminal(bus, *args, env_extra=None) -> str:
    """hactl's output when its stdout is a terminal (a pseudo-terminal), not a pipe."""
    import pty
    import select

    env = dict(os.environ, **bus.env, TERM="xterm", **(env_extra or {}))
    env.pop("NO_COLOR", None)
    env.update(env_extra or {})
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "hadaemon.cli.hactl", *args], stdout=slave,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
        os.close(slave)
        slave = -1
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:          # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(60) == 0, out
        return out.decode("utf-8", "replace")
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def test_status_is_coloured_on_a_terminal_unless_no_color(crm):
    """--color auto (the default): colour when stdout is a terminal; plain when piped (the first test)
    or with NO_COLOR set."""
    tty = _on_a_terminal(crm, "status")
    assert "\033[32mStarted admin1\033[0m" in tty, tty
    assert "* Current DC: admin1 - partition with quorum" in tty
    plain = _on_a_terminal(crm, "status", env_extra={"NO_COLOR": "1"})
    assert "\033[" not in plain and "Started admin1" in plain, plain
