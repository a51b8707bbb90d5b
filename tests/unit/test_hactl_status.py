"""hactl status rendering (crm_mon-like) from a status dict, colour only when asked; argument parsing helpers."""
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.cli import constraint, resource
from hadaemon.cli.hactl import build_parser, main
from hadaemon.cli.status import render
from hadaemon.core.cib import edit as E
from hadaemon.core.cib.status_view import status_dict

DATA = Path(__file__).parent / "data" / "crm_two_groups.xml"


def status(edit=None, **kw):
    cib = ET.fromstring(DATA.read_text())
    if edit:
        edit(cib)
    return status_dict(ET.tostring(cib, encoding="unicode"), now=1796521107, local_node="admin1", **kw)


HB = {"LocalNode": "admin1", "Generation": 3, "Epoch": 7, "Members": ["admin1", "admin2"],
      "Nodes": {"admin1": ["up", {"eth0": "up", "eth1": "up"}], "admin2": ["up", {"eth0": "up", "eth1": "dead"}]},
      "DropCounters": {"auth": 2, "replay": 0}}


def test_render_everything_plain():
    text = render({"crm": status(), "heartbeat": HB, "errors": []})
    assert "\033[" not in text
    lines = text.splitlines()
    assert lines[:7] == ["Cluster Summary:", "  * Current DC: admin1 - partition with quorum", "  * CIB version: 0:12:4",
                         "  * Last transition: 0 (idle)", "  * 2 nodes configured", "  * 4 resource instances configured",
                         ""]
    assert "  * Online: [ admin1 (local) admin2 ]" in lines
    i = lines.index("Full List of Resources:")
    assert lines[i + 1:i + 7] == [
        "  * Resource Group: webserver:", "    * web_ip\t(ocf:heartbeat:Dummy):\t Started admin1",
        "    * web_fs\t(ocf:heartbeat:Dummy):\t Started admin1", "  * Resource Group: mysql:",
        "    * db_ip\t(ocf:heartbeat:Dummy):\t Started admin2", "    * db_server\t(ocf:heartbeat:Dummy):\t Started admin2"]
    assert "Failure counts:" in lines and "    * web_fs: fail-count=1" in lines
    j = lines.index("Membership:")
    assert lines[j + 1] == "  * Local node: admin1 (generation 3), membership epoch 7: admin1 admin2"
    assert lines[j + 3].split() == ["NODE", "STATE", "LINK", "eth0", "LINK", "eth1"]
    assert lines[j + 5].split() == ["admin2", "up", "up", "dead"]
    assert lines[-1] == "Dropped packets: 2 (auth 2)"


def test_render_states_disabled_standby_unmanaged_no_dc():
    def edit(cib):
        E.set_standby(cib, "admin2", True)
        E.set_target_role(cib, "mysql", "Stopped")
        E.set_managed(cib, "webserver", False)
    text = render({"crm": status(edit, dc="", quorum=False), "heartbeat": None,
                   "errors": ["ha-heartbeat is not on the bus"]})
    assert "  * Current DC: NONE" in text
    assert "  * Standby: [ admin2 ]" in text
    assert "  * Resource Group: mysql (disabled):" in text
    assert "    * db_ip\t(ocf:heartbeat:Dummy):\t Started admin2 (disabled)" in text  # until it is stopped
    assert "    * web_ip\t(ocf:heartbeat:Dummy):\t Started admin1 (unmanaged)" in text
    assert text.splitlines()[-1] == "Not available: ha-heartbeat is not on the bus"


def test_colour_marks_states():
    def edit(cib):
        op = cib.find(".//lrm_resource[@id='web_ip']/lrm_rsc_op[@operation='monitor']")
        op.set("rc-code", "1")
        op.set("call-id", "9")
    text = render({"crm": status(edit, members=["admin1"]), "heartbeat": HB, "errors": []}, colour=True)
    assert "\033[31mFailed admin1\033[0m" in text
    assert "\033[31mOFFLINE\033[0m: [ admin2 ]" in text
    assert "\033[32mStarted admin1\033[0m" in text


def test_agent_and_operation_arguments():
    assert resource.parse_agent("ocf:heartbeat:IPaddr2") == ("ocf", "heartbeat", "IPaddr2")
    assert resource.parse_agent("lsb:apache2") == ("lsb", "", "apache2")
    assert resource.parse_op("monitor interval=10s timeout=20s") == {"name": "monitor", "interval": "10s",
                                                                     "timeout": "20s"}
    for bad in ("apache2", "ocf::IPaddr2", "a:b:c:d"):
        with pytest.raises(SystemExit) as e:
            resource.parse_agent(bad)
        assert e.value.code == 2


def test_constraint_lines():
    cib = ET.fromstring(DATA.read_text())
    E.move(cib, "webserver", "admin2", 1796521107, lifetime="PT1H")
    E.add_order(cib, "o1", "mysql", "webserver")
    lines = [constraint.describe(c) for c in cib.find("configuration/constraints")]
    assert lines == ["web-prefers-admin1: location webserver admin1 100", "db-prefers-admin2: location mysql admin2 100",
                     "cli-prefer-webserver: location webserver rule INFINITY if #uname eq admin2 and date lt "
                     "2026-12-06 02:38:27Z", "o1: order mysql then webserver (Mandatory)"]


def test_every_subcommand_parses_and_version(capsys):
    parser = build_parser()
    for argv in (["status", "--json"], ["resource", "move", "r", "n", "--lifetime", "PT1H"], ["group", "create", "g", "a"],
                 ["constraint", "order", "a", "b", "--kind", "Optional"], ["node", "maintenance", "--cluster", "off"],
                 ["cib", "upgrade", "f.xml", "-o", "g.xml"], ["simulate", "f.xml"], ["verify", "f.xml"]):
        assert callable(parser.parse_args(argv)._run)
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("hactl (hadaemon) ")
    assert main(["constraint", "location", "a", "n", "-INFINITY", "--timeout", "0.1"]) in (1, 3)
