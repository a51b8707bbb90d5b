"""crm_simulate's what-if injections, as pure edits of a CIB's XML tree (xml.etree).

`apply_injections(root, inj, now)` changes nodes, tickets, quorum and operation history before the
scheduler runs (--node-up/--node-down/--node-fail, --ticket-*, --quorum, --watchdog, --op-inject);
`apply_transition(root, transition, op_fail, now)` records the results of a transition's actions in
the status section the way crm_simulate's simulated execution does (--simulate, --save-output),
failing the actions --op-fail names. Bad specifications raise ValueError with a message.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

_KEY = re.compile(r"^(?P<rsc>.+)_(?P<task>migrate_to|migrate_from|[A-Za-z-]+)_(?P<interval>\d+)$")
_SPEC = re.compile(r"^(?P<key>[^@]+)@(?P<node>[^=]+)=(?P<rc>-?\d+)$")


@dataclass
class Injections:
    node_up: List[str] = field(default_factory=list)
    node_down: List[str] = field(default_factory=list)
    node_fail: List[str] = field(default_factory=list)
    op_inject: List[str] = field(default_factory=list)
    ticket_grant: List[str] = field(default_factory=list)
    ticket_revoke: List[str] = field(default_factory=list)
    ticket_standby: List[str] = field(default_factory=list)
    ticket_activate: List[str] = field(default_factory=list)
    quorum: str | None = None
    watchdog: str | None = None

    def any(self) -> bool:
        return bool(self.node_up or self.node_down or self.node_fail or self.op_inject or self.ticket_grant
                    or self.ticket_revoke or self.ticket_standby or self.ticket_activate
                    or self.quorum is not None or self.watchdog is not None)


def parse_op_spec(spec: str) -> Tuple[str, str, int, str, int]:
    """'rsc_task_interval@node=rc' -> (rsc, task, interval_ms, node, rc)."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"invalid operation spec '{spec}' (expected RSC_TASK_INTERVAL@NODE=RC, "
                         "e.g. rsc1_monitor_10000@node1=7)")
    k = _KEY.match(m.group("key"))
    if not k:
        raise ValueError(f"invalid operation key '{m.group('key')}' in '{spec}' (RSC_TASK_INTERVAL)")
    return k.group("rsc"), k.group("task"), int(k.group("interval")), m.group("node"), int(m.group("rc"))


def _child(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag, attrs)
    return el


def _status(root: ET.Element) -> ET.Element:
    return _child(root, "status")


def _node_id(root: ET.Element, uname: str) -> str:
    nodes = root.find("configuration/nodes")
    for n in (nodes if nodes is not None else []):
        if n.tag == "node" and (n.get("uname") == uname or (n.get("uname") is None and n.get("id") == uname)):
            return n.get("id") or uname
    raise ValueError(f"node '{uname}' is not in the configuration")


def node_state(root: ET.Element, uname: str) -> ET.Element:
    """The node's <node_state> (created when missing, like pcmk__inject_node)."""
    status = _status(root)
    for st in status.findall("node_state"):
        if st.get("uname") == uname:
            return st
    nid = _node_id(root, uname)
    for st in status.findall("node_state"):
        if st.get("id") == nid:
            st.set("uname", uname)
            return st
    return ET.SubElement(status, "node_state", {"id": nid, "uname": uname})


def _state_change(root: ET.Element, uname: str, up: bool) -> ET.Element:
    st = node_state(root, uname)
    if up:
        values = {"in_ccm": "true", "crmd": "online", "join": "member", "expected": "member"}
    else:
        values = {"in_ccm": "false", "crmd": "offline", "join": "down", "expected": "down"}
    for k, v in values.items():
        st.set(k, v)
    st.set("crm-debug-origin", "hactl")
    return st


def _set_ticket(root: ET.Element, ticket: str, name: str, value: bool) -> None:
    tickets = _child(_status(root), "tickets")
    for ts in tickets.findall("ticket_state"):
        if ts.get("id") == ticket:
            ts.set(name, "true" if value else "false")
            return
    ET.SubElement(tickets, "ticket_state", {"id": ticket, name: "true" if value else "false"})


def _transient(st: ET.Element) -> ET.Element:
    ta = _child(st, "transient_attributes", id=st.get("id", ""))
    return _child(ta, "instance_attributes", id=f"status-{st.get('id', '')}")


def _set_attr(st: ET.Element, name: str, value: str) -> None:
    ia = _transient(st)
    for nv in ia.findall("nvpair"):
        if nv.get("name") == name:
            nv.set("value", value)
            return
    ET.SubElement(ia, "nvpair", {"id": f"status-{st.get('id', '')}-{name}", "name": name, "value": value})


def _get_attr(st: ET.Element, name: str) -> str | None:
    for ta in st.findall("transient_attributes"):
        for ia in ta.findall("instance_attributes"):
            for nv in ia.findall("nvpair"):
                if nv.get("name") == name:
                    return nv.get("value")
    return None


def inject_failcount(st: ET.Element, rsc: str, task: str, interval_ms: int, rc: int, now: int) -> None:
    """pcmk__inject_failcount: a failed result counts (a probe's 'not running' does not)."""
    if rc == 0 or (rc == 7 and interval_ms == 0):
        return
    name = f"fail-count-{rsc}#{task}_{interval_ms}"
    old = _get_attr(st, name)
    try:
        count = int(old) if old is not None else 0
    except ValueError:
        count = 1000000 if (old or "").upper().lstrip("+") == "INFINITY" else 0
    _set_attr(st, name, str(min(count + 1, 1000000)))
    _set_attr(st, f"last-failure-{rsc}#{task}_{interval_ms}", str(now))


def _agent(root: ET.Element, rsc: str) -> Tuple[str, str | None, str]:
    """class, provider, type of a configured primitive (a clone instance 'rsc:N' is its primitive)."""
    base = rsc.rsplit(":", 1)[0] if ":" in rsc else rsc
    resources = root.find("configuration/resources")
    for el in (resources.iter("primitive") if resources is not None else []):
        if el.get("id") in (rsc, base):
            return el.get("class", ""), el.get("provider"), el.get("type", "")
    raise ValueError(f"invalid resource name '{rsc}': no such primitive in the configuration")


def inject_result(root: ET.Element, uname: str, rsc: str, task: str, interval_ms: int, rc: int,
                  now: int, target_rc: int = 0, digest: str | None = None) -> None:
    """Add an operation result to a node's history for a resource (pcmk__inject_action_result)."""
    st = node_state(root, uname)
    lrm = _child(st, "lrm", id=st.get("id", ""))
    container = _child(lrm, "lrm_resources")
    entry = None
    for lr in container.findall("lrm_resource"):
        if lr.get("id") == rsc:
            entry = lr
    if entry is None:
        cls, provider, typ = _agent(root, rsc)
        attrs = {"id": rsc, "class": cls, "type": typ}
        if provider:
            attrs["provider"] = provider
        entry = ET.SubElement(container, "lrm_resource", attrs)
    call = 1 + max([int(o.get("call-id", "0") or 0) for o in entry.findall("lrm_rsc_op")] or [0])
    if interval_ms > 0:
        op_id = f"{rsc}_{task}_{interval_ms}"
    elif rc not in (0, 7) or (rc == 7 and task != "monitor"):
        op_id = f"{rsc}_last_failure_0"
    else:
        op_id = f"{rsc}_last_0"
    for o in entry.findall("lrm_rsc_op"):
        if o.get("id") == op_id:
            entry.remove(o)
    key = f"{call}:1:{target_rc}:00000000-0000-0000-0000-000000000000"
    attrs = {"id": op_id, "operation_key": f"{rsc}_{task}_{interval_ms}", "operation": task,
             "crm-debug-origin": "hactl", "transition-key": key, "transition-magic": f"0:{rc};{key}",
             "call-id": str(call), "rc-code": str(rc), "op-status": "0", "interval": str(interval_ms),
             "last-rc-change": str(now), "exec-time": "0", "queue-time": "0", "on_node": uname}
    if digest is not None:
        attrs["op-digest"] = digest
    ET.SubElement(entry, "lrm_rsc_op", attrs)


def apply_injections(root: ET.Element, inj: Injections, now: int) -> List[str]:
    """Apply the injections in crm_simulate's order; returns its "Performing Requested Modifications"
    lines."""
    lines: List[str] = []
    if inj.quorum is not None:
        lines.append(f"  * Setting quorum: {inj.quorum}")
        root.set("have-quorum", inj.quorum)
    if inj.watchdog is not None:
        lines.append(f"  * Setting watchdog: {inj.watchdog}")
        crm = _child(_child(root, "configuration"), "crm_config")
        props = None
        for s in crm.findall("cluster_property_set"):
            if s.get("id") == "cib-bootstrap-options":
                props = s
        if props is None:
            props = ET.SubElement(crm, "cluster_property_set", {"id": "cib-bootstrap-options"})
        for nv in props.findall("nvpair"):
            if nv.get("name") == "have-watchdog":
                props.remove(nv)
        ET.SubElement(props, "nvpair", {"id": "cib-bootstrap-options-have-watchdog", "name": "have-watchdog",
                                        "value": inj.watchdog})
    for uname in inj.node_up:
        lines.append(f"  * Bringing node {uname} online")
        _state_change(root, uname, True)
    for uname in inj.node_down:
        lines.append(f"  * Taking node {uname} offline")
        st = _state_change(root, uname, False)
        for tag in ("lrm", "transient_attributes"):
            for el in st.findall(tag):
                st.remove(el)
    for uname in inj.node_fail:
        lines.append(f"  * Failing node {uname}")
        st = _state_change(root, uname, True)
        st.set("in_ccm", "false")
    for what, names, attr, value in (("Granting", inj.ticket_grant, "granted", True),
                                     ("Revoking", inj.ticket_revoke, "granted", False),
                                     ("Making", inj.ticket_standby, "standby", True),
                                     ("Activating", inj.ticket_activate, "standby", False)):
        for t in names:
            lines.append(f"  * {what} ticket {t}" + (" standby" if what == "Making" else ""))
            _set_ticket(root, t, attr, value)
    for spec in inj.op_inject:
        rsc, task, interval, uname, rc = parse_op_spec(spec)
        lines.append(f"  * Injecting {spec} into the configuration")
        _agent(root, rsc)
        inject_failcount(node_state(root, uname), rsc, task, interval, rc, now)
        inject_result(root, uname, rsc, task, interval, rc, now)
    return lines


def apply_transition(root: ET.Element, actions, op_fail: List[str], now: int, digest_of=None) -> List[str]:
    """Record what the transition's executed actions did (crm_simulate's simulated execution): each
    resource action succeeds (a probe finds the resource stopped unless it runs there) unless
    --op-fail names it; fencing and shutdown take the node down. Returns the failed actions' lines."""
    fails: Dict[Tuple[str, str, int, str], int] = {}
    for spec in op_fail:
        rsc, task, interval, uname, rc = parse_op_spec(spec)
        fails[(rsc, task, interval, uname)] = rc
    out: List[str] = []
    for a in actions:
        if a.kind == "crm_event":
            if a.task in ("stonith", "do_shutdown"):
                st = _state_change(root, a.node, False)
                for tag in ("lrm", "transient_attributes"):
                    for el in st.findall(tag):
                        st.remove(el)
            continue
        if a.pseudo or a.rsc is None or a.node is None or a.task in ("cancel", "delete"):
            if a.task == "delete" and a.node is not None and not a.pseudo:
                _forget(root, a.node, a.rsc)
            continue
        target = a.target_rc if a.target_rc is not None else 0
        rc = fails.get((a.rsc, a.task, a.interval_ms, a.node))
        if rc is None:
            rc = target
        else:
            out.append(f"  * Pretending action {a.key} failed on {a.node} (rc={rc})")
            inject_failcount(node_state(root, a.node), a.rsc, a.task, a.interval_ms, rc, now)
        digest = digest_of(a) if digest_of is not None else None
        inject_result(root, a.node, a.rsc, a.task, a.interval_ms, rc, now, target, digest)
    return out


def _forget(root: ET.Element, uname: str, rsc: str) -> None:
    st = node_state(root, uname)
    for lrm in st.findall("lrm"):
        for container in lrm.findall("lrm_resources"):
            for lr in container.findall("lrm_resource"):
                if lr.get("id") == rsc:
                    container.remove(lr)


def to_text(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")
