"""Status-section updates as Pacemaker's controller writes them: node_state, lrm history, fail-counts.

Operation history per resource and node keeps Pacemaker's entries: `RSC_last_0` (the last one-shot
operation: start, stop, probe ...), `RSC_last_failure_0` (the last failed one), and `RSC_OP_INTERVAL`
for each recurring operation (`RSC_monitor_10000`). A failure adds to the transient attribute
`fail-count-RSC#OP_INTERVAL` (a failed start sets INFINITY when start-failure-is-fatal) and sets
`last-failure-RSC#OP_INTERVAL`. Everything here mutates the element it is given.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from typing import Dict

from hadaemon.core.crm.cibdoc import node_id, section
from hadaemon.core.lrm.results import EXEC_STATUS_CODES, OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED, OCF_SUCCESS

__all__ = ["OpRecord", "EXEC_STATUS", "exec_status_code", "node_state", "set_node_state", "record_op",
           "is_failure", "unexpected_probe", "lrm_resources", "replace_lrm", "clear_lrm", "set_attribute",
           "get_attribute", "transition_key", "parse_transition_key"]

# Pacemaker's execution status codes (op-status): the one table in core/lrm/results
EXEC_STATUS = dict(EXEC_STATUS_CODES)


def exec_status_code(status: str) -> int:
    return EXEC_STATUS.get(status, EXEC_STATUS["error"])


def transition_key(action_id: int, transition_id: int, target_rc: int, dc_uuid: str) -> str:
    """Pacemaker's transition key: action:transition:target-rc:DC-instance."""
    return f"{action_id}:{transition_id}:{target_rc}:{dc_uuid}"


def parse_transition_key(key: str) -> tuple | None:
    """(action_id, transition_id, target_rc, dc_uuid) or None."""
    parts = (key or "").split(":", 3)
    if len(parts) != 4:
        return None
    try:
        return int(parts[0]), int(parts[1]), int(parts[2]), parts[3]
    except ValueError:
        return None


@dataclass(frozen=True)
class OpRecord:
    """One operation result as the executing node reports it."""

    rsc_id: str
    operation: str
    interval_ms: int
    rc: int
    op_status: int          # EXEC_STATUS value
    call_id: int
    transition_key: str     # "" when the operation was not asked by a transition
    target_rc: int
    exec_ms: int = 0
    queue_ms: int = 0
    last_run: int = 0       # wall-clock seconds
    digest: str = ""
    rsc_class: str = ""
    rsc_provider: str = ""
    rsc_type: str = ""
    exit_reason: str = ""
    migrate_source: str = ""   # migrate_to / migrate_from: the nodes of the live migration
    migrate_target: str = ""
    # one-shot ops of an agent that can reload (the controller's append_restart_list): the parameters
    # whose change needs a restart (Pacemaker's "  a b  " form) and the digest of their values
    restart_list: str = ""
    restart_digest: str = ""

    def to_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> OpRecord:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in fields})


def is_failure(rec: OpRecord) -> bool:
    """Did the operation fail (count toward fail-count and abort the transition)?
    Probes finding a resource running or stopped are answers, not failures; a stop of a resource that
    is not running succeeded."""
    if rec.op_status == EXEC_STATUS["cancelled"] or rec.op_status == EXEC_STATUS["pending"]:
        return False
    if rec.op_status != EXEC_STATUS["done"]:
        return True
    if rec.operation == "monitor" and rec.interval_ms == 0:
        return rec.rc not in (OCF_SUCCESS, OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED)
    if rec.operation == "stop" and rec.rc == OCF_NOT_RUNNING:
        return False
    target = rec.target_rc if rec.target_rc >= 0 else 0
    return rec.rc != target


def unexpected_probe(rec: OpRecord) -> bool:
    """A probe's answer other than the one its transition expected (running where "not running" was
    expected, stopped or promoted where running was): new information, not a failure. Pacemaker's
    controller confirms such an action and aborts the transition so it is recomputed from the answer
    (process_graph_event), counting no failure (update_failcount: nothing for an interval-0 monitor
    of a transition)."""
    if rec.operation != "monitor" or rec.interval_ms != 0 or is_failure(rec):
        return False
    return rec.rc != (rec.target_rc if rec.target_rc >= 0 else 0)


def node_state(cib: ET.Element, uname: str) -> ET.Element:
    """The node's <node_state> in the status section (created when missing)."""
    status = section(cib, "status")
    for ns in status.findall("node_state"):
        if ns.get("uname") == uname:
            return ns
    nid = node_id(cib, uname)
    for ns in status.findall("node_state"):
        if ns.get("id") == nid and not ns.get("uname"):
            ns.set("uname", uname)
            return ns
    return ET.SubElement(status, "node_state", {"id": nid, "uname": uname})


def set_node_state(cib: ET.Element, uname: str, **attrs: str) -> bool:
    """Set node_state attributes (in_ccm, crmd, join, expected); True when something changed."""
    ns = node_state(cib, uname)
    changed = False
    for k, v in attrs.items():
        if ns.get(k) != v:
            ns.set(k, v)
            changed = True
    return changed


def drop_node_state(cib: ET.Element, uname: str) -> bool:
    """Remove the node's <node_state> (a node never seen: the scheduler then takes it as unseen)."""
    status = section(cib, "status")
    for ns in status.findall("node_state"):
        if ns.get("uname") == uname:
            status.remove(ns)
            return True
    return False


def lrm_resources(cib: ET.Element, uname: str) -> ET.Element:
    ns = node_state(cib, uname)
    lrm = ns.find("lrm")
    if lrm is None:
        lrm = ET.SubElement(ns, "lrm", {"id": ns.get("id") or uname})
    lr = lrm.find("lrm_resources")
    if lr is None:
        lr = ET.SubElement(lrm, "lrm_resources")
    return lr


def replace_lrm(cib: ET.Element, uname: str, resources: ET.Element | None) -> None:
    """Replace the node's whole operation history with `resources` (an <lrm_resources>), or empty it."""
    lr = lrm_resources(cib, uname)
    for child in list(lr):
        lr.remove(child)
    if resources is not None:
        for child in resources:
            lr.append(child)


def clear_lrm(cib: ET.Element, uname: str, rsc_id: str | None = None) -> None:
    """Forget the node's history (of one resource, or all)."""
    lr = lrm_resources(cib, uname)
    for child in list(lr):
        if rsc_id is None or child.get("id") == rsc_id:
            lr.remove(child)


def _transient(cib: ET.Element, uname: str) -> ET.Element:
    ns = node_state(cib, uname)
    ta = ns.find("transient_attributes")
    if ta is None:
        ta = ET.SubElement(ns, "transient_attributes", {"id": ns.get("id") or uname})
    ia = ta.find("instance_attributes")
    if ia is None:
        ia = ET.SubElement(ta, "instance_attributes", {"id": f"status-{ns.get('id') or uname}"})
    return ia


def get_attribute(cib: ET.Element, uname: str, name: str) -> str | None:
    for nv in _transient(cib, uname).findall("nvpair"):
        if nv.get("name") == name:
            return nv.get("value")
    return None


def set_attribute(cib: ET.Element, uname: str, name: str, value: str | None) -> bool:
    """Set (or with None remove) a transient node attribute; True when it changed."""
    ia = _transient(cib, uname)
    for nv in ia.findall("nvpair"):
        if nv.get("name") == name:
            if value is None:
                ia.remove(nv)
                return True
            if nv.get("value") == value:
                return False
            nv.set("value", value)
            return True
    if value is None:
        return False
    ET.SubElement(ia, "nvpair", {"id": f"{ia.get('id')}-{name}", "name": name, "value": value})
    return True


def _op_attrs(rec: OpRecord, uname: str, op_id: str, now: int) -> Dict[str, str]:
    key = f"{rec.rsc_id}_{rec.operation}_{rec.interval_ms}"
    attrs = {"id": op_id, "operation_key": key, "operation": rec.operation,
             "crm-debug-origin": "do_update_resource", "crm_feature_set": "3.19.0",
             "transition-key": rec.transition_key,
             "transition-magic": f"{rec.op_status}:{rec.rc}:{rec.transition_key}",
             "exit-reason": rec.exit_reason, "on_node": uname, "call-id": str(rec.call_id),
             "rc-code": str(rec.rc), "op-status": str(rec.op_status), "interval": str(rec.interval_ms),
             "last-rc-change": str(rec.last_run or now), "exec-time": str(rec.exec_ms),
             "queue-time": str(rec.queue_ms)}
    if rec.digest:
        attrs["op-digest"] = rec.digest
    if rec.restart_digest and rec.interval_ms == 0:
        attrs["op-force-restart"] = rec.restart_list
        attrs["op-restart-digest"] = rec.restart_digest
    if rec.migrate_source and rec.migrate_target:
        # as the controller's build_operation_update: the scheduler reads a partial migration from them
        attrs["migrate_source"] = rec.migrate_source
        attrs["migrate_target"] = rec.migrate_target
    return attrs


def _replace_entry(res: ET.Element, op_id: str, attrs: Dict[str, str]) -> None:
    for o in res.findall("lrm_rsc_op"):
        if o.get("id") == op_id:
            old_rc = o.get("rc-code")
            if old_rc == attrs["rc-code"] and o.get("last-rc-change"):
                attrs = dict(attrs, **{"last-rc-change": o.get("last-rc-change")})
            o.attrib.clear()
            o.attrib.update(attrs)
            return
    ET.SubElement(res, "lrm_rsc_op", attrs)


def record_op(cib: ET.Element, uname: str, rec: OpRecord, now: int,
              start_failure_is_fatal: bool = True) -> bool:
    """Write one result into the node's history (and fail-count on failure); True when it failed.
    A reload (reload-agent, or an older agent's reload) is written as a start when it ran, else as a
    monitor, as Pacemaker's pcmk__create_history_xml does (the scheduler then compares the new
    parameters with it)."""
    if rec.operation in ("reload", "reload-agent"):
        rec = replace(rec, operation="start" if rec.op_status == EXEC_STATUS["done"] else "monitor")
    lr = lrm_resources(cib, uname)
    res = None
    for r in lr.findall("lrm_resource"):
        if r.get("id") == rec.rsc_id:
            res = r
            break
    if res is None:
        attrs = {"id": rec.rsc_id, "type": rec.rsc_type, "class": rec.rsc_class}
        if rec.rsc_provider:
            attrs["provider"] = rec.rsc_provider
        res = ET.SubElement(lr, "lrm_resource", attrs)
    recurring_id = f"{rec.rsc_id}_{rec.operation}_{rec.interval_ms}"
    if rec.op_status == EXEC_STATUS["cancelled"]:
        if rec.interval_ms > 0:
            for o in res.findall("lrm_rsc_op"):
                if o.get("id") == recurring_id:
                    res.remove(o)
        return False
    failed = is_failure(rec)
    if rec.interval_ms > 0:
        _replace_entry(res, recurring_id, _op_attrs(rec, uname, recurring_id, now))
    else:
        _replace_entry(res, f"{rec.rsc_id}_last_0", _op_attrs(rec, uname, f"{rec.rsc_id}_last_0", now))
        if rec.operation == "stop" and not failed:
            # stop implies cancel: the recurring monitors are gone with the resource
            for o in list(res.findall("lrm_rsc_op")):
                if o.get("id") not in (f"{rec.rsc_id}_last_0", f"{rec.rsc_id}_last_failure_0"):
                    res.remove(o)
    if failed:
        fid = f"{rec.rsc_id}_last_failure_0"
        _replace_entry(res, fid, _op_attrs(rec, uname, fid, now))
        name = f"{rec.rsc_id}#{rec.operation}_{rec.interval_ms}"
        if rec.operation == "start" and start_failure_is_fatal:
            value = "INFINITY"
        else:
            old = get_attribute(cib, uname, f"fail-count-{name}") or "0"
            value = "INFINITY" if old == "INFINITY" else str(_int(old) + 1)
        set_attribute(cib, uname, f"fail-count-{name}", value)
        set_attribute(cib, uname, f"last-failure-{name}", str(now))
    return failed


def clear_failcounts(cib: ET.Element, uname: str, rsc_id: str | None = None) -> None:
    ia = _transient(cib, uname)
    for nv in list(ia.findall("nvpair")):
        n = nv.get("name") or ""
        for prefix in ("fail-count-", "last-failure-"):
            if n.startswith(prefix) and (rsc_id is None or n[len(prefix):].split("#")[0] == rsc_id):
                ia.remove(nv)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
