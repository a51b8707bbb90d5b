"""Stage 4d: fencing and shutdowns with their orderings, unfencing, utilization's load_stopped
pseudo-actions and the load orderings dropped to avoid graph loops (split from actions.py)."""
from __future__ import annotations

try:  # the C type collections itself exports: importing collections costs start-up time
    from _collections import defaultdict
except ImportError:  # a Python without CPython's accelerator modules
    from collections import defaultdict

from hadaemon.core.policy.graph import Action
from hadaemon.core.policy.planner import (
    GRAPH_HIDDEN, IMPLIES_THEN, LOAD, LOAD_MIGRATE, RUNNABLE_LEFT, Planner, _top)
from hadaemon.core.policy.resources import WNode

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List


# --- fencing ------------------------------------------------------------------------------

def schedule_fencing(p: Planner) -> List[Action]:
    ws = p.ws
    fenced: List[Action] = []
    any_managed = any(r.managed for r in ws.prims.values())
    for node in ws.nodes:
        if node.unclean and not node.fence_seq:
            ws.fence_seq += 1  # unseen nodes come after those found in the status section
            node.fence_seq = ws.fence_seq
    nondc_fencing: List[Action] = []
    shutdowns: List[Action] = []
    dc_down = None
    for node in ws.nodes:
        if node.unclean and any_managed and ws.can_fence(node):
            a = Action(len(p.actions), f"stonith-{node.uname}-{ws.fence_action}", "stonith", None,
                       node.uname, kind="crm_event", optional=False)
            a.fence_type = ws.fence_action
            a.reason = node.fence_reason or "node is unclean"
            p.actions.append(a)
            node.fence_action = a
            fenced.append(a)
            if node.is_dc:
                dc_down = a
            else:
                if not ws.concurrent_fencing and nondc_fencing:
                    p.order(nondc_fencing[-1], a, 0)  # without concurrent fencing, one after another
                nondc_fencing.append(a)
        elif node.online and node.shutdown:
            a = Action(len(p.actions), f"do_shutdown-{node.uname}", "do_shutdown", None, node.uname,
                       kind="crm_event", optional=False)
            p.actions.append(a)
            if node.is_dc:
                dc_down = a
            else:
                shutdowns.append(a)
            for r in ws.prims.values():
                for stop in p.rsc_actions(r.id, "stop"):
                    if stop.node == node.uname:
                        p.order(stop, a, 0)
                        p.constraint(r, "stop", None, None, 0, a)
    if dc_down is not None:
        # schedule_fencing_and_shutdowns: the DC goes last (no repeated elections): after the other nodes'
        # shutdowns (when it shuts down itself) and after every other fencing (the last of a serial chain)
        if dc_down.task == "do_shutdown":
            for a in shutdowns:
                p.order(a, dc_down, 0)
        for a in (nondc_fencing if ws.concurrent_fencing else nondc_fencing[-1:]):
            p.order(a, dc_down, 0)
    for a in fenced:
        node = ws.node_by_uname[a.node]
        for r in ws.prims.values():
            # order_stop_vs_fencing: the stops there are implied by the fencing (pseudo-actions); those
            # of a resource requiring fencing, and its top resource's stop, come after it
            implicit = r.requires == "fencing" and r.managed
            for stop in p.rsc_actions(r.id, "stop"):
                if stop.node == node.uname:
                    stop.pseudo = True
                    stop.runnable = True
                    if implicit:
                        p.order(a, stop, IMPLIES_THEN)
                        top = _top(r)
                        for parent_stop in p.rsc_actions(top.id, "stop")[:1]:
                            p.order(a, parent_stop, 0)
                    if r.requires != "fencing" and any(n is not node and not n.unclean for n in r.running_on):
                        p.dangling.add(stop.id)  # active elsewhere too (requires quorum): no restart there
            # and so are its demotes there (after the fencing when it requires fencing)
            for demote in p.rsc_actions(r.id, "demote"):
                if demote.node == node.uname:
                    demote.pseudo = True
                    demote.runnable = True
                    if implicit:
                        p.order(a, demote, 0)
            if r.managed:
                _order_start_vs_fencing(p, r, a, node)
    return fenced


def _order_start_vs_fencing(p: Planner, r, fencing: Action, target: WNode) -> None:
    """order_start_vs_fencing: a resource requiring fencing starts and promotes after every fencing; one
    requiring quorum starts after the fencing of a node it may run on where its state is unknown (it may
    be active there, like waiting for a probe)."""
    if r.requires == "fencing":
        for task in ("start", "promote", "migrate_to"):  # migrate_to takes the start's needs
            for a in p.rsc_actions(r.id, task):
                p.order(fencing, a, 0)
    elif r.requires == "quorum" and target.uname in r.allowed:
        c = r.clone
        known = target.uname in r.known_on or (
            c is not None and not c.unique and r.group is None and target.uname in c.known_on)
        if not known:
            for a in p.rsc_actions(r.id, "start"):
                p.order(fencing, a, RUNNABLE_LEFT)


def _load_stopped(p: Planner) -> None:
    """With a placement strategy, a resource with utilization stops before its node's load_stopped_<node>
    pseudo-action, which comes before its starts (and migrate_to towards) that node, so capacity is freed
    before it is used (pcmk__create_utilization_constraints)."""
    ws = p.ws
    if ws.placement_strategy == "default":
        return
    pseudo: Dict[str, Action] = {}

    def load_stopped(uname: str) -> Action:
        a = pseudo.get(uname)
        if a is None:
            a = Action(len(p.actions), f"load_stopped_{uname}", "load_stopped", None, uname, pseudo=True,
                       optional=False)
            p.actions.append(a)
            pseudo[uname] = a
        return a

    users = [r for r in ws.prims.values() if r.utilization]
    needed = {n.uname for r in users for n in r.running_on} | {u for r in users for u in r.allowed}
    for node in reversed(ws.nodes):  # independent ones are listed as crm_simulate lists them
        if node.uname in needed:
            load_stopped(node.uname)
    for r in users:
        for node in r.running_on:
            ls = load_stopped(node.uname)
            p.constraint(r, "stop", None, None, LOAD, ls)
            for stop in p.rsc_actions(r.id, "stop"):
                if stop.node == node.uname:
                    p.order(stop, ls, 0)
        for uname in r.allowed:
            ls = load_stopped(uname)
            for start in p.rsc_actions(r.id, "start"):
                if start.node == uname:
                    p.order(ls, start, 0)
            for mig in p.rsc_actions(r.id, "migrate_to"):
                if mig.migrate_target == uname:
                    p.order(ls, mig, LOAD_MIGRATE)


def schedule_unfencing(p: Planner) -> None:
    """Unfencing (pcmk__order_vs_unfence, pcmk__order_restart_vs_unfence, trigger_unfencing): when a fence
    device provides=unfencing or a resource requires=unfencing, a probe of a fence device or of a resource
    that needs unfencing on an online node that was never unfenced (#node-unfenced unset or 0) requires
    unfencing that node first ("Fence (on)", reason "required by RSC monitor"): the probes wait for it,
    and a resource needing unfencing active there stops before it and starts again after it."""
    ws = p.ws
    if not getattr(ws, "enable_unfencing", False):
        return
    probes: Dict[str, List[Action]] = defaultdict(list)
    for a in p.actions:
        if a.probe and a.node is not None:
            probes[a.node].append(a)
    for node in ws.nodes:
        if not node.online or node.unclean or node.shutdown or node.pending:
            continue
        if node.attrs.get("#node-unfenced") not in (None, "0"):
            continue  # unfenced already: the (optional) unfencing is never executed
        unfence = None
        for probe in probes.get(node.uname, ()):
            r = p.rsc_of.get(probe.id)
            if r is None or not (r.is_stonith or getattr(r, "needs_unfencing", False)):
                continue
            if unfence is None:
                unfence = Action(len(p.actions), f"stonith-{node.uname}-on", "stonith", None, node.uname,
                                 kind="crm_event", optional=False)
                unfence.fence_type = "on"
                unfence.reason = f"required by {r.id} {probe.task}"
                p.actions.append(unfence)
                ws.fence_seq += 1
                node.fence_seq = ws.fence_seq
            p.order(unfence, probe, 0)
        if unfence is None:
            continue
        for r in ws.prims.values():
            if r.is_stonith or not getattr(r, "needs_unfencing", False):
                continue
            for stop in p.rsc_actions(r.id, "stop"):
                if stop.node == node.uname:
                    p.order(stop, unfence, 0)
            for start in p.rsc_actions(r.id, "start"):
                if start.node == node.uname:
                    p.order(unfence, start, IMPLIES_THEN)


def _disable_loop_orderings(p: Planner) -> None:
    """pcmk__disable_invalid_orderings: a load_stopped -> migrate_to ordering that would close a loop in the
    graph (resources migrating to each other's node) is dropped; the migrate_to actions are checked in
    Pacemaker's list order, the newest first (new actions are prepended to the working set's list)."""
    candidates = [i for i, (f, t, flags) in enumerate(p.edges) if flags & LOAD_MIGRATE and f.executed and t.executed]
    if not candidates:
        return
    out: Dict[int, List[int]] = defaultdict(list)
    for f, t, flags in p.edges:
        if f.executed and t.executed and p.in_graph(f, t, flags):
            out[f.id].append(t.id)
    for i in sorted(candidates, key=lambda i: (-p.edges[i][1].id, p.edges[i][0].id)):
        first, then, flags = p.edges[i]
        seen, todo, loop = {then.id}, [then.id], False
        while todo and not loop:
            for nxt in out.get(todo.pop(), ()):
                if nxt == first.id:
                    loop = True
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if loop:
            p.edges[i] = (first, then, flags | GRAPH_HIDDEN)
            out[first.id].remove(then.id)
