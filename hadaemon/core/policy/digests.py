"""Definition changes: compare the recorded parameter digests with the configuration."""
from __future__ import annotations


from hadaemon.core.cib import history as H
from hadaemon.core.cib.loader import parse_interval_ms
from hadaemon.core.cib.model import Op
from hadaemon.core.cib.rules import resolve_sets
from hadaemon.core.policy.working import WorkingSet, agent_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict

DEFAULT_TIMEOUT_MS = 20000


def _configured(r, task: str, interval_ms: int) -> Op | None:
    for op in r.prim.ops:
        if op.name == task and op.interval_ms == interval_ms:
            return op
    return None


def _params(ws: WorkingSet, r, node, op: Op | None, interval_ms: int) -> Dict[str, str]:
    params = resolve_sets(r.prim.instance_sets, node.attrs, now=ws.now)
    # a group's and a clone's instance attributes are inherited (never overriding the member's)
    parents = []
    if r.group is not None:
        parents.append(r.group.clone.group_cfg if r.group.clone is not None else ws.cib.find(r.group.id))
    if r.clone is not None:
        parents.append(ws.cib.find(r.clone.id))
    for cfg in parents:
        if cfg is not None:
            for k, v in resolve_sets(cfg.instance_sets, node.attrs, now=ws.now).items():
                params.setdefault(k, v)
    if op is not None:
        for k, v in resolve_sets(op.instance_sets, node.attrs, now=ws.now).items():
            params[k] = v
    if interval_ms > 0:
        timeout = op.timeout if op is not None else None
        if timeout is None:
            timeout = resolve_sets(ws.cib.op_defaults, rsc=agent_of(r.prim),
                                   op=(op.name if op is not None else "monitor", interval_ms), now=ws.now).get("timeout")
        ms = parse_interval_ms(timeout) if timeout else DEFAULT_TIMEOUT_MS
        params["CRM_meta_timeout"] = str(ms if ms is not None else DEFAULT_TIMEOUT_MS)
    return params


def _agent_changed(r, lr) -> bool:
    prim = r.prim
    return ((lr.cls or "") != prim.cls or (lr.type or "") != prim.type
            or (lr.provider or "") != (prim.provider or ""))


def check_definitions(ws: WorkingSet) -> None:
    """Mark restarts, reloads, re-sent and cancelled monitors caused by configuration changes."""
    for r in ws.prims.values():
        if r.prim is None:
            continue
        for uname, (lr, recent) in r.history.items():
            node = ws.node_by_uname[uname]
            if not (node.can_run() or node.maintenance):
                continue  # Pacemaker checks definitions only where resources can run
            if _agent_changed(r, lr):
                r.agent_changed.add(uname)
                continue
            for o in recent:
                if o.interval_ms > 0 and (r.blocked or node.maintenance):
                    continue
                if not (o.interval_ms > 0 or o.operation in ("monitor", "start", "promote", "migrate_from")):
                    continue
                op = _configured(r, o.operation, o.interval_ms)
                if o.interval_ms > 0 and (op is None or not op.enabled):
                    if ws.cancel_removed:
                        r.cancel.append((uname, o.operation, o.interval_ms))
                    continue
                _compare(ws, r, node, o, op)


def _compare(ws: WorkingSet, r, node, o, op: Op | None) -> None:
    params = _params(ws, r, node, op, o.interval_ms)
    calc_all = H.digest(params)
    rc = None
    if o.interval_ms == 0 and op is not None and resolve_sets(op.instance_sets, node.attrs, now=ws.now):
        forced_restart = True
    else:
        forced_restart = False
    if o.restart_params is not None and o.op_restart_digest is not None:
        keep = set(o.restart_params.split())
        restart = {k: v for k, v in params.items() if k in keep}
        if H.digest(restart) != o.op_restart_digest:
            rc = "restart"
    if rc is None:
        if o.op_digest is None:
            rc = "unknown"
        elif o.op_digest != calc_all:
            rc = "restart" if forced_restart else "all"
    if rc is None:
        return
    if rc == "restart":
        r.definition_changed = True
    elif o.interval_ms > 0:
        r.reschedule.add((node.uname, o.operation, o.interval_ms))
    elif o.op_restart_digest is not None:
        r.reload = True
        r.reload_node = node.uname
    else:
        r.definition_changed = True


def action_digest(ws: WorkingSet, rsc_id: str, uname: str, task: str, interval_ms: int) -> str | None:
    """The op-digest the executor would record for an action (for simulated results)."""
    r = ws.prims.get(rsc_id)
    node = ws.node_by_uname.get(uname)
    if r is None or r.prim is None or node is None:
        return None
    return H.digest(_params(ws, r, node, _configured(r, task, interval_ms), interval_ms))
