"""Pure CIB edits (what crm_resource, crm_attribute and cibadmin do), on an ElementTree <cib>.

Each edit mutates the <cib> element it is given (callers pass a copy) or raises
BadRequest(kind, message) and leaves it as it was. Resource, group and constraint edits live in
edit_resources.py and are re-exported here; shared helpers in edit_base.py.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterator, List

from hadaemon.core.cib.dates import add_duration, format_time, parse_duration
from hadaemon.core.cib.edit_base import (
    ROLES, _node, _node_element, _set_in_set, _set_nvpair, find_resource, node_names, section, unique_id, valid_id,
)
from hadaemon.core.cib.edit_resources import (
    add_colocation, add_location, add_order, create_group, create_primitive, delete_constraint,
    delete_group, delete_resource, group_add, group_remove, parse_pairs, update_resource,
)
from hadaemon.core.errors import BadRequest

__all__ = [
    "move", "ban", "clear", "set_standby", "set_maintenance", "set_node_attribute", "set_cluster_option",
    "set_target_role", "set_managed", "set_meta", "cleanup", "find_resource", "node_names",
    "parse_duration", "format_time", "unique_id", "valid_id", "parse_pairs", "section",
    "create_primitive", "update_resource", "delete_resource", "create_group", "group_add",
    "group_remove", "delete_group", "add_location", "add_colocation", "add_order", "delete_constraint",
]

# --- time (lifetimes of move/ban) ----------------------------------------------------------------
def _lifetime_end(lifetime: str, now: int) -> str:
    dur = parse_duration(lifetime)
    if dur is None or dur == (0, 0):
        raise BadRequest("InvalidArgument", f"invalid lifetime {lifetime!r}: an ISO 8601 duration such as "
                                            "PT30M, PT2H, P1D or P1W")
    return format_time(add_duration(now, dur))


# --- move / ban / clear (crm_resource --move, --ban, --clear) ------------------------------------
def _constraints(cib: ET.Element) -> ET.Element:
    return section(cib, "constraints")


def _remove_id(cib: ET.Element, cid: str) -> bool:
    cons = _constraints(cib)
    for c in list(cons):
        if c.get("id") == cid:
            cons.remove(c)
            return True
    return False


def _location_node(loc: ET.Element) -> str | None:
    """The node a cli- constraint names: node=, or the #uname expression of its rule."""
    if loc.get("node"):
        return loc.get("node")
    for rule in loc.findall("rule"):
        for e in rule.findall("expression"):
            if e.get("attribute") == "#uname" and e.get("operation") == "eq":
                return e.get("value")
    return None


def _cli_location(cib: ET.Element, cid: str, rsc: str, node: str, score: str, role: str,
                  end: str | None, rule_id: str, expr_id: str, date_id: str) -> None:
    loc = ET.SubElement(_constraints(cib), "rsc_location", {"id": cid, "rsc": rsc, "role": role})
    if end is None:
        loc.set("node", node)
        loc.set("score", score)
        return
    rule = ET.SubElement(loc, "rule", {"id": rule_id, "score": score, "boolean-op": "and"})
    ET.SubElement(rule, "expression", {"id": expr_id, "attribute": "#uname", "operation": "eq",
                                       "value": node, "type": "string"})
    ET.SubElement(rule, "date_expression", {"id": date_id, "operation": "lt", "end": end})


def _check_movable(cib: ET.Element, rsc: str) -> ET.Element:
    el, parent = find_resource(cib, rsc)
    if parent.tag == "group":
        raise BadRequest("InvalidArgument", f"'{rsc}' is a member of group '{parent.get('id')}': "
                                            f"move, ban or clear the group '{parent.get('id')}' instead")
    return el


def move(cib: ET.Element, rsc: str, node: str, now: int, lifetime: str = "",
         running_on: List[str] | None = None) -> None:
    """crm_resource --move RSC --node NODE [--lifetime]: clear RSC's earlier cli-prefer and its ban on
    NODE, then add cli-prefer-RSC (INFINITY on NODE, with a date_expression when a lifetime is given).
    running_on (from the status, when the caller knows it) refuses a move to where RSC already runs alone."""
    _check_movable(cib, rsc)
    node = _node(cib, node)
    if running_on is not None and list(running_on) == [node]:
        raise BadRequest("Conflict", f"'{rsc}' is already active on {node} (a move needs another node)")
    end = _lifetime_end(lifetime, now) if lifetime else None
    _remove_id(cib, f"cli-prefer-{rsc}")
    _remove_id(cib, f"cli-ban-{rsc}-on-{node}")
    _cli_location(cib, f"cli-prefer-{rsc}", rsc, node, "INFINITY", "Started", end,
                  f"cli-prefer-rule-{rsc}", f"cli-prefer-expr-{rsc}", f"cli-prefer-lifetime-end-{rsc}")


def ban(cib: ET.Element, rsc: str, node: str, now: int, lifetime: str = "") -> None:
    """crm_resource --ban RSC --node NODE [--lifetime]: cli-ban-RSC-on-NODE, -INFINITY on NODE (a
    preference for NODE from an earlier move is dropped, as it would contradict the ban)."""
    _check_movable(cib, rsc)
    node = _node(cib, node)
    end = _lifetime_end(lifetime, now) if lifetime else None
    cid = f"cli-ban-{rsc}-on-{node}"
    _remove_id(cib, cid)
    prefer = next((c for c in _constraints(cib) if c.get("id") == f"cli-prefer-{rsc}"), None)
    if prefer is not None and _location_node(prefer) == node:
        _remove_id(cib, f"cli-prefer-{rsc}")
    _cli_location(cib, cid, rsc, node, "-INFINITY", "Started", end, f"{cid}-rule", f"{cid}-expr",
                  f"{cid}-lifetime")


def clear(cib: ET.Element, rsc: str, node: str = "", now: int = 0) -> int:
    """crm_resource --clear RSC [--node NODE]: remove cli-prefer-RSC (on NODE) and cli-ban-RSC-on-*
    (on NODE). Returns how many constraints were removed (0 is not an error, as in Pacemaker)."""
    _check_movable(cib, rsc)
    if node:
        node = _node(cib, node)
    removed = 0
    cons = _constraints(cib)
    for c in list(cons):
        if c.tag != "rsc_location" or c.get("rsc") != rsc:
            continue
        cid = c.get("id") or ""
        if cid == f"cli-prefer-{rsc}" or cid.startswith(f"cli-ban-{rsc}-on-"):
            if node and _location_node(c) != node:
                continue
            cons.remove(c)
            removed += 1
    return removed


# --- node and cluster attributes (crm_attribute, crm_standby) -------------------------------------
def set_node_attribute(cib: ET.Element, node: str, name: str, value: str | None, now: int = 0) -> None:
    """A permanent node attribute in configuration/nodes/node/instance_attributes (None deletes it)."""
    if not name or not name.isprintable():
        raise BadRequest("InvalidArgument", f"invalid attribute name {name!r}")
    uname = _node(cib, node)
    el = _node_element(cib, uname)
    _set_nvpair(cib, el, "instance_attributes", f"nodes-{el.get('id')}", name, value)


def set_standby(cib: ET.Element, node: str, on: bool, now: int = 0) -> None:
    """crm_standby -v on|off: the node attribute standby."""
    set_node_attribute(cib, node, "standby", "on" if on else "off", now)


def set_cluster_option(cib: ET.Element, name: str, value: str | None, now: int = 0) -> None:
    """crm_attribute -t crm_config: a cluster option in cluster_property_set cib-bootstrap-options."""
    if not name or not name.isprintable() or " " in name:
        raise BadRequest("InvalidArgument", f"invalid cluster option name {name!r}")
    crm = section(cib, "crm_config")
    sets = crm.findall("cluster_property_set")
    boot = next((s for s in sets if s.get("id") == "cib-bootstrap-options"), None)
    for s in sets:
        if s is boot:
            continue
        for nv in s.findall("nvpair"):
            if nv.get("name") == name:
                s.remove(nv)  # the one value is the one set here
    if boot is None:
        if value is None:
            return
        boot = ET.Element("cluster_property_set", {"id": "cib-bootstrap-options"})
        crm.insert(0, boot)
    _set_in_set(cib, boot, name, value)


def set_maintenance(cib: ET.Element, node: str, on: bool, now: int = 0) -> None:
    """Maintenance of one node (node attribute maintenance) or, with node "", of the whole cluster
    (cluster option maintenance-mode): resources there are left alone, neither started nor stopped."""
    if node:
        set_node_attribute(cib, node, "maintenance", "true" if on else "false", now)
    else:
        set_cluster_option(cib, "maintenance-mode", "true" if on else "false", now)


# --- resource meta attributes (crm_resource --meta) -----------------------------------------------
def set_meta(cib: ET.Element, rsc: str, name: str, value: str | None, now: int = 0) -> None:
    """A meta attribute of a resource (None deletes it), like crm_resource --meta -p NAME -v VALUE."""
    el, _parent = find_resource(cib, rsc)
    if not name or not name.isprintable() or " " in name:
        raise BadRequest("InvalidArgument", f"invalid meta attribute name {name!r}")
    _set_nvpair(cib, el, "meta_attributes", f"{el.get('id')}-meta_attributes", name, value)


def set_target_role(cib: ET.Element, rsc: str, role: str, now: int = 0) -> None:
    """Enable (Started) or disable (Stopped) a resource through its target-role meta attribute; a
    group's members lose their own target-role so the group's applies (like crm_resource does)."""
    canon = {r.lower(): r for r in ROLES}
    if role.lower() not in canon:
        raise BadRequest("InvalidArgument", f"invalid role {role!r} (one of {', '.join(ROLES)})")
    el, _parent = find_resource(cib, rsc)
    set_meta(cib, rsc, "target-role", canon[role.lower()], now)
    if el.tag == "group":
        for member in el.findall("primitive"):
            _set_nvpair(cib, member, "meta_attributes", f"{member.get('id')}-meta_attributes",
                        "target-role", None)


def set_managed(cib: ET.Element, rsc: str, managed: bool, now: int = 0) -> None:
    """is-managed=true|false: an unmanaged resource is monitored but never started or stopped."""
    set_meta(cib, rsc, "is-managed", "true" if managed else "false", now)


# --- cleanup (crm_resource --cleanup / --refresh) -------------------------------------------------
def _members(cib: ET.Element, rsc: str) -> List[str]:
    el, _parent = find_resource(cib, rsc)
    ids = [rsc]
    for child in el.iter():
        if child.tag == "primitive" and child.get("id") and child.get("id") != rsc:
            ids.append(child.get("id"))
    return ids


def _node_states(cib: ET.Element, node: str) -> Iterator[ET.Element]:
    st = cib.find("status")
    if st is None:
        return
    nid = node_names(cib).get(node) if node else None
    for ns in st.findall("node_state"):
        if not node or ns.get("uname") == node or ns.get("id") == nid:
            yield ns


def cleanup(cib: ET.Element, rsc: str, node: str = "", now: int = 0) -> int:
    """Forget RSC's operation history (lrm_resource) and its fail-count-* / last-failure-* attributes
    on NODE (every node when ""), so the cluster re-probes it. RSC may also be a resource that is no
    longer configured but still has history. Returns how many history entries were removed."""
    try:
        ids = _members(cib, rsc)
    except BadRequest:
        ids = [rsc]
        if not any(lr.get("id") == rsc for lr in cib.iter("lrm_resource")):
            raise
    if node:
        node = _node(cib, node)
    removed = 0
    for ns in _node_states(cib, node):
        for lrs in ns.iter("lrm_resources"):
            for lr in list(lrs):
                if lr.tag == "lrm_resource" and lr.get("id") in ids:
                    lrs.remove(lr)
                    removed += 1
        for ta in ns.findall("transient_attributes"):
            for ia in ta.findall("instance_attributes"):
                for nv in list(ia.findall("nvpair")):
                    name = nv.get("name") or ""
                    for r in ids:
                        if name in (f"fail-count-{r}", f"last-failure-{r}") or \
                                name.startswith((f"fail-count-{r}#", f"last-failure-{r}#")):
                            ia.remove(nv)
                            break
    return removed
