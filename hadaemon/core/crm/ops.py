"""From a graph action and the CIB to the operation an LRM runs: agent, parameters, timeout, digest.

The digest is computed exactly as the scheduler compares it (hadaemon.core.policy.digests): the
resource's instance attributes, the op's own instance attributes, and CRM_meta_timeout for recurring
operations, so a recorded start or monitor does not look like a changed definition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Tuple

from hadaemon.core.cib import history as H
from hadaemon.core.cib.loader import parse_interval_ms
from hadaemon.core.cib.model import Cib, Op, Primitive
from hadaemon.core.cib.rules import resolve_sets

__all__ = ["OpPlan", "plan_op", "node_attributes", "restart_fields", "DEFAULT_TIMEOUT_MS"]

DEFAULT_TIMEOUT_MS = 20000


@dataclass(frozen=True)
class OpPlan:
    rsc_id: str
    cls: str
    provider: str | None
    type: str
    params: Dict[str, str]
    operation: str
    interval_ms: int
    timeout_ms: int
    start_delay_ms: int
    meta: Dict[str, str]
    digest: str


def node_attributes(cib: Cib, uname: str, is_dc: bool = False, now: int | None = None) -> Dict[str, str]:
    """A node's attributes as rules see them: configured, then transient (winning), then #uname...
    (rules with date expressions evaluated at now, the time the transition was scheduled at)."""
    attrs: Dict[str, str] = {}
    node_id = uname
    for n in cib.nodes:
        if n.uname == uname:
            attrs.update(resolve_sets(n.attr_sets, now=now))
            node_id = n.id
    for st in cib.node_states:
        if st.uname == uname or st.id == node_id:
            attrs.update(resolve_sets(st.transient_sets, now=now))
    attrs.update({"#uname": uname, "#id": node_id, "#kind": "cluster", "#is_dc": "true" if is_dc else "false"})
    return attrs


def _configured(prim: Primitive, task: str, interval_ms: int) -> Op | None:
    for op in prim.ops:
        if op.name == task and op.interval_ms == interval_ms:
            return op
    return None


def _op_default_timeout(cib: Cib, prim: Primitive, task: str, interval_ms: int, now: int | None) -> str | None:
    """op_defaults' timeout as the scheduler reads it: rsc/op expressions for this operation, dates at now."""
    return resolve_sets(cib.op_defaults, rsc=(prim.cls, prim.provider, prim.type), op=(task, interval_ms),
                        now=now).get("timeout")


def _timeout_ms(cib: Cib, prim: Primitive, op: Op | None, task: str, interval_ms: int,
                now: int | None = None) -> int:
    text = op.timeout if op is not None else None
    if text is None and task == "monitor" and interval_ms == 0:
        monitors = sorted((o for o in prim.ops if o.name == "monitor" and o.timeout), key=lambda o: o.interval_ms)
        text = monitors[0].timeout if monitors else None
    if text is None:
        text = _op_default_timeout(cib, prim, task, interval_ms, now)
    ms = parse_interval_ms(text) if text else None
    return ms if ms else DEFAULT_TIMEOUT_MS


def plan_op(cib: Cib, rsc_id: str, task: str, interval_ms: int, node: str,
            node_attrs: Mapping[str, str] | None = None, now: int | None = None) -> OpPlan | None:
    """The operation for a resource action on a node (None when the resource is not configured). now: the
    time the transition was scheduled at, so rules with date expressions pick the same values (and the
    same digest) as the scheduler did; None lets every date expression hold."""
    prim = cib.primitives().get(rsc_id)
    if prim is None:
        return None
    attrs = dict(node_attrs) if node_attrs is not None else node_attributes(cib, node, now=now)
    op = _configured(prim, task, interval_ms)
    params = resolve_sets(prim.instance_sets, attrs, now=now)
    if op is not None:
        params.update(resolve_sets(op.instance_sets, attrs, now=now))
    timeout = _timeout_ms(cib, prim, op, task, interval_ms, now)
    digest_params = dict(params)
    if interval_ms > 0:
        # as hadaemon.core.policy.digests: the op's own timeout, else op_defaults, else 20 s
        text = op.timeout if op is not None else None
        if text is None:
            text = _op_default_timeout(cib, prim, op.name if op is not None else "monitor", interval_ms, now)
        ms = parse_interval_ms(text) if text else DEFAULT_TIMEOUT_MS
        digest_params["CRM_meta_timeout"] = str(ms if ms is not None else DEFAULT_TIMEOUT_MS)
    delay = 0
    if op is not None:
        d = resolve_sets(op.meta_sets, now=now).get("start-delay")
        delay = parse_interval_ms(d) or 0 if d else 0
    meta = {"timeout": str(timeout), "interval": str(interval_ms), "name": task, "on_node": node}
    for k, v in resolve_sets(prim.meta_sets, now=now).items():
        meta.setdefault(k.replace("-", "_"), v)
    return OpPlan(rsc_id, prim.cls, prim.provider, prim.type, params, task, interval_ms, timeout, delay,
                  meta, H.digest(digest_params))


def next_failure_expiry(cib: Cib, now: int) -> int | None:
    """The earliest time (after now) at which a recorded failure's failure-timeout expires, so the DC
    reschedules exactly then (the fail-count stops counting); None when no failure will expire."""
    defaults = resolve_sets(cib.rsc_defaults, now=now)
    timeouts: Dict[str, int] = {}
    for rid, prim in cib.primitives().items():
        meta = dict(defaults)
        parent = cib.find(prim.parent) if prim.parent else None
        if parent is not None:
            meta.update(resolve_sets(parent.meta_sets, now=now))
        meta.update(resolve_sets(prim.meta_sets, now=now))
        ms = parse_interval_ms(meta.get("failure-timeout") or "0") or 0
        if ms > 0:
            timeouts[rid] = ms // 1000 or 1
    best = None
    for st in cib.node_states:
        for name, value in resolve_sets(st.transient_sets, now=now).items():
            if not name.startswith("last-failure-"):
                continue
            rid = name[len("last-failure-"):].split("#", 1)[0]
            if rid not in timeouts:
                continue
            try:
                due = int(value) + timeouts[rid]
            except ValueError:
                continue
            if due > now and (best is None or due < best):
                best = due
    return best


def restart_fields(restart_names, params: Mapping[str, str]) -> Tuple[str, str]:
    """The controller's append_restart_list for a one-shot op: (op-force-restart, op-restart-digest)
    from the parameters whose change needs a restart (hadaemon.core.lrm.metadata.reload_parameters)
    and the op's parameters. The list has Pacemaker's form ("  a b  ", "" when empty); the digest is
    the one hadaemon.core.policy.digests compares it with (the listed parameters' values only)."""
    names = tuple(restart_names)
    listed = ("  " + " ".join(names) + "  ") if names else ""
    return listed, H.digest({k: str(v) for k, v in params.items() if k in names})
