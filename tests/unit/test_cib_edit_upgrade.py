"""core/cib/upgrade: a Heartbeat 2.1 CIB converted as Pacemaker's upgrade06.xsl does, loaded by parse_cib,
accepted by crm_simulate with the same placement; bad files refused with file:line; hactl cib upgrade."""
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hadaemon.core.cib import parse_cib
from hadaemon.core.cib.upgrade import heartbeat2_reason, upgrade, upgrade_text
from hadaemon.core.cib.xmltree import parse_xml
from hadaemon.core.errors import ConfigError
from hadaemon.core.policy import schedule

DATA = Path(__file__).parent / "data"
HB21 = DATA / "heartbeat21_cib.xml"
NOW = 1796521107


@pytest.fixture(scope="module")
def up():
    return upgrade(HB21.read_text(), str(HB21))


def test_the_upgraded_cib_loads_with_the_2x_settings_renamed(up):
    cib = parse_cib(ET.tostring(up, encoding="unicode"))
    assert up.get("validate-with") == "pacemaker-1.0" and up.get("have-quorum") == "true"
    assert up.get("dc-uuid") == "7f3c1e2a-4b1d-4a9e-9a51-0c2d2b1e0a01"
    assert {k: cib.options[k] for k in ("symmetric-cluster", "no-quorum-policy", "default-resource-stickiness",
                                        "cluster-delay", "stonith-enabled")} == {
        "symmetric-cluster": "true", "no-quorum-policy": "ignore", "default-resource-stickiness": "100",
        "cluster-delay": "60s", "stonith-enabled": "false"}
    assert [(n.uname, n.type) for n in cib.nodes] == [("admin1", "member"), ("admin2", "member")]
    assert cib.nodes[1].attr_sets[0].pairs == (("standby", "off"),)
    web_ip = cib.find("web_ip")
    assert dict(web_ip.instance_sets[0].pairs) == {"ip": "192.168.18.222", "cidr_netmask": "24"}
    op = web_ip.ops[0]
    assert (op.name, op.interval_ms, op.on_fail, op.enabled) == ("monitor", 10000, "restart", True)
    httpd = cib.find("httpd")
    assert httpd.provider is None  # only ocf keeps a provider
    assert dict(httpd.meta_sets[0].pairs) == {"resource-stickiness": "200", "target-role": "started"}
    assert dict(cib.find("webserver").meta_sets[0].pairs) == {"ordered": "true", "collocated": "true"}


def test_constraints_and_status_in_the_new_names(up):
    cib = parse_cib(ET.tostring(up, encoding="unicode"))
    order = cib.orders[0]
    # from=webserver type=after to=mysql: webserver starts after mysql
    assert (order.first, order.then, order.first_action, order.then_action) == ("mysql", "webserver", "start", "start")
    coloc = cib.colocations[0]
    assert (coloc.rsc, coloc.with_rsc, coloc.score) == ("webserver", "mysql", -1000000)
    assert [r.score for loc in cib.locations for r in loc.rules] == [100, 100]  # "100.0" -> 100
    op = up.find(".//lrm_rsc_op")
    assert (op.get("call-id"), op.get("rc-code"), op.get("op-status")) == ("3", "0", "0")
    assert op.get("transition-key").startswith("4:1:0:") and op.get("call_id") is None
    assert up.get("generated") is None and up.find(".//node_state").get("crm-debug-origin") is None
    t = schedule(cib, NOW)
    assert t.current["web_ip"] == ("admin1",)
    assert t.placement["web_fs"] == "admin1" and t.placement["db_ip"] == "admin2"


def test_ids_are_made_valid_and_unique(up):
    ids = [e.get("id") for e in up.find("configuration").iter() if e.get("id") is not None]
    assert len(ids) == len(set(ids))
    node_ids = {n.get("id") for n in up.iter("node")}
    assert "0b6d5f4e-8c2a-4f1b-b3c7-5e9a8d7c6b02" in node_ids  # node ids are kept
    assert up.find(".//lrm").get("id") == "lrm.auto-7"  # other ids may not start with a digit


def test_heartbeat2_is_recognised_and_a_pacemaker_cib_is_not():
    assert "<attributes>" in heartbeat2_reason(parse_xml(HB21.read_text(), "x"))
    assert heartbeat2_reason(parse_xml((DATA / "crm_two_groups.xml").read_text(), "x")) is None
    old_names = ('<cib><configuration><crm_config><cluster_property_set id="o">'
                 '<nvpair id="n" name="stonith_enabled" value="false"/></cluster_property_set></crm_config>'
                 '</configuration></cib>')
    assert "stonith_enabled" in heartbeat2_reason(parse_xml(old_names, "x"))


ORDER = '<rsc_order id="web_after_db" from="webserver" type="after" to="mysql"/>'


@pytest.mark.parametrize("old,new,words", [
    (ORDER, '<rsc_order id="web_after_db" type="after" to="mysql"/>', "rsc_order 'web_after_db' needs 'from' and 'to'"),
    (ORDER, '<rsc_order id="web_after_db" from="webserver" type="sometime" to="mysql"/>',
     "rsc_order 'web_after_db' has type 'sometime' (before or after)"),
    ('<nvpair id="web_ip_cidr" name="cidr_netmask" value="24"/>', '<nvpair id="web_ip_cidr" value="24"/>',
     "<nvpair> has no name"),
    ('<primitive id="db_ip" class="ocf" type="IPaddr2" provider="heartbeat">',
     '<primitive id="db_ip" class="ocf" type="IPaddr2">',
     "after the upgrade: primitive 'db_ip' of class ocf needs a 'provider' attribute"),
])
def test_bad_files_are_refused_with_the_input_line(old, new, words):
    text = HB21.read_text()
    assert old in text
    text = text.replace(old, new)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if new in s)
    with pytest.raises(ConfigError) as e:
        upgrade(text, "cib-2.1.xml")
    assert str(e.value) == f"cib-2.1.xml:{line}: {words}"


def test_not_xml_and_not_a_cib():
    with pytest.raises(ConfigError) as e:
        upgrade("<cib>\n<configuration>\n</cib>", "x.xml")
    assert e.value.line == 3 and "invalid XML" in e.value.message
    with pytest.raises(ConfigError) as e:
        upgrade("<resources/>", "x.xml")
    assert "expected <cib>" in e.value.message


def hactl(*args, **kw):
    return subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", *args], capture_output=True, text=True,
                          timeout=60, **kw)


def test_hactl_cib_upgrade_prints_or_writes_the_result(tmp_path):
    cp = hactl("cib", "upgrade", str(HB21))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("<?xml") and ET.fromstring(cp.stdout.split("\n", 1)[1]).tag == "cib"
    assert cp.stdout == upgrade_text(HB21.read_text(), str(HB21))
    out = tmp_path / "new.xml"
    cp = hactl("cib", "upgrade", str(HB21), "-o", str(out))
    assert cp.returncode == 0 and out.read_text() == upgrade_text(HB21.read_text(), str(HB21))
    cp = hactl("verify", str(out))
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_hactl_cib_upgrade_and_import_refuse_bad_files(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(HB21.read_text().replace(ORDER, '<rsc_order id="web_after_db" from="webserver"/>'))
    line = next(i for i, s in enumerate(bad.read_text().splitlines(), 1) if 'id="web_after_db"' in s)
    cp = hactl("cib", "upgrade", str(bad))
    assert cp.returncode == 2 and cp.stdout == ""
    assert cp.stderr.strip() == f"{bad}:{line}: rsc_order 'web_after_db' needs 'from' and 'to'"
    cp = hactl("cib", "upgrade", str(tmp_path / "missing.xml"))
    assert cp.returncode == 2 and "cannot read" in cp.stderr
    # import names the upgrade command (refused before asking the cluster)
    cp = hactl("cib", "import", str(HB21), env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent", "PATH": "/usr/bin"})
    assert cp.returncode == 2
    assert "Heartbeat 2.x CIB" in cp.stderr and f"hactl cib upgrade {HB21}" in cp.stderr


@pytest.mark.crm_simulate
def test_crm_simulate_places_the_upgraded_cib_as_we_do(tmp_path):
    assert shutil.which("crm_simulate")
    path = tmp_path / "up.xml"
    path.write_text(upgrade_text(HB21.read_text(), str(HB21)))
    ref = subprocess.run(["crm_simulate", "-x", str(path), "-S"], capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr[-800:]
    part = ref.stdout.split("Transition Summary:", 1)[1].split("Executing Cluster Transition:", 1)[0]
    expected = sorted(" ".join(ln.split()) for ln in part.splitlines() if ln.strip().startswith("*"))
    ours = sorted(" ".join(ln.split()) for ln in schedule(parse_cib(path.read_text()), NOW).summary)
    ours = [ln.replace(" due to resource definition change", "") for ln in ours]
    assert ours == expected and len(expected) == 5


def test_a_current_cib_is_kept_except_for_node_type_normal():
    text = (DATA / "crm_two_groups.xml").read_text().replace('<node id="admin1" uname="admin1"/>',
                                                             '<node id="admin1" uname="admin1" type="normal"/>')
    out = upgrade(text, "current.xml")
    assert out.find(".//node[@id='admin1']").get("type") == "member"
    assert out.get("validate-with") == "pacemaker-3.0" and out.get("epoch") == "12"
    original = ET.fromstring(text)
    assert [e.tag for e in out.iter()] == [e.tag for e in original.iter()]
    assert [dict(e.attrib) for e in out.iter("nvpair")] == [dict(e.attrib) for e in original.iter("nvpair")]


def test_hactl_verify_and_simulate_refuse_a_heartbeat2_cib_naming_the_upgrade(tmp_path):
    # never silently misread: the 2.x <attributes> wrappers would hide stonith-enabled=false and every parameter
    line = next(i for i, s in enumerate(HB21.read_text().splitlines(), 1) if "<attributes>" in s)
    for cmd, rc in (("verify", 1), ("simulate", 2)):
        cp = hactl(cmd, str(HB21))
        assert cp.returncode == rc, cp.stdout + cp.stderr
        assert cp.stderr.startswith(f"{HB21}:{line}: error: this is a Heartbeat 2.x CIB")
        assert f"hactl cib upgrade {HB21}" in cp.stderr
    out = tmp_path / "new.xml"
    assert hactl("cib", "upgrade", str(HB21), "-o", str(out)).returncode == 0
    cp = hactl("simulate", str(out))
    assert cp.returncode == 0 and "Transition Summary" in cp.stdout, cp.stderr
