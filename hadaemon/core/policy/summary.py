"""Human output in crm_simulate's format: cluster status, transition summary, executed actions."""
from __future__ import annotations

from hadaemon.core.cib.model import Record
from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.planner import Planner
from hadaemon.core.policy.resources import PROMOTED, ROLE_NAMES, STARTED, STOPPED, UNPROMOTED
from hadaemon.core.policy.working import WorkingSet, leaves

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Tuple


def _find(p: Planner, r, task: str, node: str | None) -> Action | None:
    for a in p.rsc_actions(r.id, task):
        if node is None or a.node == node:
            return a
    return None


def rsc_changes(ws: WorkingSet, p: Planner) -> List[Tuple]:
    """(verb, rsc_id, origin, destination, action, source) per resource, like LogActions."""
    out: List[Tuple] = []
    for top in ws.resources:
        for r in leaves(top):
            item = _log_actions(ws, p, r)
            if item:
                out.extend(item)
    return out


def _promotable_actions(ws: WorkingSet, p: Planner, r) -> List[Tuple]:
    """LogActions for a promotable instance: roles in the details, Promote and Demote."""
    nxt = r.assigned
    current = r.current_node()
    role, next_role = r.role, r.next_role
    if role == STARTED:
        role = UNPROMOTED
    if current is not None and role == STOPPED:
        role = UNPROMOTED
    if not r.managed or (current is None and nxt is None):
        return []
    moving = current is not None and nxt is not None and current is not nxt
    start = _find(p, r, "start", nxt.uname) if nxt is not None else None
    start_node = current if (start is not None and start.runnable) else None
    stop = _find(p, r, "stop", start_node.uname if start_node else None)
    need_role = role > STARTED or next_role > UNPROMOTED
    cur_u = current.uname if current else None
    nxt_u = nxt.uname if nxt else None

    def item(verb, origin, dest, action, source=None, o_role=None, d_role=None):
        o_role = role if o_role is None else o_role
        d_role = next_role if d_role is None else d_role
        names = ROLE_NAMES
        same_host = origin is not None and origin == dest
        same_role = o_role == d_role
        if need_role and origin is None:
            details = f"{names[o_role]} -> {names[d_role]} {dest}"
        elif origin is None:
            details = dest
        elif need_role and dest is None:
            details = f"{names[o_role]} {origin}"
        elif dest is None:
            details = origin
        elif need_role and same_role and same_host:
            details = f"{names[o_role]} {origin}"
        elif same_role and same_host:
            details = origin
        elif need_role and same_role:
            details = f"{origin} -> {dest} {names[o_role]}"
        elif same_role:
            details = f"{origin} -> {dest}"
        elif same_host:
            details = f"{names[o_role]} -> {names[d_role]} {origin}"
        else:
            details = f"{names[o_role]} {origin} -> {names[d_role]} {dest}"
        return (verb, r.id, origin, dest, action, source, details)

    if role == next_role:
        if nxt is None:
            return []
        promote = _find(p, r, "promote", nxt_u)
        if start is None or start.optional:
            if role == PROMOTED and promote is not None and not promote.optional and not moving:
                return [item("Promote", cur_u, nxt_u, promote)]
            return []
        if not start.runnable:
            src = stop if (stop is not None and stop.reason) else start
            return [item("Stop", cur_u, None, stop, src)]
        if moving:
            return [item("Recover" if r.failed else "Move", cur_u, nxt_u, stop)]
        if r.failed:
            return [item("Recover", cur_u, None, stop)]
        return [item("Restart", cur_u, nxt_u, start)]
    if stop is not None and (next_role == STOPPED or (start is not None and not start.runnable)):
        out = []
        for node in r.running_on:
            stop_op = _find(p, r, "stop", node.uname)
            src = stop_op if (stop_op is not None and stop_op.reason) else start
            out.append(item("Stop", node.uname, None, stop_op, src))
        return out
    if stop is not None and r.failed and r.stop_flag:
        return [item("Recover", cur_u, nxt_u, stop, start)]
    if moving:
        return [item("Move", cur_u, nxt_u, stop)]
    if stop is not None and not stop.optional:
        return [item("Restart", cur_u, nxt_u, start)]
    if role == PROMOTED:
        demote = _find(p, r, "demote", cur_u)
        return [item("Demote", cur_u, nxt_u, demote)]
    if next_role == PROMOTED:
        promote = _find(p, r, "promote", nxt_u)
        return [item("Promote", cur_u, nxt_u, promote)]
    if role == STOPPED and next_role > STOPPED:
        return [item("Start", None, nxt_u, start)]
    return []


def _log_actions(ws: WorkingSet, p: Planner, r) -> List[Tuple]:
    if r.promotable:
        return _promotable_actions(ws, p, r)
    nxt = r.assigned
    current = r.current_node()
    role = r.role
    if current is not None and role == STOPPED:
        role = STARTED
    if current is None and r.orphan:
        return []
    if not r.managed or (current is None and nxt is None):
        return []
    moving = current is not None and nxt is not None and current is not nxt
    start = _find(p, r, "start", nxt.uname if nxt else None) if nxt is not None else None
    if start is None and nxt is None:
        start = None
    start_node = current if (start is not None and start.runnable) else None
    stop = _find(p, r, "stop", start_node.uname if start_node else None)
    cur_u = current.uname if current else None
    nxt_u = nxt.uname if nxt else None
    if role == r.next_role:
        if nxt is None:
            return []
        migrating = r.migrating
        if migrating and current is not None and start is not None and start.runnable:
            return [("Migrate", r.id, cur_u, nxt_u, start, None)]
        if r.reload:
            return [("Reload", r.id, cur_u, nxt_u, start, None)]
        if start is None or start.optional:
            return []
        if not start.runnable:
            src = stop if (stop is not None and stop.reason) else start
            return [("Stop", r.id, cur_u, None, stop, src)]
        if moving and current is not None:
            return [("Recover" if r.failed else "Move", r.id, cur_u, nxt_u, stop, None)]
        if r.failed:
            return [("Recover", r.id, cur_u, None, stop, None)]
        return [("Restart", r.id, cur_u, nxt_u, start, None)]
    if stop is not None and (r.next_role == STOPPED or (start is not None and not start.runnable)):
        lines = []
        for node in r.running_on:
            stop_op = _find(p, r, "stop", node.uname)
            src = stop_op if (stop_op is not None and stop_op.reason) else start
            lines.append(("Stop", r.id, node.uname, None, stop_op, src))
        return lines
    if stop is not None and r.failed and r.stop_flag:
        return [("Recover", r.id, cur_u, nxt_u, stop, start)]
    if moving:
        return [("Move", r.id, cur_u, nxt_u, stop, None)]
    if r.reload:
        return [("Reload", r.id, cur_u, nxt_u, start, None)]
    if stop is not None and not stop.optional:
        return [("Restart", r.id, cur_u, nxt_u, start, None)]
    if role == STOPPED and r.next_role > STOPPED:
        return [("Start", r.id, None, nxt_u, start, None)]
    return []


class Change(Record):
    """One line of the transition summary, as data."""

    __slots__ = ("verb", "target", "origin", "destination", "reason", "blocked", "details")

    def __init__(self, verb: str, target: str, origin: str | None, destination: str | None, reason: str | None,
                 blocked: bool, details: str | None = None):
        self.verb = verb  # Start Stop Move Recover Restart Migrate Reload Fence
        self.target = target  # resource id, or node name for Fence
        self.origin = origin  # node it runs on now
        self.destination = destination  # node it will run on
        self.reason = reason  # "node availability", "no quorum", "required rsc4 start", fence reason ...
        self.blocked = blocked  # the action cannot run
        self.details = details  # the text in parentheses when it is not origin/destination alone


def changes(ws: WorkingSet, p: Planner, fenced: List[Action]) -> List[Change]:
    # Pacemaker lists node actions newest first
    newest_first = sorted(fenced, key=lambda a: -ws.node_by_uname[a.node].fence_seq)
    out = [Change("Fence", a.node, None, None, a.reason, False, a.fence_type if a.fence_type == "on" else None)
           for a in newest_first]
    for entry in rsc_changes(ws, p):
        verb, rid, origin, dest, action, source = entry[:6]
        details = entry[6] if len(entry) > 6 else None
        if source is None:
            source = action
        runnable = action.runnable if action is not None else True
        reason = source.reason if source is not None else None
        out.append(Change(verb, rid, origin, dest, reason or None, not runnable, details))
    return out


def summary_lines(items: List[Change], fence_type: str = "reboot") -> List[str]:
    """crm_simulate's "Transition Summary" lines, with its column widths."""
    lines = [f"  * Fence ({c.details or fence_type}) {c.target} '{c.reason}'" for c in items if c.verb == "Fence"]
    rendered = []
    rsc_width, detail_width = 5, 5
    for c in items:
        if c.verb == "Fence":
            continue
        origin, dest = c.origin, c.destination
        if c.details is not None:
            details = c.details
        elif origin is None:
            details = dest or ""
        elif dest is None or origin == dest:
            details = origin
        else:
            details = f"{origin} -> {dest}"
        if len(c.target) > rsc_width:
            rsc_width = len(c.target) + 2
        detail_width = max(detail_width, len(details))
        if c.reason and c.blocked:
            reason = f"due to {c.reason} (blocked)"
        elif c.reason:
            reason = f"due to {c.reason}"
        elif c.blocked:
            reason = "blocked"
        else:
            reason = None
        rendered.append((c.verb, c.target, details, reason))
    for verb, rid, details, reason in rendered:
        text = f"  * {verb:<8}   {rid:<{rsc_width}}   ( {details:>{detail_width}} )"
        if reason:
            text += "  " + reason
        lines.append(text)
    return lines


def _graph_keys(ws: WorkingSet, p: Planner) -> Dict[int, tuple]:
    """Order actions like Pacemaker's graph: by resource, stops, probes, starts, then node events."""
    rank = {}
    after = {}  # a group's running/stopped pseudo-actions come after its members' actions
    i = 0
    for top in ws.resources:
        rank[top.id] = i
        i += 1
        if top.is_group or top.is_clone:
            for m in top.members:
                rank[m.id] = i
                i += 1
                for mm in (m.members if m.is_group else ()):
                    rank[mm.id] = i
                    i += 1
                if m.is_group:
                    after[m.id] = i
                    i += 1
            after[top.id] = i
            i += 1
    node_pos = {n.uname: k for k, n in enumerate(ws.nodes)}
    task_rank = {"stop": 0, "cancel": 1, "delete": 1, "monitor": 2, "migrate_to": 3, "migrate_from": 3,
                 "start": 3}
    keys = {}
    for a in p.actions:
        if a.rsc is None:
            keys[a.id] = (i, 0, 0, a.id)
            continue
        t = task_rank.get(a.task, 4)
        if a.task == "monitor" and a.interval_ms:
            t = 5
        if a.pseudo and a.task in ("start", "stop"):
            t = -1
        if a.rsc in after and a.task in ("running", "stopped"):
            keys[a.id] = (i + after[a.rsc], 0, 0, a.id)  # after every resource's own actions
            continue
        if a.rsc in ws.prims:
            # a primitive's actions: newest first (Pacemaker prepends them to the resource's list)
            keys[a.id] = (rank.get(a.rsc, i), 0, -a.stage, -a.id)
            continue
        keys[a.id] = (rank.get(a.rsc, i), t, -node_pos.get(a.node, 0), a.id)
    return keys


def executed(p: Planner) -> List[Action]:
    """Actions that run, in the order crm_simulate's simulated execution fires them:
    passes over the graph in its order, each action confirmed as soon as it is fired."""
    keep = [a for a in p.actions if a.runnable and (not a.optional or a.printed)]
    ids = {a.id for a in keep}
    deps: Dict[int, List[int]] = {a.id: [] for a in keep}
    for first, then, flags in p.edges:
        if first.id in ids and then.id in ids and first.id not in deps[then.id] and p.in_graph(first, then, flags):
            deps[then.id].append(first.id)
    keys = _graph_keys(p.ws, p)
    remaining = sorted(keep, key=lambda a: keys[a.id])
    done: set = set()
    order: List[Action] = []
    while remaining:
        left = []
        for a in remaining:
            if all(d in done for d in deps[a.id]):
                order.append(a)
                done.add(a.id)
            else:
                left.append(a)
        if len(left) == len(remaining):
            order.extend(left)  # a cycle: keep every action visible
            break
        remaining = left
    return order


def executed_lines(ws: WorkingSet, order: List[Action]) -> List[str]:
    lines = []
    for a in order:
        if a.kind == "crm_event":
            if a.task == "stonith":
                lines.append(f"  * Fencing {a.node} ({a.fence_type})")
            else:
                lines.append(f"  * Cluster action:  {a.task} on {a.node}")
        elif a.pseudo:
            lines.append(f"  * Pseudo action:   {a.key}")
        else:
            task = a.task
            if a.interval_ms:
                task = f"{a.task}={a.interval_ms}"
            r = ws.prims.get(a.rsc)
            name = a.rsc
            if r is not None and r.clone is not None and not r.clone.unique and r.history_name:
                name = r.history_name  # crm_simulate names an anonymous instance as its history does
            lines.append(f"  * Resource action: {name:<15} {task} on {a.node}")
    return lines


def status_lines(ws: WorkingSet, placement: Dict[str, List[str]], fenced_nodes=(),
                 revised: bool = False, touched=()) -> List[str]:
    out = ["  * Node List:"]
    online, offline = [], []
    for n in ws.nodes:
        if revised and n.uname in fenced_nodes:
            offline.append(n.uname)
        elif n.unclean:
            out.append(f"    * Node {n.uname}: UNCLEAN ({'online' if n.online else 'offline'})")
        elif n.online and n.standby and not n.pending:
            active = any(n.uname in nodes for nodes in placement.values())
            out.append(f"    * Node {n.uname}: standby" + (" (with active resources)" if active else ""))
        elif n.online and n.pending:
            out.append(f"    * Node {n.uname}: pending")
        elif n.online and n.maintenance:
            out.append(f"    * Node {n.uname}: maintenance")
        elif n.online:
            online.append(n.uname)
        else:
            offline.append(n.uname)
    if online:
        out.append(f"    * Online: [ {' '.join(online)} ]")
    if offline:
        out.append(f"    * OFFLINE: [ {' '.join(offline)} ]")
    out.append("")
    out.append("  * Full List of Resources:")
    for top in (ws.display_resources or ws.resources):
        if top.is_group:
            out.append(f"    * Resource Group: {top.id}:")
            for m in top.members:
                out.append("      " + _rsc_line(ws, m, placement.get(m.id, []), revised, touched, fenced_nodes))
        elif top.is_clone:
            out.extend(_clone_lines(ws, top, placement, revised, touched, fenced_nodes))
        else:
            if top.orphan and not placement.get(top.id):
                continue
            out.append("    " + _rsc_line(ws, top, placement.get(top.id, []), revised, touched, fenced_nodes))
    return out


def _clone_lines(ws: WorkingSet, c, placement, revised: bool, touched, fenced_nodes) -> List[str]:
    """crm_mon's clone display: instances in full when unique, failed or unmanaged; the others
    summed up as Started: [ nodes ] and Stopped: [ nodes ]."""
    head = f"    * Clone Set: {c.id} [{c.group_cfg.id if c.group_cfg is not None else c.child_id}]"
    if c.promotable:
        head += " (promotable)"
    if c.unique:
        head += " (unique)"
    flags = []
    if c.target_role == STOPPED:
        flags.append("disabled")
    if not c.managed:
        flags.append("unmanaged")
    out = [head + (" (" + ", ".join(flags) + ")" if flags else "") + ":"]
    started: List[str] = []
    promoted: List[str] = []
    full = []
    for r in leaves(c):
        nodes = placement.get(r.id, [])
        shown_failed = r.failed and (not revised or r.id not in touched)
        if c.unique or (nodes and (shown_failed or not r.shown_managed or r.blocked or len(nodes) > 1)):
            if nodes or not r.removed:
                full.append("      " + _rsc_line(ws, r, nodes, revised, touched, fenced_nodes))
        elif nodes:
            role = r.next_role if revised else r.role
            (promoted if (c.promotable and role == PROMOTED) else started).extend(nodes)
    out.extend(full)
    order = [n.uname for n in ws.nodes]
    for label, names in (("Promoted", promoted), ("Unpromoted" if c.promotable else "Started", started)):
        if names:
            names = sorted(set(names), key=order.index)
            out.append(f"      * {label}: [ {' '.join(names)} ]")
    if not c.unique:
        running = set()
        for r in leaves(c):
            running.update(placement.get(r.id, []))
        stopped = [n.uname for n in ws.nodes if n.uname not in running
                   and c.allowed.get(n.uname, -1) >= 0 or (n.uname not in running and ws.symmetric
                                                            and n.uname not in c.allowed)]
        if stopped:
            out.append(f"      * Stopped: [ {' '.join(stopped)} ]")
    return out


def _rsc_line(ws: WorkingSet, r, nodes: List[str], revised: bool, touched=(), fenced_nodes=()) -> str:
    head = f"* {r.id}\t({r.agent}):\t "
    flags = []
    if r.orphan:
        head += "ORPHANED "
    if r.target_role == STOPPED:
        flags.append("disabled")
    if r.blocked:
        flags.append("blocked")
    elif not r.shown_managed:
        flags.append("unmanaged")
    state = "Started"
    if r.failed and (not revised or r.id not in touched):
        state = "FAILED"
    elif r.start_pending and not revised:
        state = "Starting"
    if not nodes:
        text = "Stopped"
    elif len(nodes) == 1:
        node = ws.node_by_uname.get(nodes[0])
        text = f"{state} {nodes[0]}"
        if node is not None and node.unclean and not node.online and \
                not (revised and node.uname in fenced_nodes):
            text += " (UNCLEAN)"
    else:
        text = f"{state}{{flags}} [ {' '.join(nodes)} ]"  # in the order the history showed them
    if r.failure_ignored:
        flags.append("failure ignored")
    flag_text = " (" + ", ".join(flags) + ")" if flags else ""
    if "{flags}" in text:  # several nodes: crm_mon puts the flags before the node list
        return head + text.replace("{flags}", flag_text)
    return head + text + flag_text


def counts_line(ws: WorkingSet) -> str | None:
    """crm_mon's "N of M resource instances DISABLED and K BLOCKED" line, when it applies."""
    prims = [r for r in ws.prims.values() if not r.orphan]
    disabled = sum(1 for r in prims if r.target_role == STOPPED)
    blocked = sum(1 for r in prims if r.blocked)
    if not disabled and not blocked:
        return None
    return (f"{disabled} of {len(prims)} resource instances DISABLED and {blocked} BLOCKED "
            "from further action due to failure")
