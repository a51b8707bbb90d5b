"""org.hadaemon.Crm1 exported by the real ha-crmd on the namespace cluster (heartbeat + crmd per node, real
Dummy agents): the contract XML, busctl MigrateResource moving a group, D-Bus errors that leave the daemon
running, and hactl (status with both daemons, resource move/clear, node standby/online) from either node."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.testing.crm import CrmCluster
from hadaemon.testing.netns import Cluster
from hadaemon.testing.scenario import cib_xml, primitive

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NODES = ["n1", "n2"]
INTERFACE = "org.hadaemon.Crm1"


def runfile(rel: str):
    """A file under the node's /run (ocf:pacemaker:Dummy's Dummy-RSC.state)."""
    return lambda view: (view.rundir / rel).exists()


def signatures(iface):
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


def test_crm1_on_the_real_daemon():
    group = ('<group id="web">' + primitive("a", "ocf", "Dummy", "pacemaker", monitor="10s")
             + primitive("b", "ocf", "Dummy", "pacemaker", monitor="10s") + "</group>")
    with Cluster(NODES) as c:
        with CrmCluster(c, cib_xml(NODES, group, '<rsc_location id="web-pref" rsc="web" node="n1" score="100"/>'),
                        keepalive="200ms", deadtime="3", fencing=False) as crm:
            with crm.observer({"a": runfile("Dummy-a.state"), "b": runfile("Dummy-b.state")}) as obs:
                crm.start_all()
                obs.wait("b", ["n1"], 60)
                crm.wait_idle(crm.dc("n1"))

                live = ET.fromstring(crm.busctl("n2", "introspect", "--xml-interface", INTERFACE,
                                                "/org/hadaemon/Crm1").stdout)
                contract = ET.parse(REPO / "dbus" / "org.hadaemon.Crm1.xml").getroot()
                path = f"interface[@name='{INTERFACE}']"
                assert signatures(live.find(path)) == signatures(contract.find(path))

                st = crm.hactl("n2", "status")
                assert st.returncode == 0, st.stderr
                assert "  * Online: [ n1 n2 (local) ]" in st.stdout, st.stdout
                assert "    * b\t(ocf:pacemaker:Dummy):\t Started n1" in st.stdout, st.stdout
                assert "Membership:" in st.stdout and "Not available" not in st.stdout, st.stdout

                # the example, on the node that is not the DC as well as on the DC
                cp = crm.busctl("n2", "call", INTERFACE, "/org/hadaemon/Crm1", INTERFACE, "MigrateResource", "ss",
                                "web", "n2")
                assert cp.returncode == 0 and cp.stdout.startswith('s "'), cp.stderr
                obs.wait("a", ["n2"], 60)
                obs.wait("b", ["n2"], 60)
                for node in NODES:
                    cp = crm.busctl(node, "call", INTERFACE, "/org/hadaemon/Crm1", INTERFACE, "MigrateResource",
                                    "ss", "nosuch", "n1", check=False)
                    assert cp.returncode != 0 and "no resource 'nosuch'" in cp.stderr, cp.stderr
                    assert crm.crmd[node].alive()

                cp = crm.hactl("n1", "resource", "clear", "web")
                assert cp.returncode == 0, cp.stderr
                obs.wait("b", ["n1"], 60)
                cp = crm.hactl("n2", "node", "standby", "n1")
                assert cp.returncode == 0, cp.stderr
                obs.wait("b", ["n2"], 60)
                crm.wait_idle(crm.dc("n1"))
                status = json.loads(crm.hactl("n1", "status", "--json").stdout)
                assert status["crm"]["nodes"]["n1"]["state"] == "standby"
                assert crm.hactl("n2", "node", "online", "n1").returncode == 0
                obs.wait("b", ["n1"], 60)
            assert not obs.dual_active(), obs.describe()
