"""Stage 1, unpack: cluster options, node states and resources (history: see status.py)."""
from __future__ import annotations

from hadaemon.core.cib.loader import parse_interval_ms
from hadaemon.core.cib.model import Cib, Clone, Group, NodeState, Primitive
from hadaemon.core.cib.rules import resolve_sets
from hadaemon.core.policy.status import failcount, unpack_status  # noqa: F401  (re-exported)
from hadaemon.core.policy.resources import WClone, WGroup, WNode, WRsc, natural_key, truth
from hadaemon.core.policy.working import (  # noqa: F401 (re-exported)
    WorkingSet, new_instance, resource_meta, setup_primitive,
)


def unpack(cib: Cib, now: int | None) -> WorkingSet:
    ws = WorkingSet(cib, now)
    _unpack_nodes(ws)
    _unpack_resources(ws)
    unpack_status(ws)
    for node in ws.nodes:
        node.freeze()
    for r in ws.prims.values():
        r.shown_managed = r.managed  # what the status display shows (before scheduling decisions)
    return ws


def _unpack_nodes(ws: WorkingSet) -> None:
    cib = ws.cib
    for n in cib.nodes:
        node = WNode(n.id, n.uname)
        attrs = resolve_sets(n.attr_sets, now=ws.now)
        node.attrs = attrs
        if ws.placement_strategy != "default":
            from hadaemon.core.policy.working import _utilization_value
            node.capacity = {k: _utilization_value(v) for k, v in resolve_sets(n.utilization, now=ws.now).items()}
        ws.nodes.append(node)
        ws.node_by_uname[n.uname] = node
        ws.node_by_id[n.id] = node
        if ws.startup_fencing:
            node.unclean = True
    ws.nodes.sort(key=lambda x: natural_key(x.uname))
    states = {s.id: s for s in cib.node_states}
    for node in ws.nodes:
        st = states.get(node.id)
        if st is None:
            for s in cib.node_states:
                if s.uname == node.uname:
                    st = s
                    break
        attrs = dict(node.attrs)
        if st is not None:
            resolve_sets(st.transient_sets, into=attrs, now=ws.now)  # transient attributes win
            for k, v in resolve_sets(st.transient_sets, now=ws.now).items():
                attrs[k] = v
        if st is not None and st.transient_utilization and ws.placement_strategy != "default":
            from hadaemon.core.policy.working import _utilization_value
            for k, v in resolve_sets(st.transient_utilization, now=ws.now).items():
                node.capacity[k] = _utilization_value(v)
        attrs["#uname"] = node.uname
        attrs["#id"] = node.id
        attrs["#kind"] = "cluster"
        node.is_dc = cib.dc_uuid is not None and cib.dc_uuid == node.id
        attrs["#is_dc"] = "true" if node.is_dc else "false"
        node.attrs = attrs
        node.standby = truth(attrs.get("standby"))
        node.maintenance = truth(attrs.get("maintenance")) or ws.maintenance_mode
        if st is None:
            continue
        node.unseen = False
        node.unclean = False
        node.has_state = True
        shutdown = attrs.get("shutdown")
        node.shutdown = bool(shutdown) and shutdown != "0"
        node.expected_up = (st.expected or "") == "member"
        if ws.stonith_enabled:
            _online_fencing(ws, node, st)
        else:
            _online_no_fencing(ws, node, st)
        if not node.online:
            node.shutdown = False if not node.unclean else node.shutdown


def _member(value: str | None) -> bool:
    if value is None:
        return False
    if value.isdigit():
        return int(value) > 0
    return truth(value)


def _peer(value: str | None) -> bool:
    if value is None:
        return False
    if value.isdigit():
        return int(value) > 0
    return value.lower() == "online"


_BOOL_TRUE = ("true", "on", "yes", "y", "1")
_BOOL_FALSE = ("false", "off", "no", "n", "0")


def _when(value: str | None, now: int | None, online_word: str | None) -> int:
    """A node_state's in_ccm / crmd as Pacemaker's unpack_node_member / unpack_node_online read them: an
    epoch time (since 2.1.7) or the older words (in_ccm true: now; crmd online: 1); 0 when not."""
    if value is None:
        return 0
    text = value.strip().lower()
    if online_word is not None:
        if text == online_word:
            return 1
        return int(text) if text.isdigit() else 0
    if text in _BOOL_TRUE:
        return now if now is not None else 0
    if text in _BOOL_FALSE:
        return 0
    return int(text) if text.isdigit() else 0


def _pending_too_long(ws: WorkingSet, in_ccm: str | None, crmd: str | None) -> bool:
    """node-pending-timeout (Pacemaker 2.1.7+, pending_too_long): a node that joined the membership at
    in_ccm=<time> but whose controller has not come up (crmd 0 / offline) for longer than the timeout is
    fenced. With the older boolean in_ccm the membership time is now, so it never times out."""
    text = ws.cib.option("node-pending-timeout")
    timeout_ms = parse_interval_ms(text) if text else 0
    if not timeout_ms or ws.now is None:
        return False
    when_member = _when(in_ccm, ws.now, None)
    when_online = _when(crmd, ws.now, "online")
    return when_member > 0 and when_online <= 0 and ws.now >= when_member + timeout_ms // 1000


def _online_fencing(ws: WorkingSet, node: WNode, st: NodeState) -> None:
    in_cluster = st.in_ccm
    join = (st.join or "").lower()
    expected = st.expected
    terminate = node.attrs.get("terminate")
    terminated = bool(terminate) and terminate not in ("0", "false")
    if node.shutdown:
        node.online = _peer(st.crmd)
        return
    if in_cluster is None:
        ws.fence_node(node, "peer has not been seen by the cluster")
        return
    # Pacemaker 3.0: a cluster member counts as online even when unclean or pending
    node.online = _member(in_cluster)
    if join == "banned":
        ws.fence_node(node, "peer failed Pacemaker membership criteria")
    elif terminated:
        if not _member(in_cluster) and not _peer(st.crmd) and join == "down":
            node.online = False
            return
        ws.fence_node(node, "fencing was requested")
    elif expected is None or expected.lower() == "down":
        if _pending_too_long(ws, in_cluster, st.crmd):
            ws.fence_node(node, "peer pending timed out on joining the process group")
        elif _member(in_cluster) or _peer(st.crmd):
            node.standby = True
            node.pending = True
    elif not _member(in_cluster):
        ws.fence_node(node, "peer is no longer part of the cluster")
    elif not _peer(st.crmd):
        ws.fence_node(node, "peer process is no longer available")
    elif join == "member":
        pass
    elif join in ("pending", "down"):
        node.standby = True
        node.pending = True
    else:
        ws.fence_node(node, "peer was in an unknown state")


def _online_no_fencing(ws: WorkingSet, node: WNode, st: NodeState) -> None:
    if not _member(st.in_ccm):
        return
    if _peer(st.crmd):
        if (st.join or "").lower() == "member":
            node.online = True
    elif not node.expected_up:
        return
    else:
        ws.fence_node(node, "peer is unexpectedly down")


_meta = resource_meta


def _unfencing_enabled(ws: WorkingSet) -> bool:
    """pcmk_sched_enable_unfencing: fencing is enabled and a fence device provides=unfencing or a
    resource requires=unfencing (known before any resource's default requires is chosen)."""
    if not ws.stonith_enabled:
        return False
    for res in ws.cib.resources:
        outer = _meta(ws, res.meta_sets, None) if not isinstance(res, Primitive) else None
        child = res.child if isinstance(res, Clone) else res
        inner = _meta(ws, child.meta_sets, outer) if isinstance(child, Group) else outer
        prims = child.members if isinstance(child, Group) else (child,)
        for prim in prims:
            meta = _meta(ws, prim.meta_sets, inner, prim)
            if prim.cls == "stonith" and (meta.get("provides") or "").lower() == "unfencing":
                return True
            if prim.cls != "stonith" and (meta.get("requires") or "").lower() == "unfencing":
                return True
    return False


def _unpack_resources(ws: WorkingSet) -> None:
    ws.enable_unfencing = _unfencing_enabled(ws)
    for res in ws.cib.resources:
        if isinstance(res, Group):
            g = WGroup(res.id, _meta(ws, res.meta_sets, None))
            ws.groups[g.id] = g
            for m in res.members:
                r = WRsc(m.id, m, _meta(ws, m.meta_sets, g.meta, m), g)
                setup_primitive(ws, r)
                g.members.append(r)
                ws.prims[r.id] = r
            if ws.symmetric:
                g.allowed = {n.uname: 0 for n in ws.nodes}
            ws.resources.append(g)
        elif isinstance(res, Clone):
            meta = _meta(ws, res.meta_sets, None)
            meta.setdefault("resource-stickiness", "1")  # clones are slightly sticky by default
            c = WClone(res.id, meta, res.child.id, len(ws.nodes))
            c.promotable = res.promotable
            if isinstance(res.child, Group):
                c.group_cfg = res.child
                for m in res.child.members:
                    ws.clone_of[m.id] = c
            ws.clones[c.id] = c
            ws.clone_of[res.child.id] = c
            if ws.symmetric:
                c.allowed = {n.uname: 0 for n in ws.nodes}
            for _i in range(max(1, c.clone_max)):
                r = new_instance(ws, c, res.child)
                if c.clone_max <= 0:
                    r.removed = True
                    for m in getattr(r, "members", ()):
                        m.removed = True
            ws.resources.append(c)
        else:
            r = WRsc(res.id, res, _meta(ws, res.meta_sets, None, res))
            setup_primitive(ws, r)
            ws.prims[r.id] = r
            ws.resources.append(r)
    ws.resources.sort(key=lambda x: -x.priority)



