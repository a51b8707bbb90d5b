"""Pure CIB edits of resources, groups and constraints (cibadmin --create/--modify/--delete, pcs-like)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Dict, List, Mapping, Sequence

from hadaemon.core.cib.edit_base import (
    ROLES, _all_ids, _need_id, _node, _set_nvpair, find_resource, section, unique_id,
)
from hadaemon.core.cib.loader import PRIMITIVE_CLASSES, parse_interval_ms
from hadaemon.core.cib.scores import parse_score, score_text
from hadaemon.core.errors import BadRequest

ORDER_KINDS = ("Mandatory", "Optional", "Serialize")
ACTIONS = ("start", "stop", "promote", "demote")
# constraint attributes that name resources (Pacemaker 1.x+ and 0.6 spellings)
_REFS = ("rsc", "with-rsc", "first", "then", "from", "to")


def _check_new_id(cib: ET.Element, new_id: str, what: str) -> None:
    _need_id(new_id, what)
    if new_id in _all_ids(cib):
        raise BadRequest("Conflict", f"id '{new_id}' is already used in the CIB")


def _xml_text(value: str) -> bool:
    """Text an XML 1.0 attribute can hold (no control characters but tab, newline, carriage return)."""
    return all(c in "\t\n\r" or ord(c) >= 0x20 for c in value) and "\ufffe" not in value and "\uffff" not in value


def _check_pairs(pairs: Mapping[str, str], what: str) -> None:
    for name, value in pairs.items():
        if not name or not name.isprintable() or " " in name or "=" in name:
            raise BadRequest("InvalidArgument", f"invalid {what} name {name!r}")
        if not _xml_text(str(value)):
            raise BadRequest("InvalidArgument", f"the value of {what} {name!r} holds control characters")


def _fill_set(cib: ET.Element, parent: ET.Element, tag: str, set_id: str, pairs: Mapping[str, str]) -> None:
    if not pairs:
        return
    s = ET.SubElement(parent, tag, {"id": unique_id(cib, set_id)})
    for name, value in pairs.items():
        ET.SubElement(s, "nvpair", {"id": unique_id(cib, f"{s.get('id')}-{name}"), "name": name,
                                    "value": str(value)})


def _check_op(rsc: str, op: Mapping[str, str]) -> None:
    name = op.get("name", "")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise BadRequest("InvalidArgument", f"operation of '{rsc}' has an invalid name {name!r}")
    for key in ("interval", "timeout", "start-delay"):
        if key in op and parse_interval_ms(op[key]) is None:
            raise BadRequest("InvalidArgument", f"operation {name} of '{rsc}' has an invalid {key} "
                                                f"{op[key]!r} (e.g. 10s, 1min, 500ms)")
    for key, value in op.items():
        if not key or not str(key).replace("-", "").replace("_", "").isalnum() or not str(value).isprintable():
            raise BadRequest("InvalidArgument", f"operation {name} of '{rsc}' has an invalid attribute {key!r}")


def _op_element(cib: ET.Element, rsc: str, op: Mapping[str, str]) -> ET.Element:
    name = op["name"]
    attrs = {"name": name, "interval": op.get("interval", "0") or "0"}
    for key, value in op.items():
        if key not in ("name", "id"):
            attrs[key] = str(value)
    interval = attrs["interval"]
    attrs["id"] = op.get("id") or unique_id(cib, f"{rsc}-{name}-interval-{interval}")
    el = ET.Element("op", {"id": attrs.pop("id"), **attrs})
    return el


def create_primitive(cib: ET.Element, rsc: str, cls: str, provider: str, agent_type: str,
                     params: Mapping[str, str] | None = None, meta: Mapping[str, str] | None = None,
                     ops: Sequence[Mapping[str, str]] = (), group: str = "", now: int = 0) -> None:
    """Add <primitive id class provider type> with instance/meta attributes and operations, at the top
    level or at the end of group (created when it does not exist yet)."""
    _check_new_id(cib, rsc, "resource id")
    if cls not in PRIMITIVE_CLASSES:
        raise BadRequest("InvalidArgument", f"unknown resource class {cls!r} (one of "
                                            f"{', '.join(PRIMITIVE_CLASSES)})")
    if cls == "ocf" and not provider:
        raise BadRequest("InvalidArgument", f"resource '{rsc}' of class ocf needs a provider (e.g. heartbeat)")
    if cls != "ocf" and provider:
        raise BadRequest("InvalidArgument", f"only class ocf takes a provider, not {cls!r}")
    if not agent_type or not agent_type.isprintable() or "/" in agent_type:
        raise BadRequest("InvalidArgument", f"invalid agent type {agent_type!r}")
    params, meta = dict(params or {}), dict(meta or {})
    _check_pairs(params, "parameter")
    _check_pairs(meta, "meta attribute")
    for op in ops:
        _check_op(rsc, op)
    if group:
        for top in section(cib, "resources"):
            if top.get("id") == group and top.tag != "group":
                raise BadRequest("InvalidArgument", f"'{group}' is a {top.tag}, not a group")
        if group not in [t.get("id") for t in section(cib, "resources")]:
            _check_new_id(cib, group, "group id")
    attrs = {"id": rsc, "class": cls}
    if provider:
        attrs["provider"] = provider
    attrs["type"] = agent_type
    prim = ET.Element("primitive", attrs)
    parent = section(cib, "resources")
    if group:
        parent = _group_for_add(cib, group)
    parent.append(prim)
    _fill_set(cib, prim, "instance_attributes", f"{rsc}-instance_attributes", params)
    _fill_set(cib, prim, "meta_attributes", f"{rsc}-meta_attributes", meta)
    if ops:
        holder = ET.SubElement(prim, "operations")
        for op in ops:
            holder.append(_op_element(cib, rsc, op))


def update_resource(cib: ET.Element, rsc: str, params: Mapping[str, str] | None = None,
                    meta: Mapping[str, str] | None = None, now: int = 0) -> None:
    """Set instance (params) and meta attributes of a resource; an empty value deletes the attribute."""
    el, _parent = find_resource(cib, rsc)
    params, meta = dict(params or {}), dict(meta or {})
    if not params and not meta:
        raise BadRequest("InvalidArgument", f"nothing to change on '{rsc}' (give parameters or meta attributes)")
    _check_pairs(params, "parameter")
    _check_pairs(meta, "meta attribute")
    for name, value in params.items():
        _set_nvpair(cib, el, "instance_attributes", f"{rsc}-instance_attributes", name, value or None)
    for name, value in meta.items():
        _set_nvpair(cib, el, "meta_attributes", f"{rsc}-meta_attributes", name, value or None)


def _references(c: ET.Element, ids: Sequence[str]) -> bool:
    if any(c.get(a) in ids for a in _REFS):
        return True
    return any(r.get("id") in ids for r in c.iter("resource_ref"))


def _drop_constraints(cib: ET.Element, ids: Sequence[str]) -> List[str]:
    cons = section(cib, "constraints")
    dropped = []
    for c in list(cons):
        if _references(c, ids):
            cons.remove(c)
            dropped.append(c.get("id", ""))
    return dropped


def delete_resource(cib: ET.Element, rsc: str, now: int = 0) -> List[str]:
    """Remove a primitive or a group with its members, and every constraint naming them (a group left
    empty goes too). Returns the ids of the constraints removed. The cluster stops what was running."""
    el, parent = find_resource(cib, rsc)
    ids = [rsc] + [c.get("id") for c in el.iter("primitive") if c.get("id") != rsc]
    parent.remove(el)
    if parent.tag == "group" and parent.find("primitive") is None:
        section(cib, "resources").remove(parent)
        ids.append(parent.get("id"))
    return _drop_constraints(cib, ids)


def _group_for_add(cib: ET.Element, group: str) -> ET.Element:
    """The group element, created (empty, filled by the caller) at the top level when missing."""
    for top in section(cib, "resources"):
        if top.get("id") == group:
            if top.tag != "group":
                raise BadRequest("InvalidArgument", f"'{group}' is a {top.tag}, not a group")
            return top
    _check_new_id(cib, group, "group id")
    return ET.SubElement(section(cib, "resources"), "group", {"id": group})


def _detach_primitive(cib: ET.Element, rsc: str) -> ET.Element:
    el, parent = find_resource(cib, rsc)
    if el.tag != "primitive":
        raise BadRequest("InvalidArgument", f"'{rsc}' is a {el.tag}; only primitives can be group members")
    parent.remove(el)
    if parent.tag == "group" and parent.find("primitive") is None:
        section(cib, "resources").remove(parent)
        _drop_constraints(cib, [parent.get("id")])
    return el


def group_add(cib: ET.Element, group: str, rsc: str, now: int = 0, before: str = "", after: str = "") -> None:
    """Put primitive RSC into group (created when missing), at the end or before/after a member; a
    primitive in another group leaves it (that group goes when it is left empty)."""
    if before and after:
        raise BadRequest("InvalidArgument", "give before or after, not both")
    if rsc == group:
        raise BadRequest("InvalidArgument", f"'{rsc}' cannot be a member of itself")
    el, _parent = find_resource(cib, rsc)
    if el.tag != "primitive":
        raise BadRequest("InvalidArgument", f"'{rsc}' is a {el.tag}; only primitives can be group members")
    existing = next((t for t in section(cib, "resources") if t.get("id") == group), None)
    anchor = before or after
    if anchor and (existing is None or not any(m.get("id") == anchor for m in existing.findall("primitive"))):
        raise BadRequest("UnknownResource", f"group '{group}' has no member '{anchor}'")
    g = _group_for_add(cib, group)
    el = _detach_primitive(cib, rsc)
    if g not in list(section(cib, "resources")):  # was emptied and dropped by the detach
        section(cib, "resources").append(g)
    children = list(g)
    if anchor:
        idx = next(i for i, c in enumerate(children) if c.get("id") == anchor) + (1 if after else 0)
    else:
        idx = len(children)
    g.insert(idx, el)


def create_group(cib: ET.Element, group: str, members: Sequence[str], now: int = 0) -> None:
    """A new group of existing primitives, in the order given (started in that order)."""
    if not members:
        raise BadRequest("InvalidArgument", f"group '{group}' needs at least one member")
    if len(set(members)) != len(members):
        raise BadRequest("InvalidArgument", f"group '{group}' lists a member twice")
    _check_new_id(cib, group, "group id")
    for m in members:
        find_resource(cib, m)
    for m in members:
        group_add(cib, group, m, now)


def group_remove(cib: ET.Element, group: str, rsc: str, now: int = 0) -> None:
    """Take primitive RSC out of group to the top level; a group left empty is deleted with its constraints."""
    el, parent = find_resource(cib, rsc)
    if parent.tag != "group" or parent.get("id") != group:
        find_resource(cib, group)
        raise BadRequest("InvalidArgument", f"'{rsc}' is not a member of group '{group}'")
    _detach_primitive(cib, rsc)
    section(cib, "resources").append(el)


def delete_group(cib: ET.Element, group: str, now: int = 0) -> List[str]:
    """Ungroup: the members become top-level primitives where the group was; constraints naming the
    group are removed (returned). Use delete_resource to remove a group with its members."""
    el, parent = find_resource(cib, group)
    if el.tag != "group":
        raise BadRequest("InvalidArgument", f"'{group}' is a {el.tag}, not a group")
    idx = list(parent).index(el)
    parent.remove(el)
    for i, m in enumerate(el.findall("primitive")):
        parent.insert(idx + i, m)
    return _drop_constraints(cib, [group])


# --- constraints ------------------------------------------------------------------------------------
def _score(text: str) -> str:
    value = parse_score(str(text).strip(), None)
    if value is None:
        raise BadRequest("InvalidArgument", f"invalid score {text!r} (an integer, INFINITY or -INFINITY)")
    return score_text(value)


def _constraint_id(cib: ET.Element, cid: str, default: str) -> str:
    if cid:
        _check_new_id(cib, cid, "constraint id")
        return cid
    return unique_id(cib, default)


def add_location(cib: ET.Element, cid: str, rsc: str, node: str, score: str, now: int = 0,
                 role: str = "") -> str:
    """rsc_location: RSC prefers (score > 0) or avoids (< 0) NODE. Returns the constraint id."""
    find_resource(cib, rsc)
    node = _node(cib, node)
    score = _score(score)
    cid = _constraint_id(cib, cid, f"location-{rsc}-{node}-{score}")
    attrs = {"id": cid, "rsc": rsc, "node": node, "score": score}
    if role:
        attrs["role"] = _role(role)
    ET.SubElement(section(cib, "constraints"), "rsc_location", attrs)
    return cid


def _role(role: str) -> str:
    canon = {r.lower(): r for r in ROLES}
    if role.lower() not in canon:
        raise BadRequest("InvalidArgument", f"invalid role {role!r} (one of {', '.join(ROLES)})")
    return canon[role.lower()]


def add_colocation(cib: ET.Element, cid: str, rsc: str, with_rsc: str, score: str, now: int = 0) -> str:
    """rsc_colocation: RSC is placed relative to WITH_RSC (INFINITY: together, -INFINITY: apart)."""
    if rsc == with_rsc:
        raise BadRequest("InvalidArgument", f"'{rsc}' cannot be colocated with itself")
    find_resource(cib, rsc)
    find_resource(cib, with_rsc)
    score = _score(score)
    cid = _constraint_id(cib, cid, f"colocation-{rsc}-{with_rsc}-{score}")
    ET.SubElement(section(cib, "constraints"), "rsc_colocation",
                  {"id": cid, "rsc": rsc, "with-rsc": with_rsc, "score": score})
    return cid


def add_order(cib: ET.Element, cid: str, first: str, then: str, kind: str = "Mandatory", now: int = 0,
              first_action: str = "start", then_action: str = "", symmetrical: bool | None = None) -> str:
    """rsc_order: FIRST's first_action before THEN's then_action (kind Mandatory, Optional, Serialize)."""
    if first == then:
        raise BadRequest("InvalidArgument", f"'{first}' cannot be ordered against itself")
    find_resource(cib, first)
    find_resource(cib, then)
    kinds = {k.lower(): k for k in ORDER_KINDS}
    if (kind or "Mandatory").lower() not in kinds:
        raise BadRequest("InvalidArgument", f"invalid order kind {kind!r} (one of {', '.join(ORDER_KINDS)})")
    kind = kinds[(kind or "Mandatory").lower()]
    then_action = then_action or first_action
    for a in (first_action, then_action):
        if a not in ACTIONS:
            raise BadRequest("InvalidArgument", f"invalid action {a!r} (one of {', '.join(ACTIONS)})")
    cid = _constraint_id(cib, cid, f"order-{first}-{then}-{kind.lower()}")
    attrs = {"id": cid, "first": first, "then": then, "kind": kind}
    if first_action != "start" or then_action != "start":
        attrs["first-action"] = first_action
        attrs["then-action"] = then_action
    if symmetrical is not None:
        attrs["symmetrical"] = "true" if symmetrical else "false"
    ET.SubElement(section(cib, "constraints"), "rsc_order", attrs)
    return cid


def delete_constraint(cib: ET.Element, cid: str, now: int = 0) -> None:
    """Remove the constraint with this id (any kind)."""
    cons = section(cib, "constraints")
    for c in list(cons):
        if c.get("id") == cid:
            cons.remove(c)
            return
    known = ", ".join(sorted(c.get("id", "") for c in cons)) or "none"
    raise BadRequest("UnknownConstraint", f"no constraint '{cid}' (constraints: {known})")


def parse_pairs(items: Sequence[str], what: str = "parameter") -> Dict[str, str]:
    """["name=value", ...] -> dict, for the command line and D-Bus callers."""
    out: Dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise BadRequest("InvalidArgument", f"{what} {item!r} is not NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


__all__ = ["create_primitive", "update_resource", "delete_resource", "create_group", "group_add",
           "group_remove", "delete_group", "add_location", "add_colocation", "add_order",
           "delete_constraint", "parse_pairs"]
