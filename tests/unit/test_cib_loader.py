"""Loading CIB XML: the model, old and new option names, and `file:line: message` errors."""
from __future__ import annotations

import pytest

from hadaemon.core.cib import Group, Primitive, load_cib, parse_cib, parse_interval_ms
from hadaemon.core.errors import ConfigError

CIB = """<cib have-quorum="1" dc-uuid="1" admin_epoch="0" epoch="1" num_updates="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="o1" name="stonith-enabled" value="false"/>
        <nvpair id="o2" name="no-quorum-policy" value="ignore"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="admin1"><instance_attributes id="n1"><nvpair id="n1a" name="ssd" value="yes"/></instance_attributes></node>
      <node id="2" uname="admin2"/>
    </nodes>
    <resources>
      <group id="webserver">
        <meta_attributes id="w-meta"><nvpair id="w-m1" name="resource-stickiness" value="100"/></meta_attributes>
        <primitive id="webip" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="ip-i"><nvpair id="ip-i1" name="ip" value="192.168.18.222"/></instance_attributes>
          <operations><op id="ip-mon" name="monitor" interval="10s" timeout="20s" on-fail="restart"/></operations>
        </primitive>
        <primitive id="httpd" class="lsb" type="httpd"/>
      </group>
      <primitive id="fence1" class="stonith" type="fence_ipmilan"/>
    </resources>
    <constraints>
      <rsc_location id="web-pref" rsc="webserver" node="admin1" score="INFINITY"/>
      <rsc_location id="web-rule" rsc="webserver">
        <rule id="r1" score="-INFINITY" boolean-op="or">
          <expression id="e1" attribute="ssd" operation="not_defined"/>
          <expression id="e2" attribute="#uname" operation="eq" value="admin9"/>
        </rule>
      </rsc_location>
      <rsc_colocation id="col" rsc="fence1" with-rsc="webserver" score="-100"/>
      <rsc_order id="ord" first="fence1" then="webserver" kind="Optional"/>
    </constraints>
  </configuration>
  <status>
    <node_state id="1" uname="admin1" in_ccm="true" crmd="online" join="member" expected="member">
      <lrm id="lrm1"><lrm_resources>
        <lrm_resource id="webip" class="ocf" provider="heartbeat" type="IPaddr2">
          <lrm_rsc_op id="webip_start_0" operation="start" interval="0" call-id="3" rc-code="0" op-status="0"
                      transition-key="1:2:0:abc" op-digest="d"/>
        </lrm_resource>
      </lrm_resources></lrm>
    </node_state>
  </status>
</cib>
"""


def test_model():
    cib = parse_cib(CIB, "cib.xml")
    assert cib.option("fencing-enabled") == "false"  # the 3.0 name finds the 2.x one
    assert cib.option("no-quorum-policy") == "ignore"
    assert cib.have_quorum and cib.dc_uuid == "1"
    assert [n.uname for n in cib.nodes] == ["admin1", "admin2"]
    web = cib.resources[0]
    assert isinstance(web, Group) and [m.id for m in web.members] == ["webip", "httpd"]
    ip = web.members[0]
    assert isinstance(ip, Primitive) and ip.agent == "ocf:heartbeat:IPaddr2" and ip.parent == "webserver"
    assert ip.ops[0].interval_ms == 10000 and ip.ops[0].on_fail == "restart"
    assert web.members[1].agent == "lsb:httpd"
    assert cib.find("httpd") is web.members[1] and cib.find("nope") is None
    assert set(cib.primitives()) == {"webip", "httpd", "fence1"}
    assert cib.locations[0].score == 1000000 and cib.locations[1].rules[0].score == -1000000
    assert cib.colocations[0].score == -100 and cib.orders[0].kind == "Optional"
    state = cib.node_states[0]
    assert state.uname == "admin1" and state.lrm[0].ops[0].call_id == 3


def test_fencing_enabled_new_name():
    xml = CIB.replace('name="stonith-enabled"', 'name="fencing-enabled"')
    assert parse_cib(xml, "c.xml").option("fencing-enabled") == "false"


@pytest.mark.parametrize("tag", ["bundle"])
def test_unsupported_resource_names_element_and_line(tag):
    xml = CIB.replace('<primitive id="fence1" class="stonith" type="fence_ipmilan"/>',
                      f'<{tag} id="c1">\n<primitive id="x" class="ocf" provider="p" type="t"/></{tag}>')
    with pytest.raises(ConfigError) as err:
        parse_cib(xml, "cib.xml")
    assert str(err.value).startswith("cib.xml:22: ") and f"<{tag}>" in str(err.value)


def test_clone_loads_with_its_primitive():
    xml = CIB.replace('<primitive id="fence1" class="stonith" type="fence_ipmilan"/>',
                      '<primitive id="fence1" class="stonith" type="fence_ipmilan"/>'
                      '<clone id="ping-clone"><meta_attributes id="pc-m">'
                      '<nvpair id="pc-m1" name="clone-max" value="2"/></meta_attributes>'
                      '<primitive id="ping" class="ocf" provider="pacemaker" type="ping"/></clone>')
    cib = parse_cib(xml, "c.xml")
    clone = cib.find("ping-clone")
    assert clone.child.id == "ping" and not clone.promotable
    assert cib.find("ping") is clone.child and "ping" in cib.primitives()


@pytest.mark.parametrize("tag,meta", [
    ("clone", '<meta_attributes id="m"><nvpair id="m1" name="promotable" value="true"/></meta_attributes>'),
    ("master", ""),
])
def test_promotable_and_master_load(tag, meta):
    xml = CIB.replace('<primitive id="fence1" class="stonith" type="fence_ipmilan"/>',
                      '<primitive id="fence1" class="stonith" type="fence_ipmilan"/>'
                      f'<{tag} id="ms">{meta}<primitive id="p" class="ocf" provider="heartbeat" type="Stateful"/>'
                      f'</{tag}>')
    ms = parse_cib(xml, "c.xml").find("ms")
    assert ms.promotable and ms.child.id == "p"


def test_promotable_cloned_group_loads():
    xml = CIB.replace('<primitive id="fence1" class="stonith" type="fence_ipmilan"/>',
                      '<primitive id="fence1" class="stonith" type="fence_ipmilan"/><clone id="ms">'
                      '<meta_attributes id="m"><nvpair id="m1" name="promotable" value="true"/></meta_attributes>'
                      '<group id="g"><primitive id="p" class="ocf" provider="heartbeat" type="Stateful"/></group>'
                      '</clone>')
    ms = parse_cib(xml, "c.xml").find("ms")
    assert ms.promotable and ms.child.id == "g"


@pytest.mark.parametrize("inner,message", [
    ('', "has nothing to clone"),
])
def test_clone_refusals_name_the_line(inner, message):
    """(promotable clones and <master> load: see test_promotable_and_master_load)"""
    xml = CIB.replace('<primitive id="fence1" class="stonith" type="fence_ipmilan"/>',
                      f'<clone id="c1">\n{inner}</clone>')
    with pytest.raises(ConfigError) as err:
        parse_cib(xml, "cib.xml")
    assert str(err.value).startswith("cib.xml:22: ") and message in str(err.value)


def test_rsc_ticket_and_ticket_state_load():
    xml = CIB.replace('<rsc_order id="ord" first="fence1" then="webserver" kind="Optional"/>',
                      '<rsc_ticket id="t" rsc="webip" ticket="tk" loss-policy="fence" rsc-role="Started"/>')
    xml = xml.replace('</status>', '<tickets><ticket_state id="tk" granted="true" standby="false"/>'
                                   '</tickets></status>')
    cib = parse_cib(xml, "cib.xml")
    assert [(t.rsc, t.ticket, t.loss_policy, t.role) for t in cib.rsc_tickets] == \
        [("webip", "tk", "fence", "Started")]
    assert cib.tickets["tk"].granted and not cib.tickets["tk"].standby
    bad = xml.replace('loss-policy="fence"', 'loss-policy="explode"')
    with pytest.raises(ConfigError, match=r"cib.xml:33: rsc_ticket 't' has loss-policy 'explode'"):
        parse_cib(bad, "cib.xml")


def test_resource_sets_expand_to_pairs():
    xml = CIB.replace('<rsc_order id="ord" first="fence1" then="webserver" kind="Optional"/>',
                      '<rsc_order id="ord"><resource_set id="s1"><resource_ref id="fence1"/>'
                      '<resource_ref id="webip"/></resource_set><resource_set id="s2" sequential="false">'
                      '<resource_ref id="webserver"/></resource_set></rsc_order>'
                      '<rsc_colocation id="col" score="INFINITY"><resource_set id="s3"><resource_ref id="webip"/>'
                      '<resource_ref id="webserver"/></resource_set></rsc_colocation>')
    cib = parse_cib(xml, "cib.xml")
    assert [(o.first, o.then) for o in cib.orders] == [("fence1", "webip"), ("webip", "webserver")]
    assert ("webserver", "webip") in [(c.rsc, c.with_rsc) for c in cib.colocations]


def test_bad_xml_gives_line():
    with pytest.raises(ConfigError) as err:
        parse_cib("<cib>\n<configuration>\n</cib>", "bad.xml")
    assert str(err.value).startswith("bad.xml:3: invalid XML")


def test_bad_score_and_missing_attribute():
    xml = CIB.replace('score="-100"', 'score="lots"')
    with pytest.raises(ConfigError, match=r"cib.xml:32: .*invalid score 'lots'"):
        parse_cib(xml, "cib.xml")
    xml = CIB.replace('<primitive id="httpd" class="lsb" type="httpd"/>', '<primitive id="httpd" class="lsb"/>')
    with pytest.raises(ConfigError, match=r"cib.xml:20: <primitive> needs a 'type'"):
        parse_cib(xml, "cib.xml")


def test_wrong_root_and_duplicate_resource():
    with pytest.raises(ConfigError, match="expected <cib>"):
        parse_cib("<configuration/>", "x.xml")
    xml = CIB.replace('id="fence1" class="stonith"', 'id="httpd" class="stonith"')
    with pytest.raises(ConfigError, match="'httpd' is used twice"):
        parse_cib(xml, "cib.xml")


def test_load_cib_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_cib(str(tmp_path / "nope.xml"))
    p = tmp_path / "c.xml"
    p.write_text(CIB)
    assert load_cib(str(p)).path == str(p)


@pytest.mark.parametrize("text,ms", [("10s", 10000), ("10", 10000), ("500ms", 500), ("2m", 120000),
                                     ("1h", 3600000), ("PT10S", 10000), ("0", 0), (None, 0), ("x1", None)])
def test_interval(text, ms):
    assert parse_interval_ms(text) == ms


def test_id_refs_for_sets_and_rules():
    xml = CIB.replace('<primitive id="httpd" class="lsb" type="httpd"/>',
                      '<primitive id="httpd" class="lsb" type="httpd"><meta_attributes id-ref="w-meta"/></primitive>')
    xml = xml.replace('<rsc_order id="ord" first="fence1" then="webserver" kind="Optional"/>',
                      '<rsc_location id="ref" rsc="fence1"><rule id-ref="r1"/></rsc_location>')
    cib = parse_cib(xml, "cib.xml")
    httpd = cib.resources[0].members[1]
    assert httpd.meta_sets[0].pairs == (("resource-stickiness", "100"),)
    assert cib.locations[-1].rules[0].score == -1000000
    bad = CIB.replace('<primitive id="httpd" class="lsb" type="httpd"/>',
                      '<primitive id="httpd" class="lsb" type="httpd"><meta_attributes id-ref="nope"/></primitive>')
    with pytest.raises(ConfigError, match=r"cib.xml:20: <meta_attributes> refers to id 'nope'"):
        parse_cib(bad, "cib.xml")
