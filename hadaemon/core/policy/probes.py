"""Orderings of probes before other resources' actions (Pacemaker's pcmk__order_probes): a resource not
probed yet may turn out to be running, so what must wait for its stop, or for something that a restart
would stop, waits for its probes. These orderings are optional: they change no action, only the graph's
inputs (and so the order crm_simulate's simulated run fires the actions in)."""
from __future__ import annotations

from hadaemon.core.policy.planner import ANTI_COLOCATION, CONVERTED, GRAPH_HIDDEN, IMPLIES_THEN, LOAD, _top

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Tuple

    from hadaemon.core.policy.planner import Planner
    from hadaemon.core.policy.graph import Action


def _parent(rsc):
    """The resource's direct parent: its group, else its clone (None for a top-level resource)."""
    group = getattr(rsc, "group", None)
    return group if group is not None else getattr(rsc, "clone", None)


def _probes(p: Planner, rsc) -> List[Action]:
    """A resource's probes (its monitors of interval 0): a primitive's own, none for a group or clone."""
    if rsc is None or rsc.is_group or rsc.is_clone:
        return []
    return [a for a in p.rsc_actions(rsc.id, "monitor") if a.interval_ms == 0]


def _compatible_instance(probe_rsc, clone):
    """The instance of an interleaved clone placed where the probed resource is placed
    (pcmk__find_compatible_instance with the assigned nodes), or None."""
    node = probe_rsc.assigned
    if node is None:
        return None
    for inst in clone.instances:
        if inst.assigned is node:
            return inst
    return None


def _restart_orderings(p: Planner, probe: Action, probe_rsc, after: Action,
                       out: Dict[int, List[Tuple[Action, int]]], tracking: set) -> None:
    """add_restart_orderings_for_probe: a probe ordered (directly or through implies-then orderings)
    before another primitive's start or promote is also ordered before that primitive's stops or demotes
    (in case the start is part of a restart); followed recursively, and from a group or clone action to
    its children's (only the compatible instance of an interleaved clone)."""
    if after.id in tracking:
        return
    tracking.add(after.id)
    arsc = p.rsc_of.get(after.id)
    if arsc is not None and not arsc.is_group and not arsc.is_clone and arsc is not probe_rsc:
        task = {"start": "stop", "promote": "demote"}.get(after.task)
        if task is not None:
            for then in p.rsc_actions(arsc.id, task):
                if not then.pseudo:  # e.g. a stop implied by fencing
                    p.order(probe, then, 0)
    interleave, compatible = False, None
    if arsc is not None and arsc.is_clone:
        interleave = arsc.interleave
        if interleave:
            compatible = _compatible_instance(probe_rsc, arsc)
    for then, flags in out.get(after.id, ()):
        if not flags & IMPLIES_THEN:
            # only from a group's or clone's action to its children's (not to the probe's own parent's)
            trsc = p.rsc_of.get(then.id)
            if arsc is None or not (arsc.is_group or arsc.is_clone) or _parent(probe_rsc) is arsc \
                    or trsc is None or trsc.is_clone or _parent(trsc) is not arsc:
                continue
            if arsc.is_clone and interleave and (compatible is None or compatible is not trsc):
                continue
        _restart_orderings(p, probe, probe_rsc, then, out, tracking)


def _needed_before(probe: Action, then: Action) -> bool:
    """probe_needed_before_action: not before the unfencing of the probe's node (probes follow it), and
    before a shutdown only of the probe's own node."""
    if then.task == "stonith" and then.node == probe.node and then.fence_type == "on":
        return False
    if then.task == "do_shutdown" and probe.node and then.node and probe.node != then.node:
        return False
    return True


def order_probes(p: Planner) -> None:
    """pcmk__order_probes: restart orderings for every probe's 'then' actions, then "probe then X" for
    every resource-level "stop then X" ordering of another resource (add_probe_orderings_for_stops;
    anti-colocation and load orderings keep their kind: graph inputs only on the same node)."""
    out: Dict[int, List[Tuple[Action, int]]] = {}
    for first, then, flags in p.edges:
        if not flags & (GRAPH_HIDDEN | CONVERTED):
            out.setdefault(first.id, []).append((then, flags))
    for first, then, flags in p.first_links:
        out.setdefault(first.id, []).append((then, flags))
    for r in p.ws.prims.values():
        in_clone = _top(r).is_clone
        for probe in _probes(p, r):
            for then, _flags in list(out.get(probe.id, ())):
                if in_clone and then.rsc == r.id:
                    continue  # an instance's probe comes before its clone's start, not its own
                _restart_orderings(p, probe, r, then, out, set())
    for first, then_rsc, ttask, then_action, flags in p.stop_orders:
        probes = _probes(p, first)
        if not probes:
            continue
        if then_action is not None:
            thens = [then_action]
        elif then_rsc is not None:
            thens = p.rsc_actions(then_rsc.id, ttask)
        else:
            thens = []
        kind = flags & (ANTI_COLOCATION | LOAD)
        for probe in probes:
            for then in thens:
                if _needed_before(probe, then):
                    p.order(probe, then, kind)
