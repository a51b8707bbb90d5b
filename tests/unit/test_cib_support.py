"""One table of what a CIB may hold: the loader (scheduler, daemon) and `hactl verify` refuse the same elements."""
from __future__ import annotations

import pytest

from hadaemon.core.cib import parse_cib
from hadaemon.core.cib.support import LEGACY_CLASSES, RESOURCE_CLASSES, UNSUPPORTED
from hadaemon.core.cib.verify import ERROR, verify_text
from hadaemon.core.errors import ConfigError

CIB = """<cib admin_epoch="0" epoch="1" num_updates="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts"><nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set>
    </crm_config>
    <nodes><node id="1" uname="node1"/></nodes>
    <resources>
      <primitive id="r1" class="ocf" provider="heartbeat" type="Dummy"/>
      <primitive id="r2" class="ocf" provider="heartbeat" type="Dummy"/>
{resources}
    </resources>
    <constraints>
{constraints}
    </constraints>
  </configuration>
  <status/>
</cib>
"""

# Where each element can appear; anything else is tried as a resource.
PLACES = {
    "rsc_ticket": ("constraints", '<rsc_ticket id="t" rsc="r1" ticket="T"/>'),
    "resource_set": ("constraints", '<rsc_order id="o">\n<resource_set id="s"><resource_ref id="r1"/>'
                                    '<resource_ref id="r2"/></resource_set>\n</rsc_order>'),
    "date_expression": ("constraints", '<rsc_location id="l" rsc="r1"><rule id="ru" score="10">\n'
                                       '<date_expression id="d" operation="gt" start="2020-01-01"/>\n'
                                       '</rule></rsc_location>'),
}


def document(tag: str) -> str:
    where, snippet = PLACES.get(tag, ("resources", f'<{tag} id="x">\n'
                                                   '<primitive id="x1" class="ocf" provider="heartbeat" type="Dummy"/>\n'
                                                   f'</{tag}>'))
    return CIB.format(**{"resources": "", "constraints": "", where: snippet})


@pytest.mark.parametrize("tag", sorted(UNSUPPORTED))
def test_loader_and_verify_refuse_each_unsupported_element_on_its_line(tag):
    text = document(tag)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if f"<{tag} " in s)
    with pytest.raises(ConfigError) as e:
        parse_cib(text, "cib.xml")
    assert e.value.line == line and f"<{tag}>" in e.value.message
    assert f"<{tag}> is not supported: {UNSUPPORTED[tag]} are not implemented yet" in [
        f.message for f in verify_text(text) if f.severity == ERROR and f.line == line]


def primitive_of_class(cls: str) -> str:
    provider = ' provider="heartbeat"' if cls == "ocf" else ""
    return CIB.format(resources=f'<primitive id="p" class="{cls}"{provider} type="Dummy"/>', constraints="")


@pytest.mark.parametrize("cls", RESOURCE_CLASSES)
def test_every_resource_class_loads_and_verifies(cls):
    text = primitive_of_class(cls)
    assert any(r.id == "p" for r in parse_cib(text).resources)
    assert verify_text(text) == []


@pytest.mark.parametrize("cls", LEGACY_CLASSES)
def test_legacy_classes_load_for_the_scheduler_but_verify_reports_them(cls):
    text = primitive_of_class(cls)
    assert any(r.id == "p" for r in parse_cib(text).resources)
    assert [f.message for f in verify_text(text)] == [
        f"primitive 'p' has unknown class '{cls}': expected one of {', '.join(sorted(RESOURCE_CLASSES))}"]


def test_an_unknown_class_is_refused_by_both():
    text = primitive_of_class("bogus")
    with pytest.raises(ConfigError, match="unknown class 'bogus'"):
        parse_cib(text)
    assert [f.severity for f in verify_text(text)] == [ERROR]


CLONES = {
    "a clone of a primitive": ('<clone id="cl"><meta_attributes id="cm"><nvpair id="cm1" name="clone-max" value="2"/>'
                               '<nvpair id="cm2" name="interleave" value="true"/></meta_attributes>'
                               '<primitive id="cp" class="ocf" provider="heartbeat" type="Dummy"/></clone>', None),
    "promotable": ('<clone id="cl"><meta_attributes id="cm">\n<nvpair id="cm1" name="promotable" value="true"/>'
                   '</meta_attributes>\n<primitive id="cp" class="ocf" provider="heartbeat" type="Dummy"/></clone>',
                   "promotable" if "promotable" in UNSUPPORTED else None),
    "a cloned group": ('<clone id="cl">\n<group id="cg"><primitive id="cp" class="ocf" provider="heartbeat" '
                       'type="Dummy"/></group></clone>', None),
    "a promotable cloned group": ('<clone id="cl"><meta_attributes id="cm"><nvpair id="cm1" name="promotable" '
                                  'value="true"/></meta_attributes>\n<group id="cg"><primitive id="cp" class="ocf" '
                                  'provider="heartbeat" type="Dummy"/></group></clone>', None),
    "nothing to clone": ('<clone id="cl">\n<meta_attributes id="cm"/></clone>', "nothing to clone"),
    "two resources": ('<clone id="cl"><primitive id="c1" class="ocf" provider="heartbeat" type="Dummy"/>\n'
                      '<primitive id="c2" class="ocf" provider="heartbeat" type="Dummy"/></clone>', "more than one"),
    "a clone in a clone": ('<clone id="cl">\n<clone id="c2"><primitive id="cp" class="ocf" provider="heartbeat" '
                           'type="Dummy"/></clone></clone>', "inside"),
}


@pytest.mark.parametrize("name", sorted(CLONES))
def test_loader_and_verify_agree_on_clones(name):
    snippet, refused = CLONES[name]
    text = CIB.format(resources=snippet, constraints='<rsc_colocation id="c" rsc="r1" with-rsc="cl" score="10"/>')
    errors = [f for f in verify_text(text) if f.severity == ERROR]
    if refused is None:
        assert any(r.id == "cl" for r in parse_cib(text).resources)
        assert errors == []
        return
    with pytest.raises(ConfigError) as e:
        parse_cib(text, "cib.xml")
    assert refused in e.value.message
    assert any(refused in f.message for f in errors), errors


ELSEWHERE = {
    "a ticket for a resource": ("constraints", '<rsc_ticket id="t" rsc="r1" ticket="T" loss-policy="stop"/>', None),
    "a ticket for a resource set": ("constraints", '<rsc_ticket id="t" ticket="T"><resource_set id="s" role="Started">'
                                                   '<resource_ref id="r1"/><resource_ref id="r2"/></resource_set>'
                                                   '</rsc_ticket>', None),
    "a ticket with a bad loss-policy": ("constraints", '<rsc_ticket id="t" rsc="r1" ticket="T" loss-policy="panic"/>',
                                        "loss-policy"),
    "a date in a location rule": ("constraints", '<rsc_location id="l" rsc="r1"><rule id="ru" score="10">'
                                                 '<date_expression id="d" operation="lt" end="2030-01-01"/>'
                                                 '</rule></rsc_location>', None),
    "a date in a meta-attribute rule": ("resources", '<primitive id="p" class="ocf" provider="heartbeat" type="Dummy">'
                                                     '<meta_attributes id="pm"><rule id="pr" score="0">'
                                                     '<date_expression id="d" operation="gt" start="2020-01-01"/>'
                                                     '</rule></meta_attributes></primitive>', None),
}


@pytest.mark.parametrize("name", sorted(ELSEWHERE))
def test_loader_and_verify_agree_on_tickets_and_dates(name):
    where, snippet, refused = ELSEWHERE[name]
    if refused == "date_expression" and "date_expression" in UNSUPPORTED:
        pytest.skip("date expressions are not read at all")
    text = CIB.format(**{"resources": "", "constraints": "", where: snippet})
    errors = [f.message for f in verify_text(text) if f.severity == ERROR]
    if refused is None:
        parse_cib(text)
        assert errors == []
        return
    with pytest.raises(ConfigError) as e:
        parse_cib(text, "cib.xml")
    assert refused in e.value.message
    assert any(refused in m for m in errors), errors
