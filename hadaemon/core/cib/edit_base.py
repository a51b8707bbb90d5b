"""Shared pieces of the pure CIB edits: ids, sections, resource and node lookup, nvpair sets."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Dict, List

from hadaemon.core.errors import BadRequest

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
ROLES = ("Started", "Stopped", "Promoted", "Unpromoted", "Master", "Slave")


# --- small helpers ------------------------------------------------------------------------------
def valid_id(text: str) -> bool:
    """An XML ID as the CIB schema wants it (letters, digits, _ . : -, not starting with a digit)."""
    return bool(text) and len(text) <= 256 and bool(_ID_RE.match(text))


def _need_id(text: str, what: str) -> None:
    if not valid_id(text):
        raise BadRequest("InvalidArgument", f"{what} {text!r} is not a valid id (a letter or _ first, then "
                                            "letters, digits, '_', '.', ':' or '-')")


def _all_ids(cib: ET.Element) -> set:
    return {el.get("id") for el in cib.iter() if el.get("id") is not None}


def unique_id(cib: ET.Element, base: str) -> str:
    """base, or base-1, base-2 ... whichever is not an id in the CIB yet."""
    base = re.sub(r"[^A-Za-z0-9_.:-]", "_", base)
    if not base or not (base[0].isalpha() or base[0] == "_"):
        base = "id_" + base
    ids = _all_ids(cib)
    if base not in ids:
        return base
    n = 1
    while f"{base}-{n}" in ids:
        n += 1
    return f"{base}-{n}"


def section(cib: ET.Element, name: str) -> ET.Element:
    """configuration/<name> (or status), created when missing."""
    if cib.tag != "cib":
        raise BadRequest("InvalidArgument", f"the document's root is <{cib.tag}>, expected <cib>")
    if name == "status":
        st = cib.find("status")
        return st if st is not None else ET.SubElement(cib, "status")
    conf = cib.find("configuration")
    if conf is None:
        conf = ET.SubElement(cib, "configuration")
    el = conf.find(name)
    if el is None:
        el = ET.SubElement(conf, name)
    return el


def _resources(cib: ET.Element) -> ET.Element:
    return section(cib, "resources")


def find_resource(cib: ET.Element, rsc: str):
    """(element, parent element) of the primitive, group or clone with this id, or raise UnknownResource."""
    res = _resources(cib)
    for top in res:
        if top.get("id") == rsc and top.tag in ("primitive", "group", "clone", "master", "bundle"):
            return top, res
        for child in top:
            if child.get("id") == rsc and child.tag in ("primitive", "group"):
                return child, top
    known = ", ".join(sorted(_resource_ids(cib))) or "none configured"
    raise BadRequest("UnknownResource", f"no resource '{rsc}' (resources: {known})")


def _resource_ids(cib: ET.Element) -> List[str]:
    out = []
    for top in _resources(cib):
        if top.tag in ("primitive", "group", "clone", "master", "bundle") and top.get("id"):
            out.append(top.get("id"))
            out.extend(c.get("id") for c in top if c.tag in ("primitive", "group") and c.get("id"))
    return out


def node_names(cib: ET.Element) -> Dict[str, str]:
    """uname -> node id, from configuration/nodes and the status section's node_state entries."""
    out: Dict[str, str] = {}
    for n in section(cib, "nodes").findall("node"):
        if n.get("id"):
            out[n.get("uname") or n.get("id")] = n.get("id")
    st = cib.find("status")
    for ns in (st.findall("node_state") if st is not None else []):
        if ns.get("id"):
            out.setdefault(ns.get("uname") or ns.get("id"), ns.get("id"))
    return out


def _node(cib: ET.Element, node: str) -> str:
    """The uname of a known node (by uname or id), else UnknownNode."""
    names = node_names(cib)
    if node in names:
        return node
    for uname, nid in names.items():
        if nid == node:
            return uname
    raise BadRequest("UnknownNode", f"no node '{node}' (nodes: {', '.join(sorted(names)) or 'none'})")


def _node_element(cib: ET.Element, uname: str) -> ET.Element:
    nodes = section(cib, "nodes")
    for n in nodes.findall("node"):
        if (n.get("uname") or n.get("id")) == uname:
            return n
    nid = node_names(cib).get(uname, uname)
    return ET.SubElement(nodes, "node", {"id": nid, "uname": uname})


def _set_nvpair(cib: ET.Element, parent: ET.Element, set_tag: str, set_id: str, name: str,
                value: str | None) -> None:
    """Set (or with value None delete) name in the first rule-less <set_tag> of parent (created as
    set_id when there is none); other copies of name in those sets are removed."""
    sets = [s for s in parent.findall(set_tag) if s.find("rule") is None]
    if value is not None and not sets:
        sets = [ET.SubElement(parent, set_tag, {"id": unique_id(cib, set_id)})]
    for i, s in enumerate(sets):
        _set_in_set(cib, s, name, value if i == 0 else None)


def _set_in_set(cib: ET.Element, nvset: ET.Element, name: str, value: str | None) -> None:
    found = False
    for nv in nvset.findall("nvpair"):
        if nv.get("name") != name:
            continue
        if value is None or found:
            nvset.remove(nv)
        else:
            nv.set("value", value)
            found = True
    if value is not None and not found:
        ET.SubElement(nvset, "nvpair", {"id": unique_id(cib, f"{nvset.get('id')}-{name}"), "name": name,
                                        "value": value})


def _truth(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1", "on", "y")
