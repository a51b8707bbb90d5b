"""fence_hadaemon against the namespace power switch: the fence-agents conventions (stdin key=value and
command-line options, exit codes, XML metadata) and a real power-off (processes killed, links down)."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.testing.netns import Cluster
from hadaemon.testing.power import PowerSwitch
from hadaemon.testing.procs import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

AGENT = Path(__file__).resolve().parents[2] / "agents" / "fence_hadaemon"


@pytest.fixture(scope="module")
def env():
    with Cluster(["node1", "node2"]) as c:
        sock = c.workdir / "power.sock"
        with PowerSwitch(sock) as sw:
            sw.add("node1", c.netns("node1"))
            sw.add("node2", c.netns("node2"))
            yield c, sw, sock


def fence(c, sock, *argv, stdin=None, node="node1"):
    """Run the agent inside node1's namespace (as node1's LRM would)."""
    return c.run(node, [sys.executable, str(AGENT), *argv], input=stdin, timeout=60)


def test_metadata_is_fence_agents_xml(env):
    c, sw, sock = env
    cp = fence(c, sock, "-o", "metadata")
    assert cp.returncode == 0, cp.stderr
    root = ET.fromstring(cp.stdout)
    assert root.tag == "resource-agent" and root.get("name") == "fence_hadaemon"
    params = {p.get("name") for p in root.iter("parameter")}
    assert {"action", "plug", "port", "nodename", "ipaddr", "ipport", "power_timeout"} <= params
    actions = {a.get("name") for a in root.iter("action")}
    assert {"on", "off", "reboot", "status", "monitor", "list", "metadata", "validate-all"} <= actions
    cp = fence(c, sock, stdin="action=metadata\n")
    assert cp.returncode == 0 and cp.stdout.startswith("<?xml")


def test_monitor_list_status(env):
    c, sw, sock = env
    cp = fence(c, sock, stdin=f"# comment\naction=monitor\nipaddr={sock}\n")
    assert cp.returncode == 0, cp.stderr
    cp = fence(c, sock, "-o", "list", "-a", str(sock))
    assert cp.returncode == 0 and cp.stdout.split() == ["node1,", "node2,"], cp.stdout + cp.stderr
    cp = fence(c, sock, stdin=f"action=status\nport=node2\nipaddr={sock}\n")
    assert cp.returncode == 0 and "ON" in cp.stdout, cp.stdout + cp.stderr


def test_bad_requests_fail_clearly(env):
    c, sw, sock = env
    cp = fence(c, sock, stdin=f"action=dance\nplug=node2\nipaddr={sock}\n")
    assert cp.returncode == 2 and "unknown action" in cp.stderr
    cp = fence(c, sock, stdin=f"action=off\nipaddr={sock}\n")
    assert cp.returncode == 2 and "needs plug" in cp.stderr
    cp = fence(c, sock, stdin=f"action=off\nplug=node9\nipaddr={sock}\n")
    assert cp.returncode == 1 and "no outlet named 'node9'" in cp.stderr
    cp = fence(c, sock, stdin="action=monitor\nipaddr=/nonexistent/power.sock\n")
    assert cp.returncode == 4 and "power switch" in cp.stderr
    cp = fence(c, sock, stdin="no equals sign\n")
    assert cp.returncode == 2
    assert sw.status("node2") == "on"


def test_off_kills_the_node_and_downs_its_links_then_on(env):
    c, sw, sock = env
    victim = c.spawn("node2", ["sleep", "600"], name="victim")
    outside = c.spawn("node1", ["sleep", "600"], name="bystander")
    told = c.spawn("node1", ["sleep", "600"], name="told")  # a node2 process living elsewhere
    sw.tell_pid("node2", told.pid)
    assert c.ping("node1", "node2")
    cp = fence(c, sock, stdin=f"action=off\nnodename=node2\nport=node2\nipaddr={sock}\n")
    assert cp.returncode == 0, cp.stderr
    wait_until(lambda: not victim.alive() and not told.alive(), 10, message="node2's processes to die")
    assert outside.alive()
    links = c.run("node2", ["ip", "-o", "link", "show", "eth0"], check=True).stdout
    assert "state DOWN" in links or ",UP" not in links, links
    assert not c.ping("node1", "node2", timeout=1)
    cp = fence(c, sock, "--action=status", f"--ip={sock}", "--plug=node2")
    assert cp.returncode == 2 and "OFF" in cp.stdout
    cp = fence(c, sock, stdin=f"action=off\nplug=node2\nipaddr={sock}\n")  # idempotent
    assert cp.returncode == 0
    cp = fence(c, sock, "-o", "on", "-n", "node2", "-a", str(sock))
    assert cp.returncode == 0, cp.stderr
    wait_until(lambda: c.ping("node1", "node2"), 20, message="node2 reachable after power on")
    assert sw.status("node2") == "on" and sw.offs("node2") == 2
    cp = fence(c, sock, stdin=f"action=reboot\nplug=node2\nipaddr={sock}\n")
    assert cp.returncode == 0 and sw.status("node2") == "on" and sw.offs("node2") == 3
