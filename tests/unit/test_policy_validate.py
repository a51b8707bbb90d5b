"""One validator (hadaemon/core/cib/validate.py) for hactl verify and hactl simulate: what crm_simulate
refuses is refused by both, with the same line and message, and nothing is scheduled from it."""
from __future__ import annotations

import subprocess

import pytest

from hadaemon.cli.hactl import main
from hadaemon.core.cib import parse_cib
from hadaemon.core.cib.validate import refusals, schema_version
from hadaemon.core.cib.verify import ERROR, verify_text
from hadaemon.core.cib.xmltree import parse_xml
from hadaemon.core.errors import ConfigError
from tests.unit.crmsim import needs_crm_simulate
from tests.unit.test_policy_scheduler import cib, primitive

BASE = cib(resources=[primitive("rsc1"), primitive("rsc2")])

CASES = {
    # a constraint naming nothing (crm_simulate: "IDREF attribute rsc references an unknown ID")
    "location-ghost": (lambda x: x.replace("<constraints>", '<constraints><rsc_location id="l1" rsc="ghost" '
                                                            'node="node1" score="10"/>'),
                       "<rsc_location> 'l1' rsc='ghost' refers to no resource, template or tag", True),
    "order-set-ghost": (lambda x: x.replace("<constraints>", '<constraints><rsc_order id="o1"><resource_set '
                                                             'id="s1"><resource_ref id="rsc1"/><resource_ref '
                                                             'id="ghost"/></resource_set></rsc_order>'),
                        "resource set 's1' of <rsc_order> 'o1' refers to 'ghost': no resource, template or tag",
                        True),
    "colocation-not-a-resource": (
        lambda x: x.replace("<constraints>", '<constraints><rsc_colocation id="c1" rsc="rsc1" with-rsc="opts" '
                                             'score="INFINITY"/>'),
        "<rsc_colocation> 'c1' with-rsc='opts' refers to a <cluster_property_set>, not a resource, template or tag",
        False),  # the schema's IDREF is satisfied; Pacemaker's unpack ignores it as a configuration error
    # an invalid boolean (Pacemaker 3's option table refuses it; 2.1.5 reads it as false)
    "stonith-enabled-flase": (lambda x: x.replace('name="stonith-enabled" value="false"',
                                                  'name="stonith-enabled" value="flase"'),
                              "invalid boolean 'flase' for cluster option stonith-enabled: expected true or false",
                              False),
    # options-3.0.rng has no default-resource-stickiness any more (crm_simulate: Relax-NG validity error)
    "removed-option": (lambda x: x.replace('<cluster_property_set id="opts">', '<cluster_property_set id="opts">'
                                           '<nvpair id="o-drs" name="default-resource-stickiness" value="100"/>'),
                       'cluster option default-resource-stickiness is not in the schema this CIB declares '
                       '(validate-with="pacemaker-3.0" has no such option since pacemaker-3.0): use '
                       'resource-stickiness in <rsc_defaults>', True),
    "removed-underscore-option": (lambda x: x.replace('<cluster_property_set id="opts">',
                                                      '<cluster_property_set id="opts"><nvpair id="o-nq" '
                                                      'name="no_quorum_policy" value="ignore"/>'),
                                  'cluster option no_quorum_policy is not in the schema this CIB declares '
                                  '(validate-with="pacemaker-3.0" has no such option since pacemaker-3.0): use '
                                  'no-quorum-policy', True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loader_verify_and_simulate_refuse_alike(name, tmp_path, capsys):
    edit, message, _ = CASES[name]
    text = edit(BASE)
    assert [r.message for r in refusals(parse_xml(text, "t.xml"))] == [message]
    with pytest.raises(ConfigError) as err:
        parse_cib(text, "t.xml")
    assert err.value.message == message
    assert [(f.severity, f.message) for f in verify_text(text) if f.severity == ERROR] == [(ERROR, message)]
    f = tmp_path / "cib.xml"
    f.write_text(text)
    assert main(["simulate", str(f)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.strip() == f"{f}:1: {message}"
    assert main(["verify", "--no-agents", str(f)]) != 0
    assert f"{f}:1: error: {message}" in capsys.readouterr().err


def test_removed_options_are_fine_under_an_older_schema():
    text = CASES["removed-option"][0](BASE).replace('validate-with="pacemaker-3.0"', 'validate-with="pacemaker-2.10"')
    assert refusals(parse_xml(text, "t.xml")) == []
    assert parse_cib(text).options["default-resource-stickiness"] == "100"


def test_schema_versions():
    assert schema_version("pacemaker-3.10") == (3, 10) and schema_version("pacemaker-2.9") == (2, 9)
    assert schema_version("pacemaker-next") > (3, 99) and schema_version("none") is None
    assert schema_version(None) is None


def test_a_valid_cib_has_no_refusal():
    text = BASE.replace("<constraints>", '<constraints><rsc_order id="o1" first="rsc1" then="rsc2"/>')
    assert refusals(parse_xml(text, "t.xml")) == []


@needs_crm_simulate
@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2]))
def test_crm_simulate_refuses_them_too(name, tmp_path):
    """crm_simulate 2.1.5 refuses the same documents (schema validation: exit 78, nothing scheduled)."""
    f = tmp_path / "cib.xml"
    f.write_text(CASES[name][0](BASE))
    out = subprocess.run(["crm_simulate", "-x", str(f), "-S"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Transition Summary" not in out.stdout
    f.write_text(BASE)
    out = subprocess.run(["crm_simulate", "-x", str(f), "-S"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Transition Summary" in out.stdout
