"""status_view: the status dict (Crm1.Status, hactl status) from a CIB, before and after edits."""
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.core.cib import edit as E
from hadaemon.core.cib.status_view import status_dict

DATA = Path(__file__).parent / "data" / "crm_two_groups.xml"
NOW = 1796521107


@pytest.fixture
def cib():
    return ET.fromstring(DATA.read_text())


def view(cib, **kw):
    return status_dict(ET.tostring(cib, encoding="unicode"), now=NOW, **kw)


def by_id(status):
    return {r["id"]: r for r in status["resources"]}


def test_nodes_dc_quorum_epoch_and_where_resources_run(cib):
    s = view(cib, local_node="admin2")
    assert (s["local_node"], s["dc"], s["quorum"], s["cib_epoch"]) == ("admin2", "admin1", True, "0:12:4")
    assert {n: v["state"] for n, v in s["nodes"].items()} == {"admin1": "online", "admin2": "online"}
    r = by_id(s)
    assert [x["id"] for x in s["resources"]] == ["webserver", "web_ip", "web_fs", "mysql", "db_ip", "db_server"]
    assert r["webserver"]["kind"] == "group" and r["webserver"]["members"] == ["web_ip", "web_fs"]
    assert r["webserver"]["nodes"] == ["admin1"] and r["webserver"]["role"] == "Started"
    assert r["db_server"]["nodes"] == ["admin2"] and r["db_server"]["parent"] == "mysql"
    assert (r["web_ip"]["class"], r["web_ip"]["provider"], r["web_ip"]["type"]) == ("ocf", "heartbeat", "Dummy")
    assert r["web_fs"]["failcounts"] == {"admin1": 1} and r["webserver"]["failcounts"] == {"admin1": 1}
    assert r["db_ip"]["failcounts"] == {}
    assert all(x["managed"] and x["target_role"] == "" for x in s["resources"])


def test_membership_overrides_the_recorded_node_state(cib):
    s = view(cib, members=["admin1"], dc="admin1", quorum=False)
    assert s["nodes"]["admin2"]["state"] == "offline" and s["quorum"] is False


def test_after_edits_standby_disabled_unmanaged_cleanup(cib):
    E.set_standby(cib, "admin2", True)
    E.set_target_role(cib, "mysql", "Stopped")
    E.set_managed(cib, "webserver", False)
    E.cleanup(cib, "web_fs")
    s = view(cib)
    assert s["nodes"]["admin2"]["state"] == "standby" and s["nodes"]["admin2"]["standby"] is True
    assert s["nodes"]["admin2"]["attributes"]["standby"] == "on"
    r = by_id(s)
    assert r["mysql"]["target_role"] == "Stopped"
    assert r["web_ip"]["managed"] is False and r["webserver"]["managed"] is False
    assert r["web_fs"]["failcounts"] == {} and r["web_fs"]["nodes"] == []  # history forgotten: re-probed


def test_a_failed_monitor_shows_failed(cib):
    op = cib.find(".//lrm_resource[@id='web_ip']/lrm_rsc_op[@operation='monitor']")
    op.set("rc-code", "1")
    op.set("call-id", "9")
    r = by_id(view(cib))
    assert r["web_ip"]["role"] == "Failed" and r["webserver"]["role"] == "Failed"
    assert r["web_ip"]["nodes"] == ["admin1"]


def test_history_of_a_deleted_resource_that_still_runs_is_listed(cib):
    E.delete_resource(cib, "mysql")
    s = view(cib)
    orphans = [x for x in s["resources"] if x["role"] == "Orphan"]
    assert sorted(x["id"] for x in orphans) == ["db_ip", "db_server"]
    assert all(x["nodes"] == ["admin2"] for x in orphans)


def test_a_clone_shows_every_node_its_instances_run_on(cib):
    res = cib.find("configuration/resources")
    clone = ET.SubElement(res, "clone", {"id": "ping-clone"})
    ET.SubElement(clone, "primitive", {"id": "ping", "class": "ocf", "provider": "heartbeat", "type": "Dummy"})
    for node in ("admin1", "admin2"):
        lrs = cib.find(f"status/node_state[@uname='{node}']/lrm/lrm_resources")
        lr = ET.SubElement(lrs, "lrm_resource", {"id": "ping", "class": "ocf", "provider": "heartbeat",
                                                 "type": "Dummy"})
        ET.SubElement(lr, "lrm_rsc_op", {"id": "ping_last_0", "operation": "start", "call-id": "20", "rc-code": "0",
                                         "op-status": "0", "interval": "0",
                                         "transition-key": "9:2:0:8c3ee4a6-0000-0000-0000-000000000001",
                                         "op-digest": "f2317cad3d54cec5d7d7aa7d0bf35cf8"})
    r = by_id(view(cib))["ping-clone"]
    assert r["kind"] == "clone" and r["members"] == ["ping"] and r["role"] == "Started"
    assert sorted(r["nodes"]) == ["admin1", "admin2"]
    assert (r["class"], r["provider"], r["type"]) == ("ocf", "heartbeat", "Dummy")


def test_a_promotable_clone_shows_where_it_is_promoted(cib):
    res = cib.find("configuration/resources")
    clone = ET.SubElement(res, "clone", {"id": "db-clone"})
    meta = ET.SubElement(clone, "meta_attributes", {"id": "db-clone-meta"})
    ET.SubElement(meta, "nvpair", {"id": "db-clone-promotable", "name": "promotable", "value": "true"})
    ET.SubElement(clone, "primitive", {"id": "db", "class": "ocf", "provider": "pacemaker", "type": "Stateful"})
    for call, (node, task) in enumerate((("admin1", "promote"), ("admin2", "start")), 30):
        lrs = cib.find(f"status/node_state[@uname='{node}']/lrm/lrm_resources")
        lr = ET.SubElement(lrs, "lrm_resource", {"id": "db", "class": "ocf", "provider": "pacemaker",
                                                 "type": "Stateful"})
        ET.SubElement(lr, "lrm_rsc_op", {"id": f"db_last_{node}", "operation": task, "call-id": str(call),
                                         "rc-code": "0", "op-status": "0", "interval": "0",
                                         "transition-key": f"9:2:0:8c3ee4a6-0000-0000-0000-00000000000{call - 29}",
                                         "op-digest": "f2317cad3d54cec5d7d7aa7d0bf35cf8"})
    r = by_id(view(cib))["db-clone"]
    assert sorted(r["nodes"]) == ["admin1", "admin2"] and r["promoted"] == ["admin1"]
    from hadaemon.cli.status import render
    text = render({"crm": view(cib), "heartbeat": None, "errors": []})
    assert "  * Clone Set: db-clone [db] (promotable):" in text
    assert "    * Promoted: [ admin1 ]" in text and "    * Unpromoted: [ admin2 ]" in text
