"""Pure CIB edits (hadaemon.core.cib.edit): what crm_resource / crm_attribute / cibadmin write, checked by
loading the result with parse_cib and scheduling it; a few also through Pacemaker's crm_simulate."""
import copy
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.core.cib import parse_cib
from hadaemon.core.cib import edit as E
from hadaemon.core.cib.dates import format_time, parse_datetime, parse_duration
from hadaemon.core.errors import BadRequest, ConfigError
from hadaemon.core.policy import schedule

DATA = Path(__file__).parent / "data" / "crm_two_groups.xml"
NOW = 1796521107  # 2026-12-06 01:38:27Z


@pytest.fixture
def cib():
    return ET.fromstring(DATA.read_text())


def text(cib) -> str:
    return ET.tostring(cib, encoding="unicode")


def placement(cib) -> dict:
    return schedule(parse_cib(text(cib)), NOW).placement


def cons(cib) -> dict:
    return {c.get("id"): c for c in cib.find("configuration/constraints")}


def refused(kind, fn, cib, *args, **kw):
    before = text(cib)
    with pytest.raises(BadRequest) as info:
        fn(cib, *args, **kw)
    assert info.value.kind == kind, info.value
    assert text(cib) == before, "a refused edit must leave the CIB as it was"
    return str(info.value)


def test_sample_places_each_group_on_its_preferred_node(cib):
    p = placement(cib)
    assert p["web_ip"] == p["web_fs"] == "admin1"
    assert p["db_ip"] == p["db_server"] == "admin2"


def test_move_adds_cli_prefer_like_crm_resource_and_the_group_moves(cib):
    E.move(cib, "webserver", "admin2", NOW)
    c = cons(cib)["cli-prefer-webserver"]
    assert c.tag == "rsc_location"
    assert c.attrib == {"id": "cli-prefer-webserver", "rsc": "webserver", "role": "Started", "node": "admin2",
                        "score": "INFINITY"}
    p = placement(cib)
    assert p["web_ip"] == p["web_fs"] == "admin2"
    # a second move replaces the preference (one cli-prefer per resource) and drops a ban on the target
    E.ban(cib, "webserver", "admin1", NOW)
    E.move(cib, "webserver", "admin1", NOW)
    assert [k for k in cons(cib) if k.startswith("cli-")] == ["cli-prefer-webserver"]
    assert cons(cib)["cli-prefer-webserver"].get("node") == "admin1"
    assert placement(cib)["web_ip"] == "admin1"


def test_move_with_lifetime_writes_a_rule_with_a_date_expression(cib):
    E.move(cib, "webserver", "admin2", NOW, lifetime="PT1H")
    c = cons(cib)["cli-prefer-webserver"]
    assert c.get("node") is None and c.get("score") is None
    rule = c.find("rule")
    assert rule.attrib == {"id": "cli-prefer-rule-webserver", "score": "INFINITY", "boolean-op": "and"}
    expr, date = list(rule)
    assert expr.attrib == {"id": "cli-prefer-expr-webserver", "attribute": "#uname", "operation": "eq",
                           "value": "admin2", "type": "string"}
    assert date.tag == "date_expression"
    assert date.get("id") == "cli-prefer-lifetime-end-webserver" and date.get("operation") == "lt"
    assert parse_datetime(date.get("end")) == NOW + 3600
    # it loads, and the preference holds until the end of the lifetime
    assert placement(cib)["web_ip"] == "admin2"
    assert schedule(parse_cib(text(cib)), NOW + 3601).placement["web_ip"] == "admin1"
    # clear finds the node inside the rule
    assert E.clear(cib, "webserver", "admin2") == 1
    assert "cli-prefer-webserver" not in cons(cib)


@pytest.mark.parametrize("args,kind,words", [
    (("nosuch", "admin2"), "UnknownResource", "no resource 'nosuch'"),
    (("webserver", "admin9"), "UnknownNode", "no node 'admin9'"),
    (("web_ip", "admin2"), "InvalidArgument", "member of group 'webserver'"),
])
def test_move_refuses_bad_arguments_with_a_message(cib, args, kind, words):
    assert words in refused(kind, E.move, cib, *args, NOW)


def test_move_refuses_a_bad_lifetime_and_a_move_to_where_it_runs(cib):
    assert "ISO 8601" in refused("InvalidArgument", E.move, cib, "webserver", "admin2", NOW, lifetime="1 hour")
    msg = refused("Conflict", E.move, cib, "webserver", "admin1", NOW, running_on=["admin1"])
    assert "already active on admin1" in msg


def test_ban_and_clear(cib):
    E.ban(cib, "webserver", "admin1", NOW)
    c = cons(cib)["cli-ban-webserver-on-admin1"]
    assert c.attrib == {"id": "cli-ban-webserver-on-admin1", "rsc": "webserver", "role": "Started",
                        "node": "admin1", "score": "-INFINITY"}
    assert placement(cib)["web_ip"] == "admin2"
    E.ban(cib, "webserver", "admin2", NOW, lifetime="P1D")
    ban2 = cons(cib)["cli-ban-webserver-on-admin2"]
    assert ban2.find("rule/date_expression").get("id") == "cli-ban-webserver-on-admin2-lifetime"
    assert parse_datetime(ban2.find("rule/date_expression").get("end")) == NOW + 86400
    assert E.clear(cib, "webserver", "admin1") == 1
    assert set(cons(cib)) == {"web-prefers-admin1", "db-prefers-admin2", "cli-ban-webserver-on-admin2"}
    assert E.clear(cib, "webserver") == 1
    assert E.clear(cib, "webserver") == 0  # nothing left: not an error, as crm_resource --clear
    assert set(cons(cib)) == {"web-prefers-admin1", "db-prefers-admin2"}


def test_standby_and_online_and_node_maintenance(cib):
    E.set_standby(cib, "admin1", True)
    node = cib.find("configuration/nodes/node[@uname='admin1']")
    nv = node.find("instance_attributes/nvpair[@name='standby']")
    assert nv.get("value") == "on" and nv.get("id")
    p = placement(cib)
    assert p["web_ip"] == p["db_ip"] == "admin2"
    E.set_standby(cib, "admin1", False)
    assert len(node.findall("instance_attributes/nvpair[@name='standby']")) == 1
    assert placement(cib)["web_ip"] == "admin1"
    E.set_maintenance(cib, "admin2", True)
    assert cib.find("configuration/nodes/node[@uname='admin2']/instance_attributes/nvpair"
                    "[@name='maintenance']").get("value") == "true"
    parse_cib(text(cib))
    assert "no node 'nosuch'" in refused("UnknownNode", E.set_standby, cib, "nosuch", True)


def test_cluster_maintenance_mode_is_one_cluster_option(cib):
    E.set_maintenance(cib, "", True)
    E.set_maintenance(cib, "", True)
    pairs = cib.findall("configuration/crm_config/cluster_property_set/nvpair[@name='maintenance-mode']")
    assert [p.get("value") for p in pairs] == ["true"]
    assert parse_cib(text(cib)).option("maintenance-mode") == "true"
    E.set_maintenance(cib, "", False)
    assert parse_cib(text(cib)).option("maintenance-mode") == "false"


def test_disable_and_enable_a_group_through_target_role(cib):
    E.set_meta(cib, "web_ip", "target-role", "Started")
    E.set_target_role(cib, "webserver", "Stopped")
    g = cib.find("configuration/resources/group[@id='webserver']")
    assert g.find("meta_attributes/nvpair[@name='target-role']").get("value") == "Stopped"
    assert g.find("primitive[@id='web_ip']/meta_attributes/nvpair[@name='target-role']") is None
    p = placement(cib)
    assert p["web_ip"] is None and p["web_fs"] is None and p["db_ip"] == "admin2"
    E.set_target_role(cib, "webserver", "started")
    assert g.find("meta_attributes/nvpair[@name='target-role']").get("value") == "Started"
    assert placement(cib)["web_ip"] == "admin1"
    assert "invalid role" in refused("InvalidArgument", E.set_target_role, cib, "webserver", "Running")
    E.set_managed(cib, "mysql", False)
    assert cib.find(".//group[@id='mysql']/meta_attributes/nvpair[@name='is-managed']").get("value") == "false"


def test_create_update_delete_primitive(cib):
    E.create_primitive(cib, "web_site", "ocf", "heartbeat", "Dummy", {"state": "/run/x"},
                       {"resource-stickiness": "10"}, [{"name": "monitor", "interval": "15s", "timeout": "30s"}],
                       group="webserver")
    parsed = parse_cib(text(cib))
    prim = parsed.find("web_site")
    assert prim.parent == "webserver" and prim.agent == "ocf:heartbeat:Dummy"
    assert prim.instance_sets[0].pairs == (("state", "/run/x"),)
    assert [(o.name, o.interval_ms) for o in prim.ops] == [("monitor", 15000)]
    assert placement(cib)["web_site"] == "admin1"
    E.update_resource(cib, "web_site", {"state": "/run/y", "fake": "1"}, {"resource-stickiness": ""})
    prim = parse_cib(text(cib)).find("web_site")
    assert dict(prim.instance_sets[0].pairs) == {"state": "/run/y", "fake": "1"}
    assert all(not s.pairs for s in prim.meta_sets)
    E.add_colocation(cib, "", "web_site", "mysql", "INFINITY")
    E.delete_resource(cib, "web_site")
    assert parse_cib(text(cib)).find("web_site") is None
    assert not [c for c in cons(cib).values() if c.get("rsc") == "web_site"]


@pytest.mark.parametrize("args,kind,words", [
    (("web_ip", "ocf", "heartbeat", "Dummy"), "Conflict", "already used"),
    (("1bad", "ocf", "heartbeat", "Dummy"), "InvalidArgument", "not a valid id"),
    (("x", "ocf", "", "Dummy"), "InvalidArgument", "needs a provider"),
    (("x", "nosuch", "", "Dummy"), "InvalidArgument", "unknown resource class"),
    (("x", "lsb", "heartbeat", "apache2"), "InvalidArgument", "only class ocf takes a provider"),
])
def test_create_primitive_refuses(cib, args, kind, words):
    assert words in refused(kind, E.create_primitive, cib, *args)


def test_create_primitive_refuses_a_bad_operation(cib):
    msg = refused("InvalidArgument", E.create_primitive, cib, "x", "ocf", "heartbeat", "Dummy",
                  ops=[{"name": "monitor", "interval": "ten seconds"}])
    assert "invalid interval" in msg


def test_groups_create_add_remove_delete(cib):
    E.create_primitive(cib, "a", "ocf", "heartbeat", "Dummy")
    E.create_primitive(cib, "b", "lsb", "", "cron")
    E.create_group(cib, "g", ["b", "a"])
    g = cib.find(".//group[@id='g']")
    assert [m.get("id") for m in g] == ["b", "a"]
    E.group_add(cib, "g", "web_fs", before="a")
    assert [m.get("id") for m in g] == ["b", "web_fs", "a"]
    assert [m.get("id") for m in cib.find(".//group[@id='webserver']")] == ["web_ip"]
    parse_cib(text(cib))
    E.group_remove(cib, "g", "b")
    assert cib.find("configuration/resources/primitive[@id='b']") is not None
    E.add_location(cib, "g-loc", "g", "admin2", "50")
    removed = E.delete_group(cib, "g")
    assert removed == ["g-loc"]
    top = [r.get("id") for r in cib.find("configuration/resources")]
    assert "g" not in top and {"a", "web_fs", "b"} <= set(top)
    parse_cib(text(cib))
    # removing the last member of a group removes the group and its constraints
    E.group_remove(cib, "webserver", "web_ip")
    assert cib.find(".//group[@id='webserver']") is None
    assert "web-prefers-admin1" not in cons(cib)
    parse_cib(text(cib))
    assert "needs at least one member" in refused("InvalidArgument", E.create_group, cib, "g2", [])
    assert "not a member" in refused("InvalidArgument", E.group_remove, cib, "mysql", "a")


def test_constraints_add_and_delete(cib):
    cid = E.add_location(cib, "", "mysql", "admin1", "inf")
    assert cid == "location-mysql-admin1-INFINITY" and cons(cib)[cid].get("score") == "INFINITY"
    assert placement(cib)["db_ip"] == "admin1"
    E.delete_constraint(cib, cid)
    cid = E.add_colocation(cib, "", "mysql", "webserver", "-INFINITY")
    assert cons(cib)[cid].attrib == {"id": cid, "rsc": "mysql", "with-rsc": "webserver", "score": "-INFINITY"}
    oid = E.add_order(cib, "web-after-db", "mysql", "webserver", "Optional")
    assert cons(cib)[oid].attrib == {"id": "web-after-db", "first": "mysql", "then": "webserver", "kind": "Optional"}
    parsed = parse_cib(text(cib))
    assert [o.id for o in parsed.orders] == ["web-after-db"] and parsed.colocations[0].score < 0
    assert E.add_location(cib, "", "mysql", "admin1", "5") == "location-mysql-admin1-5"
    assert E.add_location(cib, "", "mysql", "admin1", "5") == "location-mysql-admin1-5-1"  # ids stay unique
    assert "already used" in refused("Conflict", E.add_order, cib, "web-after-db", "mysql", "webserver")
    assert "invalid score" in refused("InvalidArgument", E.add_location, cib, "", "mysql", "admin1", "lots")
    assert "no resource" in refused("UnknownResource", E.add_colocation, cib, "", "mysql", "nosuch", "10")
    assert "itself" in refused("InvalidArgument", E.add_order, cib, "", "mysql", "mysql")
    assert "invalid order kind" in refused("InvalidArgument", E.add_order, cib, "", "mysql", "webserver", "Always")
    assert "no constraint" in refused("UnknownConstraint", E.delete_constraint, cib, "nosuch")


def test_cleanup_forgets_history_and_failcounts(cib):
    assert E.cleanup(cib, "webserver", "admin1") == 2
    st = cib.find("status/node_state[@uname='admin1']")
    ids = [lr.get("id") for lr in st.iter("lrm_resource")]
    assert ids == ["db_ip"]
    names = [nv.get("name") for nv in st.iter("nvpair")]
    assert not [n for n in names if "web_fs" in n]
    assert E.cleanup(cib, "db_ip") == 2  # every node
    parse_cib(text(cib))
    assert "no resource" in refused("UnknownResource", E.cleanup, cib, "nosuch")


def test_refused_on_a_document_that_is_not_a_cib():
    with pytest.raises(BadRequest) as info:
        E.set_standby(ET.fromstring("<configuration/>"), "admin1", True)
    assert info.value.kind == "InvalidArgument"


def test_dates_and_durations():
    assert parse_duration("PT1H30M") == (0, 5400) and parse_duration("P1Y2M") == (14, 0)
    assert parse_duration("P2W") == (0, 14 * 86400) and parse_duration("1h") is None
    assert parse_duration("P") is None and parse_duration("PT") is None
    assert format_time(NOW) == "2026-12-06 01:38:27Z"
    assert parse_datetime("2026-12-06 01:38:27Z") == NOW
    assert parse_datetime("2026-12-05T20:38:27-05:00") == NOW
    assert parse_datetime("2026-02-30") is None and parse_datetime("tomorrow") is None


# --- Pacemaker accepts what we write and places it the same way ------------------------------------
def _summary(out: str):
    if "Transition Summary:" not in out:
        return None
    part = out.split("Transition Summary:", 1)[1].split("Executing Cluster Transition:", 1)[0]
    return sorted(re.sub(r"\s+", " ", ln.strip()) for ln in part.splitlines()
                  if ln.strip().startswith("*"))


EDITS = {
    "move": lambda c: E.move(c, "webserver", "admin2", NOW),
    "move-lifetime": lambda c: E.move(c, "webserver", "admin2", NOW, lifetime="PT10M"),
    "ban-lifetime-expired": lambda c: E.ban(c, "mysql", "admin2", NOW - 7200, lifetime="PT1H"),
    "ban": lambda c: E.ban(c, "mysql", "admin2", NOW),
    "standby": lambda c: E.set_standby(c, "admin2", True),
    "disable": lambda c: E.set_target_role(c, "mysql", "Stopped"),
    "create-in-group": lambda c: E.create_primitive(c, "web_site", "ocf", "heartbeat", "Dummy", group="webserver"),
    "colocation-apart": lambda c: (E.move(c, "mysql", "admin1", NOW),
                                   E.add_colocation(c, "", "webserver", "mysql", "-INFINITY")),
    "cleanup": lambda c: E.cleanup(c, "webserver"),
}


@pytest.mark.crm_simulate
@pytest.mark.parametrize("name", sorted(EDITS))
def test_crm_simulate_accepts_the_edited_cib_and_agrees(cib, tmp_path, name):
    assert shutil.which("crm_simulate")
    edited = copy.deepcopy(cib)
    EDITS[name](edited)
    path = tmp_path / f"{name}.xml"
    path.write_text(text(edited))
    ref = subprocess.run(["crm_simulate", "-x", str(path), "-S", "-t", format_time(NOW)], capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr[-1000:]
    expected = _summary(ref.stdout)
    assert expected is not None, ref.stdout[-1000:]
    t = schedule(parse_cib(text(edited)), NOW)
    ours = sorted(re.sub(r"\s+", " ", ln.strip()) for ln in t.summary)
    assert ours == expected
    assert expected or name in ("cleanup", "ban-lifetime-expired"), "the edit changes what runs where"


def test_group_add_refusals_leave_the_cib_alone(cib):
    assert "no member 'x'" in refused("UnknownResource", E.group_add, cib, "newgroup", "web_ip", before="x")
    assert "only primitives" in refused("InvalidArgument", E.group_add, cib, "newgroup", "mysql")
    assert "already used" in refused("Conflict", E.group_add, cib, "web_fs", "db_ip")


@pytest.mark.parametrize("date,words", [
    ('operation="lt" end="soon"', "has an invalid end 'soon'"),
    ('operation="lt"', "(lt) needs 'end'"),
    ('operation="gt" end="2026-01-01"', "(gt) needs 'start'"),
    ('operation="date_spec"', "(date_spec) needs a <date_spec>"),
    ('operation="yesterday"', "has operation 'yesterday'"),
])
def test_the_loader_refuses_bad_date_expressions_on_their_line(cib, date, words):
    E.move(cib, "webserver", "admin2", NOW, lifetime="PT1H")
    xml = text(cib)
    old = re.search(r'<date_expression [^>]*/>', xml).group(0)
    xml = xml.replace(old, f'<date_expression id="d" {date}/>')
    line = next(i for i, s in enumerate(xml.splitlines(), 1) if "<date_expression" in s)
    with pytest.raises(ConfigError) as e:
        parse_cib(xml, "cib.xml")
    assert e.value.line == line and words in e.value.message


def test_values_that_xml_cannot_hold_are_refused(cib):
    msg = refused("InvalidArgument", E.create_primitive, cib, "x", "ocf", "heartbeat", "Dummy", {"state": "a\x01b"})
    assert "control characters" in msg
    assert "control characters" in refused("InvalidArgument", E.update_resource, cib, "web_ip", {"ip": "\x00"})
    E.update_resource(cib, "web_ip", {"note": "two\nlines\tand tab"})
    parse_cib(text(cib))
