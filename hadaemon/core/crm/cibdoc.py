"""The CIB document in the daemon: versions (admin_epoch, epoch, num_updates), sections, schema checks."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable, Tuple

__all__ = ["Version", "version_of", "version_text", "set_version", "bump", "newer", "empty_cib",
           "parse", "to_text", "section", "strip_status", "old_schema_problem", "ensure_nodes",
           "set_option_default", "with_hacf_defaults", "SECTIONS"]

Version = Tuple[int, int, int]
SECTIONS = ("crm_config", "nodes", "resources", "constraints")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def version_of(cib: ET.Element) -> Version:
    """(admin_epoch, epoch, num_updates): Pacemaker's order for "which CIB is newer"."""
    return (_int(cib.get("admin_epoch")), _int(cib.get("epoch")), _int(cib.get("num_updates")))


def version_text(v: Version) -> str:
    return f"{v[0]}:{v[1]}:{v[2]}"


def set_version(cib: ET.Element, v: Version) -> None:
    cib.set("admin_epoch", str(v[0]))
    cib.set("epoch", str(v[1]))
    cib.set("num_updates", str(v[2]))


def bump(cib: ET.Element, configuration: bool) -> Version:
    """A configuration change bumps epoch and resets num_updates; a status change bumps num_updates."""
    a, e, n = version_of(cib)
    v = (a, e + 1, 0) if configuration else (a, e, n + 1)
    set_version(cib, v)
    return v


def newer(a: Version, b: Version) -> bool:
    return a > b


def empty_cib() -> ET.Element:
    cib = ET.Element("cib", {"admin_epoch": "0", "epoch": "0", "num_updates": "0",
                             "validate-with": "pacemaker-3.0", "crm_feature_set": "3.19.0"})
    conf = ET.SubElement(cib, "configuration")
    for s in SECTIONS:
        ET.SubElement(conf, s)
    ET.SubElement(cib, "status")
    return cib


def parse(text) -> ET.Element:
    """XML text -> element with every section present (raises ValueError on bad XML or root)."""
    try:
        cib = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"invalid XML: {exc}") from None
    if cib.tag != "cib":
        raise ValueError(f"the root element is <{cib.tag}>, expected <cib>")
    conf = cib.find("configuration")
    if conf is None:
        conf = ET.SubElement(cib, "configuration")
    for s in SECTIONS:
        if conf.find(s) is None:
            ET.SubElement(conf, s)
    if cib.find("status") is None:
        ET.SubElement(cib, "status")
    return cib


def to_text(cib: ET.Element) -> str:
    return ET.tostring(cib, encoding="unicode")


def section(cib: ET.Element, name: str) -> ET.Element:
    """configuration/<name> (created when missing); "status" is the status section."""
    if name == "status":
        st = cib.find("status")
        if st is None:
            st = ET.SubElement(cib, "status")
        return st
    conf = cib.find("configuration")
    if conf is None:
        conf = ET.SubElement(cib, "configuration")
    el = conf.find(name)
    if el is None:
        el = ET.SubElement(conf, name)
    return el


def strip_status(cib: ET.Element) -> None:
    """Forget the status section (it describes a cluster that no longer runs: rebuilt at join)."""
    st = cib.find("status")
    if st is not None:
        cib.remove(st)
    ET.SubElement(cib, "status")
    for attr in ("have-quorum", "dc-uuid"):
        cib.attrib.pop(attr, None)


# Heartbeat 2.1.x CIBs: <attributes> wrappers inside *_attributes, nodes with type="normal", old names.
_OLD_NAMES = {"default_resource_stickiness", "default-resource-stickiness", "stonith_enabled",
              "symmetric_cluster", "no_quorum_policy", "default_resource_failure_stickiness",
              "resource_failure_stickiness", "transition_idle_timeout"}


def old_schema_problem(cib: ET.Element) -> str | None:
    """A message when the document is a Heartbeat 2.1.x CIB that must be upgraded first, else None.
    The test is hactl cib upgrade's own (core/cib/upgrade.heartbeat2_reason): one detector."""
    from hadaemon.core.cib.upgrade import heartbeat2_reason
    from hadaemon.core.cib.xmltree import parse_xml

    why = heartbeat2_reason(parse_xml(ET.tostring(cib, encoding="unicode"), "<cib>"))
    if why is None:
        return None
    return (f"this is a Heartbeat 2.1.x CIB ({why}); convert it first with "
            "`hactl cib upgrade FILE` (like `cibadmin --upgrade`), then load the result")


def ensure_nodes(cib: ET.Element, names: Iterable[str]) -> bool:
    """Add <node id=NAME uname=NAME/> for configured nodes the CIB lacks; True when it changed."""
    nodes = section(cib, "nodes")
    known = {n.get("uname") or n.get("id") for n in nodes.findall("node")}
    changed = False
    for name in names:
        if name not in known:
            ET.SubElement(nodes, "node", {"id": name, "uname": name})
            changed = True
    return changed


def node_id(cib: ET.Element, uname: str) -> str:
    """The id of the node named uname in the nodes section (the name itself when absent)."""
    for n in section(cib, "nodes").findall("node"):
        if (n.get("uname") or n.get("id")) == uname:
            return n.get("id") or uname
    return uname


def set_option_default(parent: ET.Element, set_tag: str, set_id: str, name: str, value: str) -> bool:
    """Add name=value in a new set unless some set under parent already names it; True when added."""
    for s in parent.findall(set_tag):
        for nv in s.iter("nvpair"):
            if nv.get("name") == name:
                return False
    s = parent.find(f"{set_tag}[@id='{set_id}']")
    if s is None:
        s = ET.SubElement(parent, set_tag, {"id": set_id})
    ET.SubElement(s, "nvpair", {"id": f"{set_id}-{name}", "name": name, "value": value})
    return True


def with_hacf_defaults(cib: ET.Element, auto_failback: str | None) -> None:
    """ha.cf's auto_failback on/off as rsc_defaults resource-stickiness 0/INFINITY, unless the CIB sets
    a stickiness (rsc_defaults or the old default-resource-stickiness cluster option). Mutates cib."""
    if auto_failback not in ("on", "off", "yes", "no", "true", "false"):
        return
    crm = section(cib, "crm_config")
    for nv in crm.iter("nvpair"):
        if nv.get("name") in ("default-resource-stickiness", "default_resource_stickiness"):
            return
    conf = cib.find("configuration")
    rd = conf.find("rsc_defaults")
    if rd is None:
        rd = ET.SubElement(conf, "rsc_defaults")
    value = "0" if auto_failback in ("on", "yes", "true") else "INFINITY"
    set_option_default(rd, "meta_attributes", "hacf-auto-failback", "resource-stickiness", value)
