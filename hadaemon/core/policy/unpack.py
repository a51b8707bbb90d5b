"""Stage 1, unpack: cluster options, node states, resources and their lrm history."""
from __future__ import annotations

from typing import Dict, List

from hadaemon.core.cib import history as H
from hadaemon.core.cib.model import Cib, Group, LrmResource, NodeState
from hadaemon.core.cib.rules import resolve_sets
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.working import (
    STARTED, STOPPED, UNKNOWN, WGroup, WNode, WRsc, natural_key, truth,
)

# on-fail responses, in Pacemaker's order of severity
FAIL_IGNORE, FAIL_DEMOTE, FAIL_RECOVER, FAIL_MIGRATE, FAIL_BLOCK, FAIL_STOP, FAIL_STANDBY, FAIL_FENCE = range(8)
_ON_FAIL = {"ignore": FAIL_IGNORE, "demote": FAIL_DEMOTE, "restart": FAIL_RECOVER,
            "block": FAIL_BLOCK, "stop": FAIL_STOP, "standby": FAIL_STANDBY, "fence": FAIL_FENCE}


class WorkingSet:
    """Everything one scheduler run knows and decides."""

    def __init__(self, cib: Cib, now: int | None):
        self.cib = cib
        self.now = now
        self.nodes: List[WNode] = []
        self.node_by_uname: Dict[str, WNode] = {}
        self.node_by_id: Dict[str, WNode] = {}
        self.resources: list = []  # top-level WRsc / WGroup, allocation order
        self.prims: Dict[str, WRsc] = {}
        self.groups: Dict[str, WGroup] = {}
        self.scores: list = []
        self.actions = None  # filled by the actions stage
        self.fence_ops: List = []
        opt = cib.option
        self.stonith_enabled = truth(opt("fencing-enabled"), True)
        self.symmetric = truth(opt("symmetric-cluster"), True)
        self.no_quorum_policy = (opt("no-quorum-policy") or "stop").lower()
        self.have_quorum = cib.have_quorum
        self.stop_orphans = truth(opt("stop-removed-resources"), True)
        self.start_failure_fatal = truth(opt("start-failure-is-fatal"), True)
        self.startup_fencing = self.stonith_enabled and truth(opt("startup-fencing"), True)
        self.maintenance_mode = truth(opt("maintenance-mode"), False)
        self.stop_all = truth(opt("stop-all-resources"), False)
        self.concurrent_fencing = truth(opt("concurrent-fencing"), True)
        self.fence_action = opt("fencing-action") or "reboot"
        self.default_stickiness = parse_score(opt("default-resource-stickiness"), 0) or 0
        self.have_stonith_resource = False
        self.fence_seq = 0  # order in which nodes were found to need fencing

    def can_fence(self, node: WNode | None) -> bool:
        if not self.stonith_enabled or not self.have_stonith_resource:
            return False
        if self.have_quorum or self.no_quorum_policy == "ignore":
            return True
        return node is not None and node.online

    def fence_node(self, node: WNode, reason: str) -> None:
        """Mark a node unclean; the first reason given is the one reported."""
        if not node.unclean:
            node.unclean = True
        if node.fence_reason is None:
            node.fence_reason = reason
            self.fence_seq += 1
            node.fence_seq = self.fence_seq

    def location(self, rsc, node: WNode | None, score: int) -> None:
        """Add a score for rsc on one node (or on every node when node is None)."""
        targets = rsc.members if rsc.is_group else [rsc]
        for r in targets:
            for n in ([node] if node is not None else self.nodes):
                r.allowed[n.uname] = add_scores(r.allowed.get(n.uname, 0) if n.uname in r.allowed
                                                else 0, score)


def unpack(cib: Cib, now: int | None) -> WorkingSet:
    ws = WorkingSet(cib, now)
    _unpack_nodes(ws)
    _unpack_resources(ws)
    _unpack_status(ws)
    for node in ws.nodes:
        node.freeze()
    return ws


def _unpack_nodes(ws: WorkingSet) -> None:
    cib = ws.cib
    for n in cib.nodes:
        node = WNode(n.id, n.uname)
        attrs = resolve_sets(n.attr_sets)
        node.attrs = attrs
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
            resolve_sets(st.transient_sets, into=attrs)  # transient attributes win
            for k, v in resolve_sets(st.transient_sets).items():
                attrs[k] = v
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
        if _member(in_cluster) or _peer(st.crmd):
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


def _meta(ws: WorkingSet, sets, parent_meta: Dict[str, str] | None) -> Dict[str, str]:
    meta = resolve_sets(sets)
    if parent_meta:
        for k, v in parent_meta.items():
            meta.setdefault(k, v)
    resolve_sets(ws.cib.rsc_defaults, into=meta)
    return meta


def _setup_prim(ws: WorkingSet, r: WRsc) -> None:
    meta = r.meta
    stick = meta.get("resource-stickiness", meta.get("resource_stickiness"))
    r.stickiness = ws.default_stickiness if stick is None else (parse_score(stick, 0) or 0)
    thr = meta.get("migration-threshold", meta.get("migration_threshold"))
    r.migration_threshold = INFINITY if thr is None else (parse_score(thr, INFINITY) or 0)
    ft = meta.get("failure-timeout", meta.get("failure_timeout"))
    from hadaemon.core.cib.loader import parse_interval_ms
    r.failure_timeout = (parse_interval_ms(ft) or 0) // 1000 if ft else 0
    r.is_stonith = r.cls == "stonith"
    if r.is_stonith:
        ws.have_stonith_resource = True
    req = (meta.get("requires") or "").lower()
    if not req:
        if r.is_stonith:
            req = "quorum"
        elif ws.stonith_enabled:
            req = "fencing"
        else:
            req = "quorum"
    r.requires = req
    if ws.symmetric:
        for n in ws.nodes:
            r.allowed[n.uname] = 0
    if not r.managed or ws.maintenance_mode:
        r.managed = False


def _unpack_resources(ws: WorkingSet) -> None:
    for res in ws.cib.resources:
        if isinstance(res, Group):
            g = WGroup(res.id, _meta(ws, res.meta_sets, None))
            ws.groups[g.id] = g
            for m in res.members:
                r = WRsc(m.id, m, _meta(ws, m.meta_sets, g.meta), g)
                _setup_prim(ws, r)
                g.members.append(r)
                ws.prims[r.id] = r
            if ws.symmetric:
                g.allowed = {n.uname: 0 for n in ws.nodes}
            ws.resources.append(g)
        else:
            r = WRsc(res.id, res, _meta(ws, res.meta_sets, None))
            _setup_prim(ws, r)
            ws.prims[r.id] = r
            ws.resources.append(r)
    ws.resources.sort(key=lambda x: -x.priority)


def _unpack_status(ws: WorkingSet) -> None:
    for st in ws.cib.node_states:
        node = ws.node_by_id.get(st.id) or ws.node_by_uname.get(st.uname or "")
        if node is None:
            continue
        if not ws.stonith_enabled and not node.online:
            continue  # without fencing, an offline node's history is not trusted
        for lr in st.lrm:
            _unpack_lrm_resource(ws, node, lr)
    for r in ws.prims.values():
        if r.next_role == UNKNOWN and r.target_role is not None:
            r.next_role = r.target_role
        elif r.target_role is not None and r.target_role < r.next_role:
            r.next_role = r.target_role


def _orphan(ws: WorkingSet, lr: LrmResource) -> WRsc:
    r = WRsc(lr.id, None, {})
    r.agent = f"{lr.cls}:{lr.provider}:{lr.type}" if lr.provider else f"{lr.cls}:{lr.type}"
    r.cls = lr.cls or ""
    _setup_prim(ws, r)
    r.orphan = True
    if not ws.stop_orphans:
        r.managed = False
    else:
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY
    ws.prims[r.id] = r
    ws.resources.append(r)
    return r


def failcount(ws: WorkingSet, r: WRsc, node: WNode) -> int:
    """The resource's effective fail-count on a node (expired failures do not count)."""
    total = 0
    last = 0
    prefix = f"fail-count-{r.id}"
    for k, v in node.attrs.items():
        if k == prefix or k.startswith(prefix + "#"):
            total = add_scores(total, parse_score(v, 0) or 0)
        elif k == f"last-failure-{r.id}" or k.startswith(f"last-failure-{r.id}#"):
            try:
                last = max(last, int(v))
            except ValueError:
                pass
    if total > 0 and r.failure_timeout > 0 and ws.now is not None and last > 0:
        if ws.now >= last + r.failure_timeout:
            return 0
    return total


def _on_fail_for(ws: WorkingSet, r: WRsc, task: str, interval_ms: int):
    """(on-fail response, fail role) configured for an operation."""
    value = None
    if r.prim is not None:
        for op in r.prim.ops:
            if op.name == task and op.interval_ms == interval_ms:
                value = op.on_fail
                break
        if value is None and task == "monitor" and interval_ms == 0:
            value = None
    if value is None:
        d = resolve_sets(ws.cib.op_defaults)
        value = d.get("on-fail")
    fail_role = STARTED
    if value is not None:
        v = value.lower()
        if v == "fence" and not ws.stonith_enabled:
            return FAIL_STOP, STOPPED
        if v == "stop":
            return FAIL_STOP, STOPPED
        if v in _ON_FAIL:
            return _ON_FAIL[v], fail_role
    if task == "stop":
        return (FAIL_FENCE if ws.stonith_enabled else FAIL_BLOCK), fail_role
    return FAIL_RECOVER, fail_role


def _unpack_lrm_resource(ws: WorkingSet, node: WNode, lr: LrmResource) -> None:
    if not lr.ops:
        return
    r = ws.prims.get(lr.id)
    if r is None:
        if ws.cib.find(lr.id) is not None:
            return  # history for a group id: nothing to do
        r = _orphan(ws, lr)
    saved_role = r.role
    r.role = UNKNOWN
    ops = H.sort_ops(lr.ops)
    state = {"on_fail": FAIL_IGNORE, "last_failure": None}
    for op in ops:
        _unpack_op(ws, r, node, op, state)
    # active recurring operations since the last start
    recent = H.active_ops(ops)
    active = set()
    for o in recent:
        if o.interval_ms > 0 and o.op_status != H.EXEC_PENDING:
            active.add((o.operation, o.interval_ms))
    r.active_ops[node.uname] = active
    r.history[node.uname] = (lr, recent)
    _process_rsc_state(ws, r, node, state["on_fail"])
    if saved_role > r.role:
        r.role = saved_role


def _unpack_op(ws: WorkingSet, r: WRsc, node: WNode, op, state) -> None:
    task = op.operation
    if task in ("notify", "meta-data"):
        return
    rc = op.rc_code
    status = op.op_status
    expected = H.target_rc(op)
    probe = H.is_probe(op)
    if status == H.EXEC_DONE or status == H.EXEC_ERROR:
        status = H.EXEC_DONE
        rc = H.effective_rc(rc)
        if expected < 0 or expected != rc:
            status = H.EXEC_ERROR
        if rc == H.OCF_OK:
            if probe and expected == H.OCF_NOT_RUNNING:
                status = H.EXEC_DONE
        elif rc == H.OCF_NOT_RUNNING:
            if probe or expected == rc or not r.managed:
                status = H.EXEC_DONE
                r.role = STOPPED
                state["on_fail"] = FAIL_IGNORE
                r.next_role = UNKNOWN
        elif rc == H.OCF_RUNNING_PROMOTED:
            if probe and rc != expected:
                status = H.EXEC_DONE
            r.role = STARTED
        elif rc == H.OCF_FAILED_PROMOTED:
            r.role = STARTED
            status = H.EXEC_ERROR
        elif rc == H.OCF_NOT_CONFIGURED:
            status = H.EXEC_ERROR_FATAL
        elif rc in (H.OCF_UNIMPLEMENTED, H.OCF_NOT_INSTALLED, H.OCF_INVALID_PARAM, H.OCF_INSUFFICIENT_PRIV):
            if rc == H.OCF_UNIMPLEMENTED and op.interval_ms > 0:
                status = H.EXEC_NOT_SUPPORTED
            else:
                status = H.EXEC_ERROR_HARD
        elif status == H.EXEC_DONE:
            status = H.EXEC_ERROR
    if status == H.EXEC_PENDING:
        if task == "start":
            r.start_pending = True
            _set_active(r)
        return
    if status == H.EXEC_CANCELLED:
        return
    if status == H.EXEC_DONE:
        _update_state(r, task, rc, op, state)
        return
    on_fail, fail_role = _on_fail_for(ws, r, task, op.interval_ms)
    if on_fail == FAIL_IGNORE:
        _update_state(r, task, expected, op, state)
        r.failure_ignored = True
        return
    # a failure
    state["last_failure"] = op
    if on_fail > state["on_fail"] or (state["on_fail"] == FAIL_IGNORE):
        state["on_fail"] = max(on_fail, state["on_fail"])
    if task == "stop":
        r.allowed[node.uname] = -INFINITY
    if probe and rc == H.OCF_NOT_INSTALLED:
        r.role = STOPPED
    elif r.role < STARTED:
        _set_active(r)
    if fail_role == STOPPED:
        r.next_role = STOPPED
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY
    if status == H.EXEC_ERROR_HARD:
        r.allowed[node.uname] = -INFINITY
    elif status == H.EXEC_ERROR_FATAL:
        for n in ws.nodes:
            r.allowed[n.uname] = -INFINITY
    elif task == "start" and ws.start_failure_fatal and not probe:
        r.start_failed_on = getattr(r, "start_failed_on", set()) | {node.uname}


def _set_active(r: WRsc) -> None:
    r.role = STARTED


def _update_state(r: WRsc, task: str, rc: int, op, state) -> None:
    clear = False
    if rc == H.OCF_NOT_INSTALLED:
        r.role = STOPPED
    elif rc == H.OCF_NOT_RUNNING:
        clear = True
    elif task == "monitor":
        last = state["last_failure"]
        if last is not None and last.operation == op.operation and last.interval_ms == op.interval_ms:
            clear = True
        if r.role < STARTED:
            _set_active(r)
    elif task in ("start", "migrate_from", "promote"):
        r.role = STARTED
        clear = True
    elif task == "stop":
        r.role = STOPPED
        clear = True
    elif task == "migrate_to":
        r.role = STOPPED if False else r.role
        r.migrated_to = op.migrate_target
        clear = False
        r.role = STARTED if r.role < STARTED else r.role
        r.migrate_to_done = op
    elif r.role < STARTED:
        _set_active(r)
    if clear and state["on_fail"] in (FAIL_BLOCK, FAIL_IGNORE, FAIL_DEMOTE, FAIL_RECOVER):
        state["on_fail"] = FAIL_IGNORE
        r.next_role = UNKNOWN


def _process_rsc_state(ws: WorkingSet, r: WRsc, node: WNode, on_fail: int) -> None:
    if r.role != UNKNOWN:
        r.known_on.add(node.uname)
    if r.role > STOPPED and not node.online and not node.maintenance and r.managed:
        if ws.stonith_enabled:
            ws.fence_node(node, f"{r.id} is thought to be active there")
    if node.unclean:
        on_fail = FAIL_IGNORE
    if on_fail == FAIL_FENCE:
        ws.fence_node(node, f"{r.id} failed there")
    elif on_fail == FAIL_STANDBY:
        node.standby = True
        node.standby_onfail = True
    elif on_fail == FAIL_BLOCK:
        r.managed = False
        r.blocked = True
    elif on_fail == FAIL_MIGRATE:
        r.allowed[node.uname] = -INFINITY
    elif on_fail == FAIL_STOP:
        r.next_role = STOPPED
    elif on_fail == FAIL_RECOVER:
        if r.role not in (STOPPED, UNKNOWN):
            r.failed = True
            r.stop_flag = True
    if r.role not in (STOPPED, UNKNOWN):
        _add_running(ws, r, node)
        if on_fail in (FAIL_DEMOTE, FAIL_BLOCK):
            r.failed = True
        elif on_fail != FAIL_IGNORE:
            r.failed = True
            r.stop_flag = True


def _add_running(ws: WorkingSet, r: WRsc, node: WNode) -> None:
    if node not in r.running_on:
        r.running_on.append(node)
    if node.maintenance:
        r.managed = False
    if not r.managed:
        r.allowed[node.uname] = add_scores(r.allowed.get(node.uname, 0), INFINITY)
        return
    if len(r.running_on) > 1:
        if r.multiple_active == "stop_only":
            for n in ws.nodes:
                r.allowed[n.uname] = -INFINITY
        elif r.multiple_active == "block":
            r.managed = False
            r.blocked = True
            if r.group is not None and (r.group.meta.get("multiple-active") or "") == "block":
                for m in r.group.members:
                    m.managed = False
                    m.blocked = True
