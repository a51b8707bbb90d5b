"""What a clone instance's, a notification's or a migration's operation carries besides the
primitive's own definition: the resource id the LRM knows it by and the CRM_meta_* attributes that
Pacemaker's scheduler adds (pcmk_graph_producer.c, pcmk_sched_notif.c, pcmk_sched_migration.c).

- An instance of an anonymous clone runs under the primitive's id (`st`, not `st:0`: one instance per
  node, and its history is recorded under that id as Pacemaker's controller does); an instance of a
  globally-unique clone under its own (`d:0`).
- Instance actions get the clone's meta attributes (`clone_max`, `clone_node_max`,
  `globally_unique`, `notify`, `promotable`, `promoted_max`, `promoted_node_max` and the older
  `master_max`, `master_node_max`) and `clone` (the instance number).
- With notify=true, the notify actions get `notify_type`, `notify_operation`, `notify_key_type`,
  `notify_key_operation`, and every notify, start, stop, promote and demote of the clone the lists
  `notify_{start,stop,promote,demote,active,promoted,unpromoted,master,slave}_{resource,uname}`,
  `notify_inactive_resource`, `notify_available_uname` and `notify_all_uname`: instance ids sorted,
  space separated, " " when empty (collect_notification_data + pcmk__create_notification_keys:
  the roles before the transition, the actions the transition executes).
- migrate_to / migrate_from carry `migrate_source` and `migrate_target`.

Pure: reads a hadaemon.core.policy Transition (its working set and graph).
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

__all__ = ["lrm_id", "config_id", "action_meta", "notify_key", "target_rcs", "NOTIFY_OPERATIONS"]

# the completed form of each notified operation (the post-notification's key operation)
NOTIFY_OPERATIONS = {"start": "running", "stop": "stopped", "promote": "promoted", "demote": "demoted"}
_DONE_TO_OP = {v: k for k, v in NOTIFY_OPERATIONS.items()}
_NOTIFY_KEY = re.compile(r"^(?P<rsc>.+)_(?P<type>pre|post)_notify_(?P<task>[a-z]+)_0$")


def _ws(transition):
    return getattr(transition, "_ws", None)


def config_id(rid: str, ws=None) -> str:
    """The configured primitive behind a graph resource id (`st:1` -> `st`)."""
    r = ws.prims.get(rid) if ws is not None else None
    if r is not None and r.prim is not None:
        return r.prim.id
    return rid.rsplit(":", 1)[0] if ":" in rid else rid


def lrm_id(rid: str, ws=None) -> str:
    """The id the node's LRM (and the status section) knows a graph resource by."""
    r = ws.prims.get(rid) if ws is not None else None
    if r is None or r.clone is None:
        return rid
    if r.clone.unique:
        return rid
    return r.history_name or r.base_id


def notify_key(key: str) -> Tuple[str, str, str] | None:
    """(instance, pre|post, operation) of an instance's notify action key, else None."""
    m = _NOTIFY_KEY.match(key or "")
    if m is None:
        return None
    task = m.group("task")
    return m.group("rsc"), m.group("type"), _DONE_TO_OP.get(task, task)


def _truth(value) -> str:
    return "true" if value else "false"


def _clone_meta(c, number: str | None) -> Dict[str, str]:
    meta = {k.replace("-", "_"): str(v) for k, v in (c.meta or {}).items()}
    meta.update({"clone_max": str(c.clone_max), "clone_node_max": str(c.clone_node_max),
                 "globally_unique": _truth(c.unique), "notify": _truth(c.notify)})
    if c.promotable:
        meta.update({"promotable": "true", "promoted_max": str(c.promoted_max),
                     "promoted_node_max": str(c.promoted_node_max), "master_max": str(c.promoted_max),
                     "master_node_max": str(c.promoted_node_max)})
    if number is not None:
        meta["clone"] = number
    return meta


def _words(entries: List[Tuple[str, str | None]], with_nodes: bool = True) -> Tuple[str, str]:
    """expand_list: sorted by instance id then node, one entry per instance; " " when empty."""
    rscs: List[str] = []
    nodes: List[str] = []
    last = None
    for rid, node in sorted(entries, key=lambda e: (e[0], e[1] or "")):
        if with_nodes and node is None:
            continue
        if rid == last:
            continue
        last = rid
        rscs.append(rid)
        if node:
            nodes.append(node)
    return (" ".join(rscs) or " "), (" ".join(nodes) or " ")


def _notify_lists(ws, graph, c, unclean_stops=()) -> Dict[str, str]:
    from hadaemon.core.policy.working import PROMOTED, STARTED, STOPPED, UNPROMOTED, leaves

    prims = leaves(c)
    ids = {r.id for r in prims}
    state: Dict[str, List[Tuple[str, str | None]]] = {k: [] for k in ("active", "inactive", "promoted",
                                                                      "unpromoted")}
    for r in prims:
        node = r.running_on[0].uname if r.running_on else None
        entry = (r.id, node)
        if r.role == STOPPED or (r.role not in (STARTED, UNPROMOTED, PROMOTED)):
            state["inactive"].append(entry)
        elif r.role == STARTED:
            state["active"].append(entry)
        elif r.role == UNPROMOTED:
            state["unpromoted"].append(entry)
            state["active"].append(entry)
        else:
            state["promoted"].append(entry)
            state["active"].append(entry)
    activity: Dict[str, List[Tuple[str, str | None]]] = {k: [] for k in NOTIFY_OPERATIONS}
    for a in graph.actions:
        if a.rsc in ids and not a.pseudo and a.node and a.task in activity:
            activity[a.task].append((a.rsc, a.node))
    activity["stop"].extend(x for x in unclean_stops if x[0] in ids)  # stopping where they cannot be fenced
    keys: Dict[str, str] = {}
    for task in ("stop", "start", "demote", "promote"):
        keys[f"notify_{task}_resource"], keys[f"notify_{task}_uname"] = _words(activity[task])
    keys["notify_active_resource"], keys["notify_active_uname"] = _words(state["active"])
    for role, old in (("unpromoted", "slave"), ("promoted", "master")):
        rs, ns = _words(state[role])
        keys[f"notify_{role}_resource"] = keys[f"notify_{old}_resource"] = rs
        keys[f"notify_{role}_uname"] = keys[f"notify_{old}_uname"] = ns
    keys["notify_inactive_resource"] = _words(state["inactive"], with_nodes=False)[0]
    keys["notify_available_uname"] = " ".join(sorted(c.allowed)) or " "
    keys["notify_all_uname"] = " ".join(n.uname for n in ws.nodes) or " "
    return keys


def action_meta(transition) -> Dict[int, Dict[str, str]]:
    """Extra CRM_meta_* attributes (names without the prefix) per graph action id."""
    ws = _ws(transition)
    graph = transition.graph
    out: Dict[int, Dict[str, str]] = {}
    if ws is None:
        return out
    lists: Dict[str, Dict[str, str]] = {}
    for a in graph.actions:
        meta: Dict[str, str] = {}
        if a.migrate_source and a.migrate_target and a.task in ("migrate_to", "migrate_from"):
            meta["migrate_source"] = a.migrate_source
            meta["migrate_target"] = a.migrate_target
        r = ws.prims.get(a.rsc) if a.rsc else None
        c = r.clone if r is not None else None
        if c is not None and not a.pseudo:
            number = a.rsc.rsplit(":", 1)[1] if ":" in a.rsc else None
            if r.group is not None and ":" in r.group.id:
                number = r.group.id.rsplit(":", 1)[1]
            meta.update(_clone_meta(c, number))
            if c.notify and a.task in ("notify", "start", "stop", "promote", "demote"):
                if c.id not in lists:
                    lists[c.id] = _notify_lists(ws, graph, c, getattr(transition, "unclean_stops", ()))
                meta.update(lists[c.id])
                parsed = notify_key(a.key) if a.task == "notify" else None
                if parsed is not None:
                    _rid, kind, op = parsed
                    meta.update({"notify_type": kind, "notify_operation": op, "notify_key_type": kind,
                                 "notify_key_operation": op if kind == "pre" else NOTIFY_OPERATIONS.get(op, op)})
        if meta:
            out[a.id] = meta
    return out


def target_rcs(transition, cib) -> Dict[int, int]:
    """Expected results the graph leaves implicit: a recurring monitor configured for the promoted
    role expects OCF_RUNNING_PROMOTED (8), as Pacemaker's CRM_meta_op_target_rc for it."""
    ws = _ws(transition)
    prims = cib.primitives()
    out: Dict[int, int] = {}
    for a in transition.graph.actions:
        if a.task != "monitor" or a.interval_ms <= 0 or not a.rsc or a.pseudo or a.target_rc is not None:
            continue
        prim = prims.get(config_id(a.rsc, ws))
        if prim is None:
            continue
        for op in prim.ops:
            if op.name == "monitor" and op.interval_ms == a.interval_ms \
                    and (op.role or "").lower() in ("promoted", "master"):
                out[a.id] = 8
    return out
