"""hactl verify: every check, its line and its message; the CLI's exit codes and agent meta-data."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hadaemon.cli import hactl
from hadaemon.core.cib.verify import ERROR, WARNING, AgentInfo, parse_agent_metadata, verify_text

CIB = """<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        {crm}
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2"/>
      {nodes}
    </nodes>
    <resources>
      <primitive id="r1" class="ocf" provider="heartbeat" type="Dummy"/>
      <group id="g1">
        <primitive id="g1a" class="ocf" provider="pacemaker" type="Dummy"/>
      </group>
      {resources}
    </resources>
    <constraints>
      {constraints}
    </constraints>
  </configuration>
  <status/>
</cib>
"""


def cib(crm="", nodes="", resources="", constraints=""):
    return CIB.format(crm=crm, nodes=nodes, resources=resources, constraints=constraints)


def line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def only(text, agents=None, severity=ERROR):
    found = [f for f in verify_text(text, agents) if f.severity == severity]
    assert len(found) == 1, found
    return found[0]


def test_clean_document_has_no_findings():
    assert verify_text(cib()) == []


def test_xml_syntax_error_names_the_line():
    text = cib(resources='<primitive id="x" class="ocf" provider="heartbeat" type="Dummy">')
    f = only(text)
    assert "XML syntax error: mismatched tag" in f.message
    assert f.line == line_of(text, "</resources>")


def test_not_a_cib():
    assert "expected <cib>" in only("<foo/>").message


def test_missing_configuration_sections():
    f = verify_text("<cib>\n<configuration>\n<nodes/>\n</configuration>\n</cib>")
    msgs = [x.message for x in f]
    assert "<configuration> has no <resources> section" in msgs
    assert "<configuration> has no <constraints> section" in msgs


def test_duplicate_id():
    text = cib(resources='<primitive id="g1a" class="ocf" provider="heartbeat" type="Dummy"/>')
    f = only(text)
    assert f.line == line_of(text, 'id="g1a" class="ocf" provider="heartbeat"')
    first = line_of(text, 'provider="pacemaker"')
    assert f.message == f"duplicate id 'g1a' (<primitive>), first used by <primitive> on line {first}"


def test_dangling_id_ref():
    text = cib(resources='<primitive id="x" class="ocf" provider="heartbeat" type="Dummy">'
                         '<meta_attributes id-ref="nope"/></primitive>')
    assert only(text).message == "<meta_attributes> id-ref 'nope' refers to no element"


@pytest.mark.parametrize("cons,message", [
    ('<rsc_location id="l1" rsc="ghost" node="node1" score="10"/>',
     "<rsc_location> 'l1' rsc='ghost' refers to no resource, template or tag"),
    ('<rsc_location id="l1" rsc="r1" node="node9" score="10"/>',
     "<rsc_location> 'l1' node='node9' refers to no node defined in <nodes>"),
    ('<rsc_colocation id="c1" rsc="r1" with-rsc="ghost" score="INFINITY"/>',
     "<rsc_colocation> 'c1' with-rsc='ghost' refers to no resource, template or tag"),
    ('<rsc_colocation id="c1" rsc="opts" with-rsc="r1" score="INFINITY"/>',
     "<rsc_colocation> 'c1' rsc='opts' refers to a <cluster_property_set>, not a resource, template or tag"),
    ('<rsc_order id="o1" first="ghost" then="g1"/>', "<rsc_order> 'o1' first='ghost' refers to no resource, template or tag"),
    ('<rsc_order id="o1" first="r1"/>', "<rsc_order> 'o1' has no then attribute"),
])
def test_dangling_references(cons, message):
    text = cib(constraints=cons)
    f = only(text)
    assert f.message == message
    assert f.line == line_of(text, "<rsc_")


@pytest.mark.parametrize("value", ["abc", "1.5", "INF", "infinity", "+-5", ""])
def test_invalid_scores(value):
    text = cib(constraints=f'<rsc_location id="l1" rsc="r1" node="node1" score="{value}"/>')
    assert only(text).message == (f"invalid score '{value}' in 'l1': expected an integer, INFINITY,"
                                  " +INFINITY or -INFINITY")


@pytest.mark.parametrize("value", ["0", "-5", "+7", "INFINITY", "+INFINITY", "-INFINITY"])
def test_valid_scores(value):
    assert verify_text(cib(constraints=f'<rsc_colocation id="c" rsc="r1" with-rsc="g1" score="{value}"/>')) == []


def test_invalid_stickiness_and_rule_score():
    text = cib(resources='<primitive id="x" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="m">'
                         '<nvpair id="m1" name="resource-stickiness" value="lots"/></meta_attributes></primitive>',
               constraints='<rsc_location id="l1" rsc="r1"><rule id="ru" score="high">'
                           '<expression id="e" attribute="#uname" operation="eq" value="node1"/></rule></rsc_location>')
    msgs = [f.message for f in verify_text(text)]
    assert msgs == ["invalid score 'lots' in resource-stickiness of 'x': expected an integer, INFINITY, +INFINITY"
                    " or -INFINITY",
                    "invalid score 'high' in rule 'ru': expected an integer, INFINITY, +INFINITY or -INFINITY"]


@pytest.mark.parametrize("rsc,message", [
    ('<primitive id="x" class="heartbeat" type="Dummy"/>',
     "primitive 'x' has unknown class 'heartbeat': expected one of lsb, ocf, service, stonith, systemd"),
    ('<primitive id="x" class="ocf" type="Dummy"/>',
     "primitive 'x' of class ocf has no provider (e.g. heartbeat, pacemaker)"),
    ('<primitive id="x" class="ocf" provider="heartbeat"/>', "primitive 'x' has no type"),
    ('<primitive id="x" type="Dummy"/>', "primitive 'x' has no class (ocf, lsb, systemd, service or stonith)"),
])
def test_resource_class_provider_type(rsc, message):
    assert only(cib(resources=rsc)).message == message


def test_uninstalled_agent_is_a_warning():
    agents = {("ocf", "heartbeat", "Dummy"): AgentInfo(False)}
    f = only(cib(), agents, severity=WARNING)
    assert f.message == "primitive 'r1': resource agent ocf:heartbeat:Dummy is not installed on this machine"
    assert [x for x in verify_text(cib(), agents) if x.severity == ERROR] == []


def test_missing_required_parameter_and_unknown_parameter():
    agents = {("ocf", "heartbeat", "IPaddr2"): AgentInfo(True, {"ip": True, "cidr_netmask": False})}
    text = cib(resources='<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">'
                         '<instance_attributes id="vip-ia"><nvpair id="vip-n" name="netmask" value="24"/>'
                         '</instance_attributes></primitive>')
    f = only(text, agents)
    assert f.message == "primitive 'vip' lacks parameter 'ip', required by ocf:heartbeat:IPaddr2"
    assert only(text, agents, WARNING).message == "primitive 'vip': ocf:heartbeat:IPaddr2 has no parameter 'netmask'"
    good = text.replace('name="netmask"', 'name="ip"')
    assert verify_text(good, agents) == []


@pytest.mark.parametrize("snippet,tag,where", [
    ('<bundle id="b"/>', "bundle", "resources"),
])
def test_unsupported_elements_are_named_errors(snippet, tag, where):
    text = cib(**{where: snippet})
    f = only(text)
    assert f.message.startswith(f"<{tag}> is not supported: ")
    assert f.line == line_of(text, f"<{tag} ")


def test_template_reference_is_accepted():
    text = cib(resources='<template id="t" class="ocf" provider="heartbeat" type="Dummy"/>'
                         '<primitive id="x" template="t"/>')
    assert [f for f in verify_text(text) if f.severity == ERROR] == []


def test_constraint_shapes():
    text = cib(constraints='<rsc_location id="l1" rsc="r1"/>\n'
                           '<rsc_location id="l2" rsc="r1" node="node1"/>\n'
                           '<rsc_colocation id="c1" rsc="r1" with-rsc="g1"/>\n'
                           '<rsc_order id="o1" first="r1" then="g1" kind="Sometimes" first-action="begin"/>\n'
                           '<rsc_order id="o2" first="r1" then="g1" symmetrical="maybe"/>\n'
                           '<rsc_colocation id="c2" rsc="r1" with-rsc="r1" score="5"/>\n'
                           '<rsc_bogus id="x"/>')
    msgs = [(f.severity, f.message) for f in verify_text(text)]
    assert msgs == [
        (ERROR, "<rsc_location> 'l1' has neither node and score nor a <rule>"),
        (ERROR, "<rsc_location> 'l2' names a node but has no score"),
        (ERROR, "<rsc_colocation> 'c1' has no score"),
        (ERROR, "invalid first-action 'begin' in 'o1': expected one of demote, promote, start, stop"),
        (ERROR, "invalid kind 'Sometimes' in 'o1': expected Mandatory, Optional or Serialize"),
        (ERROR, "invalid boolean 'maybe' for symmetrical in 'o2': expected true or false"),
        (WARNING, "<rsc_colocation> 'c2' colocates 'r1' with itself; it has no effect"),
        (ERROR, "unknown element <rsc_bogus> in <constraints>: expected rsc_location, rsc_colocation, rsc_order"
                " or rsc_ticket"),
    ]


def test_rule_expressions():
    text = cib(constraints='<rsc_location id="l1" rsc="r1"><rule id="ru" score="10" boolean-op="xor">'
                           '<expression id="e1" attribute="a" operation="like" value="1"/>'
                           '<expression id="e2" attribute="a" operation="gt"/>'
                           '<expression id="e3" operation="defined"/>'
                           '<expression id="e4" attribute="a" operation="lt" value="3" type="float"/>'
                           '<date_expression id="d" operation="in_range" start="2020-01-01"/>'
                           '</rule></rsc_location>')
    msgs = sorted(f.message for f in verify_text(text))
    assert msgs == sorted([
        "invalid boolean-op 'xor' in rule 'ru': expected and or or",
        "invalid operation 'like' in expression 'e1': expected one of defined, eq, gt, gte, lt, lte, ne, not_defined",
        "expression 'e2' (gt) has no value",
        "expression 'e3' has no attribute",
        "invalid type 'float' in expression 'e4': expected one of integer, number, string, version",
    ])  # the date_expression is valid (lifetimes of hactl resource move / ban)
    ok = cib(constraints='<rsc_location id="l1" rsc="r1"><rule id="ru" score="-INFINITY" boolean-op="or">'
                         '<expression id="e1" attribute="#uname" operation="eq" value="node2"/>'
                         '<expression id="e2" attribute="rack" operation="not_defined"/></rule></rsc_location>')
    assert verify_text(ok) == []


def test_operations_and_meta_attributes():
    text = cib(resources='<primitive id="x" class="ocf" provider="heartbeat" type="Dummy">'
                         '<meta_attributes id="xm"><nvpair id="xm1" name="target-role" value="Running"/>'
                         '<nvpair id="xm2" name="is-managed" value="perhaps"/>'
                         '<nvpair id="xm3" name="multiple-active" value="panic"/>'
                         '<nvpair id="xm4" name="failure-timeout" value="soon"/></meta_attributes>'
                         '<operations><op id="x-m1" name="monitor" interval="10s" on-fail="explode"/>'
                         '<op id="x-m2" name="monitor" interval="10000ms"/>'
                         '<op id="x-m3" name="monitor" interval="ten"/></operations></primitive>')
    msgs = sorted(f.message for f in verify_text(text))
    assert msgs == sorted([
        "invalid target-role 'Running': expected Started or Stopped",
        "invalid boolean 'perhaps' for is-managed of 'x': expected true or false",
        "invalid multiple-active 'panic': expected one of block, stop_only, stop_start, stop_unexpected",
        "invalid duration 'soon' for failure-timeout of 'x': expected e.g. 10s, 500ms, 2min or PT1M",
        "invalid on-fail 'explode' for operation 'x-m1': expected one of block, demote, fence, ignore, restart,"
        " standby, stop",
        "operation 'x-m2' duplicates 'x-m1' (same name monitor and interval)",
        "invalid duration 'ten' for interval of operation 'x-m3': expected e.g. 10s, 500ms, 2min or PT1M",
    ])


def test_groups_nodes_and_cluster_options():
    text = cib(crm='<nvpair id="o2" name="no-quorum-policy" value="panic"/>'
                   '<nvpair id="o3" name="symmetric-cluster" value="sure"/>',
               nodes='<node id="3" uname="node1"/><node id="4" uname="p1" type="ping"/>',
               resources='<group id="g2"><group id="g3"/></group><group id="g4"/>')
    msgs = sorted(f.message for f in verify_text(text))
    assert msgs == sorted([
        "invalid no-quorum-policy 'panic': expected one of demote, fence, freeze, ignore, stop, suicide",
        "invalid boolean 'sure' for cluster option symmetric-cluster: expected true or false",
        "duplicate node name 'node1'",
        "node 'p1' has type 'ping': only cluster members are supported (not ping or remote nodes)",
        "group 'g3' inside group 'g2': groups cannot be nested",
        "group 'g2' has no primitives",
        "group 'g4' has no primitives",
    ])


def test_fencing_enabled_without_stonith_resource():
    text = cib().replace('value="false"', 'value="true"')
    assert "no stonith resource is defined" in only(text).message
    with_fence = text.replace("<resources>", '<resources><primitive id="f" class="stonith" type="fence_xvm"/>')
    assert [f for f in verify_text(with_fence) if f.severity == ERROR] == []


def test_parse_agent_metadata():
    meta = ('<?xml version="1.0"?><resource-agent name="X"><parameters>'
            '<parameter name="ip" required="1"/><parameter name="nic"/></parameters></resource-agent>')
    assert parse_agent_metadata(meta) == {"ip": True, "nic": False}


# -- the command ----------------------------------------------------------------------------------

def hactl_verify(tmp_path, text, *extra):
    f = tmp_path / "cib.xml"
    f.write_text(text)
    out = subprocess.run([sys.executable, "-m", "hadaemon.cli.hactl", "verify", str(f), *extra],
                         capture_output=True, text=True, timeout=60)
    return out, str(f)


def test_cli_clean_exit_zero(tmp_path):
    out, _ = hactl_verify(tmp_path, cib(), "--no-agents")
    assert (out.returncode, out.stderr, out.stdout) == (0, "", "")


def test_cli_errors_exit_one_with_file_and_line(tmp_path):
    text = cib(constraints='<rsc_order id="o1" first="r1" then="ghost"/>')
    out, path = hactl_verify(tmp_path, text, "--no-agents")
    assert out.returncode == 1
    assert f"{path}:{line_of(text, 'ghost')}: error: <rsc_order> 'o1' then='ghost' refers to no resource, template or tag" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_syntax_error_and_missing_file(tmp_path):
    out, path = hactl_verify(tmp_path, "<cib>\n<configuration>\n</cib>\n", "--no-agents")
    assert out.returncode == 1 and out.stderr.startswith(f"{path}:3: error: XML syntax error")
    assert hactl.main(["verify", str(tmp_path / "absent.xml")]) == 2


def write_agent(root: Path, provider: str, name: str, metadata: str) -> Path:
    d = root / "resource.d" / provider
    d.mkdir(parents=True, exist_ok=True)
    agent = d / name
    count = root / f"{name}.calls"
    agent.write_text(f"#!/bin/sh\necho x >> {count}\n[ \"$1\" = meta-data ] || exit 3\ncat <<'EOF'\n{metadata}\nEOF\n")
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR)
    return count


def test_cli_runs_agent_metadata_and_caches_it(tmp_path):
    ocf = tmp_path / "ocf"
    calls = write_agent(ocf, "acme", "Web", '<resource-agent name="Web"><parameters>'
                        '<parameter name="docroot" required="1"/></parameters></resource-agent>')
    write_agent(ocf, "heartbeat", "Dummy", "<resource-agent name='Dummy'><parameters/></resource-agent>")
    write_agent(ocf, "pacemaker", "Dummy", "<resource-agent name='Dummy'><parameters/></resource-agent>")
    text = cib(resources='<primitive id="web" class="ocf" provider="acme" type="Web"/>'
                         '<primitive id="gone" class="ocf" provider="acme" type="Gone"/>')
    args = ("--ocf-root", str(ocf), "--cache-dir", str(tmp_path / "cache"))
    for _ in range(2):
        out, path = hactl_verify(tmp_path, text, *args)
        assert out.returncode == 1
        assert "error: primitive 'web' lacks parameter 'docroot', required by ocf:acme:Web" in out.stderr
        assert "warning: primitive 'gone': resource agent ocf:acme:Gone is not installed" in out.stderr
    assert calls.read_text().count("x") == 1  # the second run read the on-disk cache


@pytest.mark.skipif(not os.access("/usr/lib/ocf/resource.d/heartbeat/IPaddr2", os.X_OK),
                    reason="resource-agents not installed")
def test_cli_with_real_ipaddr2_metadata(tmp_path):
    text = cib(resources='<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2"/>')
    out, _ = hactl_verify(tmp_path, text, "--cache-dir", "none")
    assert out.returncode == 1
    assert "primitive 'vip' lacks parameter 'ip', required by ocf:heartbeat:IPaddr2" in out.stderr


def test_empty_ids_and_nameless_nvpairs():
    text = cib(crm='<nvpair id="o9" value="1"/>',
               resources='<primitive id="" class="ocf" provider="heartbeat" type="Dummy"/>')
    msgs = sorted(f.message for f in verify_text(text))
    assert msgs == ["<nvpair> 'o9' has no name", "<primitive> has an empty id"]


def test_status_history_is_checked():
    text = cib().replace("<status/>", """<status>
    <node_state uname="node1" in_ccm="true" crmd="online" join="member" expected="member">
      <lrm id="1"><lrm_resources>
        <lrm_resource class="ocf" provider="heartbeat" type="Dummy"/>
        <lrm_resource id="r1" class="ocf" provider="heartbeat" type="Dummy">
          <lrm_rsc_op id="r1_last_0" operation="start" call-id="two" rc-code="0" op-status="0" interval="0"/>
          <lrm_rsc_op id="r1_x" call-id="3" rc-code="0" op-status="0" interval="1.5"/>
        </lrm_resource>
      </lrm_resources></lrm>
    </node_state>
  </status>""")
    found = [(f.line, f.message) for f in verify_text(text)]
    assert found == [
        (line_of(text, "<node_state"), "<node_state> has no id"),
        (line_of(text, '<lrm_resource class'), "<lrm_resource> has no id"),
        (line_of(text, "r1_last_0"), "<lrm_rsc_op> 'r1_last_0' has a non-integer call-id 'two'"),
        (line_of(text, "r1_x"), "<lrm_rsc_op> 'r1_x' has a non-integer interval '1.5'"),
        (line_of(text, "r1_x"), "<lrm_rsc_op> 'r1_x' has no operation"),
    ]


def test_clone_meta_attributes():
    text = cib(resources='<clone id="cl"><meta_attributes id="cm">'
                         '<nvpair id="cm1" name="clone-max" value="two"/>'
                         '<nvpair id="cm2" name="interleave" value="sometimes"/>'
                         '<nvpair id="cm3" name="clone-node-max" value="1"/></meta_attributes>'
                         '<primitive id="cp" class="ocf" provider="heartbeat" type="Dummy"/></clone>',
               constraints='<rsc_location id="l" rsc="cl" node="node1" score="5"/>')
    assert sorted(f.message for f in verify_text(text)) == [
        "invalid boolean 'sometimes' for interleave of 'cl': expected true or false",
        "invalid clone-max 'two' of 'cl': expected a non-negative integer",
    ]
    assert verify_text(text.replace('"two"', '"2"').replace('"sometimes"', '"true"')) == []
