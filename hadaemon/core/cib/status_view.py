"""The cluster status as a JSON-able dict (what Crm1.Status and `hactl status` show), from a CIB.

Where each resource runs comes from the status section's operation history, read by the policy
engine's own unpacking (hadaemon.core.policy.unpack), so the view and the scheduler agree.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping

from hadaemon.core.cib.loader import parse_cib
from hadaemon.core.cib.model import Group, Primitive
from hadaemon.core.policy.status import failcount
from hadaemon.core.policy.unpack import unpack
from hadaemon.core.policy.working import PROMOTED

NODE_STATES = ("online", "offline", "standby", "unclean", "pending")


def cib_epoch(root_attrs: Mapping[str, str]) -> str:
    """"admin_epoch:epoch:num_updates" of a <cib> element's attributes."""
    return ":".join(str(root_attrs.get(k, "0") or "0") for k in ("admin_epoch", "epoch", "num_updates"))


def root_attributes(xml_text) -> Dict[str, str]:
    """The attributes of the document's root element (read without parsing the rest)."""
    from xml.parsers import expat

    attrs: Dict[str, str] = {}
    parser = expat.ParserCreate()

    def start(tag, a):
        if not attrs:
            attrs.update(a)
        raise StopIteration

    parser.StartElementHandler = start
    try:
        parser.Parse(xml_text.encode() if isinstance(xml_text, str) else xml_text, True)
    except (StopIteration, expat.ExpatError):
        pass
    return attrs


def _node_state(node, members) -> str:
    if node.unclean:
        return "unclean"
    online = node.online
    if members is not None:
        if node.uname not in members:
            return "offline"
        if not online:
            return "pending"  # a member whose CRM has not joined yet
    if not online:
        return "pending" if node.pending else "offline"
    if node.pending:
        return "pending"
    if node.standby:
        return "standby"
    return "online"


def _prim_role(r) -> str:
    if r.failed:
        return "Failed"
    return "Started" if r.running_on else "Stopped"


def _failcounts(ws, rscs: Iterable) -> Dict[str, int]:
    out: Dict[str, int] = {}
    nodes = [n for n in ws.nodes if any(k.startswith("fail-count-") for k in n.attrs)]
    for r in rscs:
        for node in nodes:
            n = failcount(ws, r, node)
            if n > 0:
                out[node.uname] = min(1000000, out.get(node.uname, 0) + n)
    return out


def _target_role(meta: Mapping[str, str]) -> str:
    return meta.get("target-role", meta.get("target_role", "")) or ""


def _managed(meta: Mapping[str, str]) -> bool:
    value = meta.get("is-managed", meta.get("is_managed"))
    return value is None or value.strip().lower() in ("true", "yes", "1", "on", "y")


def _primitive_entry(ws, prim: Primitive, parent: str = "") -> dict:
    r = ws.prims.get(prim.id)
    nodes = [n.uname for n in r.running_on] if r is not None else []
    meta = r.meta if r is not None else {}
    entry = {"id": prim.id, "kind": "primitive", "class": prim.cls, "provider": prim.provider or "",
             "type": prim.type, "members": [], "role": _prim_role(r) if r is not None else "Stopped",
             "nodes": nodes, "failcounts": _failcounts(ws, [r] if r is not None else []),
             "managed": r.managed if r is not None else _managed(meta), "target_role": _target_role(meta)}
    if parent:
        entry["parent"] = parent
    return entry


def _group_role(members: List[dict]) -> str:
    roles = [m["role"] for m in members]
    if "Failed" in roles:
        return "Failed"
    if roles and all(r == "Started" for r in roles):
        return "Started"
    if "Started" in roles:
        return "Partial"
    return "Stopped"


def _combined_nodes(members: List[dict]) -> List[str]:
    out: List[str] = []
    for m in members:
        for n in m["nodes"]:
            if n not in out:
                out.append(n)
    return out


def _group_entries(ws, group: Group, parent: str = "") -> List[dict]:
    members = [_primitive_entry(ws, m, group.id) for m in group.members]
    wg = ws.groups.get(group.id)
    meta = wg.meta if wg is not None else {}
    entry = {"id": group.id, "kind": "group", "class": "", "provider": "", "type": "",
             "members": [m.id for m in group.members], "role": _group_role(members),
             "nodes": _combined_nodes(members),
             "failcounts": _failcounts(ws, [ws.prims[m.id] for m in group.members if m.id in ws.prims]),
             "managed": all(m["managed"] for m in members) if members else _managed(meta),
             "target_role": _target_role(meta)}
    if parent:
        entry["parent"] = parent
    return [entry] + members


def _clone_entries(ws, clone) -> List[dict]:
    """A clone: one entry with every node an instance runs on (instances are not listed apart)."""
    child = clone.child
    instances = [r for r in ws.prims.values() if getattr(getattr(r, "clone", None), "id", None) == clone.id]
    nodes: List[str] = []
    for r in instances:
        for n in r.running_on:
            if n.uname not in nodes:
                nodes.append(n.uname)
    promoted: List[str] = []
    if getattr(clone, "promotable", False):
        for r in instances:
            if r.role == PROMOTED:
                promoted.extend(n.uname for n in r.running_on if n.uname not in promoted)
    prim = child if isinstance(child, Primitive) else (child.members[0] if child.members else None)
    meta = getattr(ws.clones.get(clone.id), "meta", {}) if hasattr(ws, "clones") else {}
    entry = {"id": clone.id, "kind": "clone", "class": prim.cls if prim else "",
             "provider": (prim.provider or "") if prim else "", "type": prim.type if prim else "",
             "members": [child.id], "role": "Started" if nodes else "Stopped", "nodes": nodes,
             "failcounts": _failcounts(ws, instances), "managed": all(r.managed for r in instances) if instances
             else _managed(meta), "target_role": _target_role(meta)}
    if getattr(clone, "promotable", False):
        entry["promoted"] = promoted  # the nodes where an instance is promoted (a subset of nodes)
    return [entry]


def status_dict(cib_xml, *, local_node: str = "", dc: str | None = None, quorum: bool | None = None,
                members: Iterable[str] | None = None, now: int | None = None,
                transition: Mapping[str, object] | None = None) -> dict:
    """The status of the cluster from the CIB text. members (the current membership, when known)
    overrides the CIB's idea of who is online; dc and quorum default to what the CIB records."""
    cib = parse_cib(cib_xml, "<cib>")
    ws = unpack(cib, now)
    root = root_attributes(cib_xml)
    member_set = set(members) if members is not None else None
    if dc is None:
        node = ws.node_by_id.get(cib.dc_uuid or "") or ws.node_by_uname.get(cib.dc_uuid or "")
        dc = node.uname if node is not None else ""
    nodes = {}
    for node in ws.nodes:
        nodes[node.uname] = {
            "state": _node_state(node, member_set), "standby": bool(node.standby),
            "maintenance": bool(node.maintenance),
            "attributes": {k: v for k, v in sorted(node.attrs.items()) if not k.startswith("#")},
        }
    resources: List[dict] = []
    for res in cib.resources:
        if isinstance(res, Primitive):
            resources.append(_primitive_entry(ws, res))
        elif isinstance(res, Group):
            resources.extend(_group_entries(ws, res))
        elif hasattr(res, "child"):
            resources.extend(_clone_entries(ws, res))
    known = {r["id"] for r in resources}
    for rid, r in sorted(ws.prims.items()):  # history of resources no longer configured, still active
        if rid not in known and getattr(r, "orphan", False) and r.running_on:
            resources.append({"id": rid, "kind": "primitive", "class": "", "provider": "", "type": "",
                              "members": [], "role": "Orphan", "nodes": [n.uname for n in r.running_on],
                              "failcounts": _failcounts(ws, [r]), "managed": r.managed, "target_role": ""})
    trans = dict(transition) if transition else {"id": 0, "state": "idle"}
    return {"local_node": local_node, "dc": dc, "quorum": cib.have_quorum if quorum is None else bool(quorum),
            "cib_epoch": cib_epoch(root), "nodes": nodes, "resources": resources, "transition": trans}
