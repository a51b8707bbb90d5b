"""Stages 2-3: node criteria (locations, stickiness, fail limits) and assignment to nodes."""
from __future__ import annotations

try:  # the C function functools itself exports: importing functools (and collections) costs start-up time
    from _functools import cmp_to_key
except ImportError:  # a Python without CPython's accelerator modules
    from functools import cmp_to_key

from hadaemon.core.cib.rules import eval_rule
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.unpack import WorkingSet, failcount
from hadaemon.core.policy.working import (
    leaves, PROMOTED, STARTED, STOPPED, UNKNOWN, UNPROMOTED, Coloc, WNode, role_from_text,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict

PRIMITIVE_STAGE = "pcmk__primitive_assign"
GROUP_STAGE = "pcmk__group_assign"


# --- node criteria -------------------------------------------------------------------------

def _rsc_location(ws: WorkingSet, rsc, scores: Dict[str, int]) -> None:
    """Apply node scores to a resource; a colocated group passes real scores to its first member only."""
    if not scores:
        return
    if rsc.is_clone:
        for uname, score in scores.items():
            rsc.allowed[uname] = add_scores(rsc.allowed[uname], score) if uname in rsc.allowed else score
        for inst in rsc.instances:
            _rsc_location(ws, inst, scores)
        return
    targets = [rsc]
    if rsc.is_group:
        targets = [rsc] + rsc.members
    for i, r in enumerate(targets):
        zero = rsc.is_group and rsc.colocated and i >= 2
        for uname, score in scores.items():
            s = 0 if zero else score
            if uname in r.allowed:
                r.allowed[uname] = add_scores(r.allowed[uname], s)
            else:
                r.allowed[uname] = s


def apply_locations(ws: WorkingSet) -> None:
    for loc in ws.cib.locations:
        rsc = ws.lookup(loc.rsc)
        if rsc is None:
            continue
        if rsc.orphan:
            continue
        if loc.role and role_from_text(loc.role) != STARTED:
            continue
        if loc.role and loc.role.lower() in ("master", "promoted", "slave", "unpromoted"):
            continue
        scores: Dict[str, int] = {}
        if loc.node is not None:
            node = ws.node_by_uname.get(loc.node)
            if node is not None:
                scores[node.uname] = loc.score
        for rule in loc.rules:
            if rule.role and rule.role.lower() not in ("started",):
                continue
            for node in ws.nodes:
                if not eval_rule(rule, node.attrs, now=ws.now):
                    continue
                if rule.score is not None:
                    s = rule.score
                elif rule.score_attribute:
                    s = parse_score(node.attrs.get(rule.score_attribute), 0) or 0
                else:
                    s = 0
                scores[node.uname] = add_scores(scores.get(node.uname, 0), s) \
                    if node.uname in scores else s
        _rsc_location(ws, rsc, scores)
        if loc.discovery in ("never", "exclusive"):
            for r in leaves(rsc):
                for uname in scores:
                    r.discovery[uname] = loc.discovery


_HEALTH_COLORS = {  # strategy -> (red, yellow, green); None: from the node-health-* options
    "migrate-on-red": (-INFINITY, 0, 0), "only-green": (-INFINITY, -INFINITY, 0),
    "progressive": None, "custom": None,
}


def apply_node_health(ws: WorkingSet) -> None:
    """node-health-strategy (pcmk__apply_node_health): a node's #health* attributes (red, yellow,
    green or a score) add up to a location score for every resource on it; a negative one spares
    resources with allow-unhealthy-nodes=true."""
    opt = ws.cib.option
    strategy = (opt("node-health-strategy") or "none").lower()
    if strategy not in _HEALTH_COLORS:
        return
    colors = _HEALTH_COLORS[strategy]
    if colors is None:
        colors = tuple(parse_score(opt(f"node-health-{c}") or d, 0) or 0
                       for c, d in (("red", "-INFINITY"), ("yellow", "0"), ("green", "0")))
    by_color = dict(zip(("red", "yellow", "green"), colors))
    base = (parse_score(opt("node-health-base") or "0", 0) or 0) if strategy == "progressive" else 0
    for node in ws.nodes:
        health = base
        for name, value in node.attrs.items():
            if not name.startswith("#health"):
                continue
            v = (value or "").strip().lower()
            score = by_color[v] if v in by_color else parse_score(value, None)
            if score is not None:
                health = add_scores(score, health)
        if health == 0:
            continue
        for rsc in ws.resources:
            if rsc.orphan:
                continue
            if health < 0 and truth_meta(rsc.meta.get("allow-unhealthy-nodes")):
                continue
            _rsc_location(ws, rsc, {node.uname: health})


def truth_meta(value) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "on", "y")


def _ticket_policy(ws: WorkingSet, t) -> str:
    policy = (t.loss_policy or "").lower()
    role = role_from_text(t.role) if t.role and t.role.lower() != "started" else None
    if policy == "fence" and not ws.stonith_enabled:
        policy = "stop"
    if policy not in ("stop", "demote", "fence", "freeze"):
        policy = "demote" if role == PROMOTED else "stop"
    return policy


def apply_tickets(ws: WorkingSet) -> None:
    """rsc_ticket (pcmk_sched_tickets.c): without its ticket (or with the ticket in standby) a
    resource may not run; one that runs when the ticket is revoked follows the loss-policy."""
    for t in ws.cib.rsc_tickets:
        rsc = ws.lookup(t.rsc)
        if rsc is None:
            continue
        state = ws.cib.tickets.get(t.ticket)
        granted = state.granted if state is not None else False
        standby = state.standby if state is not None else False
        if granted and not standby:
            continue
        role = role_from_text(t.role) if t.role and t.role.lower() != "started" else None
        policy = _ticket_policy(ws, t)
        if rsc.is_clone and rsc.promotable and role == PROMOTED:
            rsc.promotion_banned = True
        for r in leaves(rsc):
            _ticket_for(ws, r, role, policy, granted)


def _ban(ws: WorkingSet, r) -> None:
    for n in ws.nodes:
        r.allowed[n.uname] = -INFINITY


def _ticket_for(ws: WorkingSet, r, role, policy: str, granted: bool) -> None:
    if not granted and r.running_on:
        if policy == "stop":
            _ban(ws, r)
        elif policy == "demote":
            if role != PROMOTED:
                _ban(ws, r)
        elif policy == "fence":
            if role is not None and role != r.role and not (role == UNPROMOTED and r.role == STARTED):
                return
            _ban(ws, r)
            for node in r.running_on:
                ws.fence_node(node, "deadman ticket was lost")
                node.freeze()
        elif policy == "freeze":
            if role is not None and role != r.role and not (role == UNPROMOTED and r.role == STARTED):
                return
            r.managed = False
            r.blocked = True
    elif role != PROMOTED or policy == "stop":
        _ban(ws, r)


def apply_shutdown_locks(ws: WorkingSet) -> None:
    """shutdown-lock (pcmk__primitive_shutdown_lock): a resource active on one node that shuts down
    cleanly (or locked there by its history) may run only there until the node is back or the lock
    expires (shutdown-lock-limit); fence devices and clone instances are never locked."""
    if not ws.shutdown_lock:
        return
    for r in ws.prims.values():
        if r.is_stonith or r.clone is not None or r.orphan:
            continue
        if r.lock_node is not None:
            if r.running_on:
                r.lock_node = None  # started elsewhere meanwhile: leave it alone
        elif len(r.running_on) == 1 and r.running_on[0].shutdown and not r.running_on[0].unclean:
            node = r.running_on[0]
            r.lock_node = node
            try:
                r.lock_time = int(node.attrs.get("shutdown") or 0)
            except ValueError:
                r.lock_time = 0
        if r.lock_node is None:
            continue
        for node in ws.nodes:
            if node is not r.lock_node:
                r.allowed[node.uname] = -INFINITY


def apply_exclusive_discovery(ws: WorkingSet) -> None:
    """resource-discovery=exclusive: the resource may run only where such a location names it."""
    for r in ws.prims.values():
        if "exclusive" in r.discovery.values():
            for node in ws.nodes:
                if r.discovery.get(node.uname) != "exclusive":
                    r.allowed[node.uname] = -INFINITY


def apply_stickiness(ws: WorkingSet) -> None:
    for r in ws.prims.values():
        if not r.managed or r.stickiness < 1 or len(r.running_on) != 1:
            continue
        node = r.running_on[0]
        if not ws.symmetric and node.uname not in r.allowed:
            continue
        r.allowed[node.uname] = add_scores(r.allowed.get(node.uname, 0), r.stickiness)


def apply_fail_limits(ws: WorkingSet) -> None:
    for node in ws.nodes:
        if not any(k.startswith("fail-count-") for k in node.attrs):
            continue
        for r in ws.prims.values():
            if r.migration_threshold <= 0 or r.failure_ignored:
                continue  # pcmk__threshold_reached: ignored failures (on-fail=ignore) ignore the threshold too
            fc = failcount(ws, r, node)
            if fc > 0 and r.migration_threshold - fc <= 0:
                r.allowed[node.uname] = -INFINITY


def build_colocations(ws: WorkingSet) -> None:
    group_cons = {g: [] for g in ws.groups}
    group_lhs = {g: [] for g in ws.groups}
    clone_cons = []
    for c in ws.cib.colocations:
        dep = ws.lookup(c.rsc)
        primary = ws.lookup(c.with_rsc)
        if dep is None or primary is None or dep is primary or c.score == 0:
            continue
        dep_role = _coloc_role(c.rsc_role)
        primary_role = _coloc_role(c.with_rsc_role)
        influence = c.influence
        if influence is None:
            influence = dep.members[0].critical if dep.is_group and dep.members else \
                getattr(dep, "critical", True)
        co = Coloc(c.id, dep, primary, c.score, dep_role, primary_role, c.node_attribute, influence)
        if dep.is_group:
            group_cons[dep.id].append(co)
        else:
            dep.cons.append(co)
        if primary.is_group:
            group_lhs[primary.id].append(co)
        else:
            primary.cons_lhs.append(co)
        if dep.is_clone:
            clone_cons.append((dep, co, False))
        if primary.is_clone:
            clone_cons.append((primary, co, True))
    for g in ws.groups.values():
        prev = None
        for m in g.members:
            if prev is not None and g.colocated:
                co = Coloc("group:internal_colocation", m, prev, INFINITY, influence=m.critical)
                m.cons.append(co)
                prev.cons_lhs.append(co)
            prev = m
    # Pacemaker keeps these lists sorted: by the other resource's priority, groups before
    # primitives, then by id; a later constraint goes before an equal earlier one.
    # a clone's colocations also bind its instances, unless the clone runs everywhere anyway
    for clone, co, with_this in clone_cons:
        everywhere = _everywhere(ws, clone)
        if with_this:
            if co.influence and (not everywhere or co.score < 0):
                for inst in clone.instances:
                    (inst.members[-1] if inst.is_group else inst).cons_lhs.append(co)
        elif not everywhere or co.score < 0 or co.score >= INFINITY:
            for inst in clone.instances:
                (inst.members[0] if inst.is_group else inst).cons.append(co)
    for r in list(ws.prims.values()) + list(ws.groups.values()) + list(ws.clones.values()):
        r.cons = _sorted(r.cons, lambda c: c.primary)
        r.cons_lhs = _sorted(r.cons_lhs, lambda c: c.dep)
    for g in ws.groups.values():
        if g.members:
            g.members[0].cons.extend(_sorted(group_cons[g.id], lambda c: c.primary))
            g.members[-1].cons_lhs.extend(_sorted(group_lhs[g.id], lambda c: c.dep))
            # a member after an unmanaged one is not chained to the group's colocations through it:
            # it takes the group's mandatory ones itself (pcmk__group_with_colocations)
            for i, m in enumerate(g.members[1:], 1):
                if any(not earlier.managed for earlier in g.members[:i]):
                    m.cons.extend(_sorted([c for c in group_cons[g.id] if c.score >= INFINITY],
                                          lambda c: c.primary))


def _sorted(cons, other):
    keyed = [((-other(c).priority, _variant(other(c)), other(c).id.encode(), -i), c)
             for i, c in enumerate(cons)]
    return [c for _k, c in sorted(keyed, key=lambda kc: kc[0])]


def _variant(rsc) -> int:
    """Pacemaker sorts colocations by the other resource's variant: clones, groups, primitives."""
    return 0 if rsc.is_clone else (1 if rsc.is_group else 2)


def _everywhere(ws: WorkingSet, clone) -> bool:
    """Whether the clone has an instance for every node that can run resources and is allowed."""
    available = sum(1 for uname in clone.allowed if ws.node_by_uname[uname].can_run())
    return available <= clone.clone_max


def _coloc_role(text: str | None):
    if text is None or text.lower() == "started":
        return None
    return text.lower()


# --- assignment ---------------------------------------------------------------------------

def can_run_any(ws: WorkingSet, table: Dict[str, int]) -> bool:
    for uname, score in table.items():
        if score >= 0 and ws.node_by_uname[uname].can_run():
            return True
    return False


UNUSABLE = -100 * INFINITY  # Pacemaker's INFINITY_HACK: a node a nonnegative merge found unusable


def _add_matching(ws: WorkingSet, work: Dict[str, int], rsc, attr: str | None, factor: float,
                  only_positive: bool = False) -> None:
    """Add factor x (rsc's best score on nodes sharing the node attribute) to each node in work."""
    attr = attr or "#uname"
    if attr in ("#uname", "#id"):
        def best(node):
            score = rsc.allowed.get(node.uname)
            return -INFINITY if score is None or not node.can_run() else score
    else:
        by_value: Dict[str | None, int] = {}
        for uname, score in rsc.allowed.items():
            node = ws.node_by_uname[uname]
            if node.can_run():
                value = node.attrs.get(attr)
                if score > by_value.get(value, -INFINITY - 1):
                    by_value[value] = score

        def best(node):
            return by_value.get(node.attrs.get(attr), -INFINITY)
    for uname in list(work):
        score = best(ws.node_by_uname[uname])
        if factor < 0 and score < 0:
            continue
        if work[uname] == UNUSABLE:
            continue
        wf = factor * score
        weight = int(wf - 0.5) if wf < 0 else int(wf + 0.5)
        if weight == 0 and score != 0:
            weight = 1 if factor > 0 else (-1 if factor < 0 else 0)
        new = add_scores(weight, work[uname])
        if only_positive and new < 0:
            if work[uname] > 0:
                work[uname] = UNUSABLE  # (becomes 1 once the merge is done)
            continue
        work[uname] = new


def merge_weights(ws: WorkingSet, rsc, rhs: str, nodes: Dict[str, int], attr, factor: float,
                  only_positive: bool = False) -> Dict[str, int]:
    """Fold a dependent's (and its own dependents') preferences into nodes, scaled by factor
    (pcmk__add_colocated_node_scores; only_positive: pcmk__coloc_select_nonnegative)."""
    if rsc.is_group:
        if not rsc.members:
            return nodes
        rsc = rsc.members[0]
    if rsc.merging:
        return nodes
    rsc.merging = True
    work = dict(nodes)
    _add_matching(ws, work, rsc, attr, factor, only_positive)
    if can_run_any(ws, work):
        for c in rsc.cons_lhs:
            if not (c.influence or not _running(c.primary)):
                continue
            work = merge_weights(ws, c.dep, rhs, work, c.attr, factor * c.score / float(INFINITY),
                                 only_positive)
    else:
        rsc.merging = False
        return nodes
    rsc.merging = False
    if only_positive:
        for uname, score in work.items():
            if score == UNUSABLE:
                work[uname] = 1
    return work


def _running(rsc) -> bool:
    return bool(rsc.running_on)


def _record(ws: WorkingSet, stage: str, rsc, table: Dict[str, int]) -> None:
    for node in ws.nodes:
        if node.uname in table:
            ws.scores.append((stage, rsc.id, node.uname, table[node.uname]))
        elif not ws.symmetric:
            ws.scores.append((stage, rsc.id, node.uname, -INFINITY))


def allocate_group(ws: WorkingSet, g, prefer: WNode | None = None) -> None:
    if not g.provisional or g.allocating:
        return
    g.allocating = True
    _record(ws, GROUP_STAGE, g, g.allowed)
    for m in g.members:
        _record(ws, GROUP_STAGE, m, m.allowed)
    for m in g.members:
        allocate(ws, m, prefer)
    g.allocating = False
    g.provisional = False


def _coloc_primary(c: Coloc):
    p = c.primary
    if p.is_clone:
        return None if p.provisional else p
    if p.is_group:
        if p.provisional or not p.members:
            return None
        return p.members[-1] if c.score >= INFINITY else p.members[0]
    return p


def _apply_colocation(ws: WorkingSet, dep, c: Coloc) -> None:
    primary = _coloc_primary(c)
    if primary is None or primary.provisional or not dep.provisional or c.score == 0:
        return
    if primary.is_clone and primary.promotable and c.primary_role is not None:
        _update_dependent_with_promotable(ws, dep, primary, c)
        return
    if c.dep_role is not None or c.primary_role is not None:
        return
    if primary.is_clone:
        _apply_clone_colocation(ws, dep, primary, c)
        return
    attr = c.attr or "#uname"
    value = None
    if primary.assigned is not None:
        value = primary.assigned.attrs.get(attr)
    elif c.score < 0:
        return
    work = dict(dep.allowed)
    for uname in work:
        node = ws.node_by_uname[uname]
        if primary.assigned is None:
            work[uname] = add_scores(-c.score, work[uname])
        elif node.attrs.get(attr) == value:
            if c.score < INFINITY:
                work[uname] = add_scores(c.score, work[uname])
        elif c.score >= INFINITY:
            work[uname] = add_scores(-c.score, work[uname])
    if can_run_any(ws, work) or c.score <= -INFINITY or c.score >= INFINITY:
        dep.allowed = work


def _apply_clone_colocation(ws: WorkingSet, dep, clone, c: Coloc) -> None:
    """Colocation with a clone (pcmk__clone_apply_coloc_score): an interleaved clone dependent's
    instance follows the primary's instance on its node; INFINITY allows only nodes with an
    instance; any other score counts on each instance's node."""
    dep_clone = dep.clone if not dep.is_group else None
    if dep_clone is not None and dep_clone.interleave and dep_clone is c.dep:
        if dep_clone.clone_node_max != clone.clone_node_max:
            pass  # Pacemaker: cannot interleave, handled as a plain clone colocation
        else:
            match = _compatible_instance(ws, dep, clone)
            if match is not None:
                _apply_colocation(ws, dep, Coloc(c.id, dep, match, c.score, None, None, c.attr,
                                                 c.influence))
            elif c.score >= INFINITY:
                for uname in dep.allowed:
                    dep.allowed[uname] = -INFINITY
            return
    if c.score >= INFINITY:
        attr = c.attr or "#uname"
        values = {inst.assigned.attrs.get(attr) for inst in clone.instances
                  if inst.assigned is not None and not inst.blocked}
        for uname in dep.allowed:
            if ws.node_by_uname[uname].attrs.get(attr) not in values:
                dep.allowed[uname] = -INFINITY
        return
    for inst in clone.instances:
        if inst.assigned is not None:
            _apply_colocation(ws, dep, Coloc(c.id, dep, inst, c.score, None, None, c.attr, c.influence))


def _update_dependent_with_promotable(ws: WorkingSet, dep, clone, c: Coloc) -> None:
    """Colocation with a role of a promotable clone: the score counts where an instance will have
    that role; INFINITY bans every other node (except promoted with promoted)."""
    want = _role_of(c.primary_role)
    attr = c.attr or "#uname"
    values = set()
    for inst in clone.instances:
        if inst.assigned is None or _final_role(inst) != want:
            continue
        value = inst.assigned.attrs.get(attr)
        values.add(value)
        if c.score < INFINITY:
            for uname in dep.allowed:
                if ws.node_by_uname[uname].attrs.get(attr) == value:
                    dep.allowed[uname] = add_scores(dep.allowed[uname], c.score)
    both_promoted = c.dep_role in ("promoted", "master") and c.primary_role in ("promoted", "master")
    if c.score >= INFINITY and not both_promoted:
        for uname in dep.allowed:
            node = ws.node_by_uname[uname]
            if node.attrs.get(attr) in values:
                dep.allowed[uname] = add_scores(dep.allowed[uname], clone.allowed.get(uname, 0))
            else:
                dep.allowed[uname] = -INFINITY


def _compatible_instance(ws: WorkingSet, dep, clone):
    """The primary clone's instance on the dependent's node (or on its best allowed node)."""
    if dep.assigned is not None:
        nodes = [dep.assigned]
    else:
        nodes = [ws.node_by_uname[u] for u in sorted(dep.allowed, key=lambda u: (-dep.allowed[u], u))]
    for node in nodes:
        for inst in clone.instances:
            if inst.assigned is node and not inst.blocked:
                return inst
    return None


def allocate(ws: WorkingSet, rsc, prefer: WNode | None = None) -> WNode | None:
    if rsc.is_group:
        if rsc.clone is not None and rsc.clone.provisional and not rsc.clone.allocating:
            allocate_clone(ws, rsc.clone)
        allocate_group(ws, rsc, prefer)
        return rsc.assigned if rsc.clone is not None else None
    if rsc.is_clone:
        allocate_clone(ws, rsc)
        return None
    if rsc.clone is not None and rsc.clone.provisional and not rsc.clone.allocating:
        allocate_clone(ws, rsc.clone)
    if rsc.group is not None and not rsc.group.allocating:
        allocate_group(ws, rsc.group)
    if not rsc.provisional:
        return rsc.assigned
    if rsc.allocating:
        return None
    rsc.allocating = True
    for c in rsc.cons:
        # apply_this_with: scores are reverted when no node is left after a negative optional colocation
        # or one for the promoted role
        archive = dict(rsc.allowed) if (-INFINITY < c.score < 0 or c.dep_role in ("promoted", "master")) \
            else None
        allocate(ws, c.primary)
        _apply_colocation(ws, rsc, c)
        if archive is not None and not can_run_any(ws, rsc.allowed):
            rsc.allowed = archive
    for c in rsc.cons_lhs:
        if not (c.influence or not _running(c.primary)):
            continue
        rsc.allowed = merge_weights(ws, c.dep, rsc.id, rsc.allowed, c.attr, c.score / float(INFINITY))
    if rsc.next_role == STOPPED:
        for uname in list(rsc.allowed) or [n.uname for n in ws.nodes]:
            rsc.allowed[uname] = -INFINITY
    elif (rsc.next_role > rsc.role and not ws.have_quorum and ws.no_quorum_policy == "freeze"):
        rsc.next_role = rsc.role
    _record(ws, PRIMITIVE_STAGE, rsc, rsc.allowed)
    if ws.stonith_enabled and not ws.have_stonith_resource:
        rsc.managed = False
    if not rsc.managed:
        if rsc.next_role == UNKNOWN or True:
            rsc.next_role = rsc.role
        _assign(rsc, rsc.current_node(), force=True)
    elif ws.stop_all:
        _assign(rsc, None, force=True)
    else:
        if ws.placement_strategy != "default":
            most = ban_insufficient_capacity(ws, rsc)
            if prefer is None:
                prefer = most
        _choose_node(ws, rsc, prefer)
    rsc.allocating = False
    return rsc.assigned


# --- clones (pcmk__clone_assign, pcmk__assign_instances) ---------------------------------

CLONE_STAGE = "pcmk__clone_assign"


def allocate_clone(ws: WorkingSet, c) -> None:
    if not c.provisional or c.allocating:
        return
    c.allocating = True
    if c.promotable:
        _add_promotion_scores(ws, c)
    for co in c.cons:
        allocate(ws, co.primary)
    for co in c.cons_lhs:
        if not (co.influence or not _running(co.primary)):
            continue
        # a clone takes only its dependents' positive preferences (pcmk__add_dependent_scores)
        c.allowed = merge_weights(ws, co.dep, c.id, c.allowed, co.attr, co.score / float(INFINITY), True)
    _record(ws, CLONE_STAGE, c, c.allowed)
    order = sorted(c.instances, key=cmp_to_key(lambda a, b: _cmp_instance(ws, a, b)))
    _assign_instances(ws, c, order)
    if c.promotable:
        _set_instance_roles(ws, c)
    c.allocating = False
    c.provisional = False


# --- promotable clones (pcmk_sched_promotable.c) ------------------------------------------

def _counterpart(inst, r):
    """The primitive of a clone instance that corresponds to r (in a cloned group: the member with
    r's configured id)."""
    if not inst.is_group:
        return inst
    for m in inst.members:
        if m.prim is not None and r.prim is not None and m.prim.id == r.prim.id:
            return m
    return None


def _promotion_applies(ws: WorkingSet, r, node: WNode) -> bool:
    c = r.clone
    if not c.unique:
        active = None
        same = [x for x in (_counterpart(inst, r) for inst in c.instances) if x is not None]
        for inst in same:
            if node in inst.running_on:
                active = inst
                break
        if active is r:
            return r.allowed.get(node.uname, -1) >= 0
        if active is None and any(node.uname in inst.known_on for inst in same):
            return r.allowed.get(node.uname, -1) >= 0
    if not r.running_on and not r.known_on:
        return r.allowed.get(node.uname, -1) >= 0
    if node.uname in r.known_on or node in r.running_on:
        return r.allowed.get(node.uname, -1) >= 0
    return False


def promotion_score(ws: WorkingSet, r, node: WNode):
    """(score, is_default): the instance's promotion score attribute on the node (a cloned group's:
    the sum of its members')."""
    if r.is_group:
        total, default = 0, True
        for m in r.members:
            score, member_default = promotion_score(ws, m, node)
            total += score
            default = default and member_default
        return total, default
    if not _promotion_applies(ws, r, node):
        return 0, True
    names = [r.history_name or r.id]
    base = r.id.rsplit(":", 1)[0]
    if not r.clone.unique and base not in names:
        names.append(base)
    for name in names:
        value = node.attrs.get("master-" + name)
        if value is not None:
            return parse_score(value, 0) or 0, False
    return 0, True


def _add_promotion_scores(ws: WorkingSet, c) -> None:
    for r in c.instances:
        for uname in list(r.allowed):
            node = ws.node_by_uname[uname]
            if not node.can_run():
                continue
            score, _default = promotion_score(ws, r, node)
            if score > 0:
                r.allowed[uname] = add_scores(r.allowed[uname], score)
            if score > r.priority:
                r.priority = score


def _role_coloc_priority(ws: WorkingSet, r, co: Coloc) -> None:
    """A role-specific colocation of an assigned promotable instance changes its promotion priority."""
    if co.dep_role not in ("promoted", "master", "unpromoted", "slave"):
        return
    primary = co.primary
    if primary.is_clone:
        if co.dep_role not in ("promoted", "master"):
            return
        want = _role_of(co.primary_role)
        match = None
        if r.assigned is not None:
            for inst in primary.instances:
                if inst.assigned is r.assigned and not inst.blocked and \
                        (want is None or _final_role(inst) == want):
                    match = inst
                    break
        if match is not None:
            r.promo_priority = add_scores(r.promo_priority, co.score)
        elif co.score >= INFINITY:
            r.promo_priority = -INFINITY
        return
    if primary.is_group:
        primary = primary.members[-1] if primary.members else None
    if primary is None or primary.assigned is None or r.assigned is None:
        return
    attr = co.attr or "#uname"
    if r.assigned.attrs.get(attr) != primary.assigned.attrs.get(attr):
        if co.score >= INFINITY and co.dep_role in ("promoted", "master"):
            r.promo_priority = -INFINITY
        return
    want = _role_of(co.primary_role)
    if want is not None and want != _final_role(primary):
        return
    mult = -1 if co.dep_role in ("unpromoted", "slave") else 1
    r.promo_priority = add_scores(mult * co.score, r.promo_priority)


def _role_of(text):
    return role_from_text(text) if text else None


def _final_role(r):
    if r.assigned is None:
        return STOPPED
    if r.promotable:
        return r.next_role if r.next_role in (PROMOTED, UNPROMOTED) else UNPROMOTED
    return STARTED


def _set_instance_roles(ws: WorkingSet, c) -> None:
    c.promoted_counts = {}
    for r in c.instances:
        for x in (r.members if r.is_group else [r]):
            if x.role == STARTED:
                x.role = UNPROMOTED
        r.promo_priority = r.priority
        chosen = r.assigned
        if chosen is None:
            r.sort_index = r.promo_priority
            continue
        nxt = r.next_role
        if nxt in (STARTED, UNKNOWN):
            score, default = promotion_score(ws, r, chosen)
            r.promo_priority = -1 if default else score
        elif nxt in (UNPROMOTED, STOPPED):
            r.promo_priority = -INFINITY
        for loc in ws.cib.locations:
            if loc.rsc != c.id and loc.rsc != r.id:
                continue
            scores = _promoted_location_scores(ws, loc)
            if chosen.uname in scores:
                r.promo_priority = add_scores(r.promo_priority, scores[chosen.uname])
        for co in _instance_cons(r):
            _role_coloc_priority(ws, r, co)
        r.sort_index = INFINITY if nxt == PROMOTED else r.promo_priority
    # sort_promotable_instances (the clone's node scores become the promotion scores)
    table = c.allowed
    for r in c.instances:
        if r.sort_index >= 0 and r.assigned is not None and r.assigned.uname in table:
            table[r.assigned.uname] = add_scores(r.sort_index, table[r.assigned.uname])
    for co in c.cons:
        if co.dep_role in ("promoted", "master"):
            table = merge_weights(ws, co.primary, c.id, table, co.attr, co.score / float(INFINITY)) \
                if not co.primary.is_clone else _add_promoted_primary(ws, table, co)
    for co in c.cons_lhs:
        if co.primary_role in ("promoted", "master") and co.influence:
            table = merge_weights(ws, co.dep, c.id, table, co.attr, co.score / float(INFINITY), True)
    if c.promotion_banned:  # a promoted-role ticket is not granted
        table = {uname: -INFINITY for uname in table}
    c.allowed = table
    for r in c.instances:
        if not r.managed and r.next_role == PROMOTED:
            r.sort_index = INFINITY
        elif r.assigned is not None and r.sort_index >= 0:
            r.sort_index = table.get(r.assigned.uname, r.sort_index)
    order = sorted(c.instances, key=cmp_to_key(lambda a, b: _cmp_promotable(ws, a, b)))
    promoted = 0
    for r in order:
        chosen = None
        if r.sort_index >= 0 and (promoted < c.promoted_max or not c.managed):
            chosen = _node_to_promote(ws, c, r)
        if chosen is None:
            _set_unpromoted(r)
            continue
        if r.role < PROMOTED and not ws.have_quorum and ws.no_quorum_policy == "freeze":
            _set_unpromoted(r)
            continue
        c.promoted_counts[chosen.uname] = c.promoted_counts.get(chosen.uname, 0) + 1
        for x in ([r] + (r.members if r.is_group else [])):
            if x.next_role in (UNKNOWN, STARTED):
                x.next_role = PROMOTED  # set_next_role_promoted: the instance and its members
        promoted += 1
    for r in c.instances:
        for x in ([r] + (r.members if r.is_group else [])):
            if x.next_role in (UNKNOWN, STARTED):
                x.next_role = STOPPED if x.assigned is None else UNPROMOTED


def _set_unpromoted(r) -> None:
    """set_next_role_unpromoted: unpromoted where assigned, else stopped; a group's members too."""
    for x in ([r] + (r.members if r.is_group else [])):
        x.next_role = STOPPED if x.assigned is None else UNPROMOTED


def _instance_cons(r) -> list:
    """The colocations of an instance (a cloned group's: its first member's, without the group's own)."""
    if not r.is_group:
        return r.cons
    return [co for co in (r.members[0].cons if r.members else []) if co.id != "group:internal_colocation"]


def _add_promoted_primary(ws: WorkingSet, table, co: Coloc):
    """'promoted X with Y' where Y is a clone: the score counts where Y's instances run in the role."""
    want = _role_of(co.primary_role)
    out = dict(table)
    nodes = {inst.assigned.uname for inst in co.primary.instances if inst.assigned is not None
             and (want is None or _final_role(inst) == want)}
    for uname in out:
        if uname in nodes:
            out[uname] = add_scores(out[uname], co.score)
        elif co.score >= INFINITY:
            out[uname] = -INFINITY
    return out


def _promoted_location_scores(ws: WorkingSet, loc) -> Dict[str, int]:
    roles = [loc.role] if loc.role else []
    scores: Dict[str, int] = {}
    if loc.node is not None:
        if (loc.role or "").lower() in ("promoted", "master"):
            node = ws.node_by_uname.get(loc.node)
            if node is not None:
                scores[node.uname] = loc.score
        return scores
    for rule in loc.rules:
        role = (rule.role or (roles[0] if roles else "")).lower()
        if role not in ("promoted", "master"):
            continue
        for node in ws.nodes:
            if not eval_rule(rule, node.attrs, now=ws.now):
                continue
            if rule.score is not None:
                s = rule.score
            elif rule.score_attribute:
                s = parse_score(node.attrs.get(rule.score_attribute), 0) or 0
            else:
                s = 0
            scores[node.uname] = add_scores(scores.get(node.uname, 0), s) if node.uname in scores else s
    return scores


def _cmp_promotable(ws: WorkingSet, a, b) -> int:
    if a.sort_index != b.sort_index:
        return -1 if a.sort_index > b.sort_index else 1
    if a.role != b.role:
        return -1 if a.role > b.role else 1
    return _cmp_instance(ws, a, b)


def _node_to_promote(ws: WorkingSet, c, r, member: bool = False):
    if r.is_group:
        # a cloned group is promoted only if each of its members can be (node_to_be_promoted_on)
        if any(_node_to_promote(ws, c, m, True) is None for m in r.members):
            return None
    node = r.assigned
    if node is None:
        return None
    if not r.managed:
        if r.role != PROMOTED:
            return None
    elif (r.priority if member else r.promo_priority) < 0:
        return None
    elif not node.can_run():
        return None
    if node.uname not in c.allowed:
        return None
    if c.promoted_counts.get(node.uname, 0) >= c.promoted_node_max and r.managed:
        return None
    return node


def _active_node(ws: WorkingSet, r):
    return r.current_node() if r.running_on else None


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def _cmp_instance(ws: WorkingSet, r1, r2) -> int:
    """pcmk__cmp_instance: which instance is assigned first."""
    n1, n2 = len(r1.running_on), len(r2.running_on)
    if n1 and n2 and n1 != n2:
        return _cmp(n1, n2)
    node1, node2 = _active_node(ws, r1), _active_node(ws, r2)
    can1 = node1 is None or r1.allowed.get(node1.uname, -INFINITY) >= 0
    can2 = node2 is None or r2.allowed.get(node2.uname, -INFINITY) >= 0
    if not can1:
        node1 = None
    if not can2:
        node2 = None
    if can1 != can2:
        return -1 if can1 else 1
    if r1.priority != r2.priority:
        return -1 if r1.priority > r2.priority else 1
    if node1 is None and node2 is None:
        return 0
    if node1 is None or node2 is None:
        return 1 if node1 is None else -1
    a1, a2 = node1.can_run(), node2.can_run()
    if a1 != a2:
        return -1 if a1 else 1
    c = r1.clone
    p1, p2 = node1.uname in c.allowed, node2.uname in c.allowed
    if not p1 and not p2:
        return 0
    if p1 != p2:
        return -1 if p1 else 1
    f1, f2 = r1.failed, r2.failed
    if f1 != f2:
        return 1 if f1 else -1
    return _cmp(_instance_number(r1), _instance_number(r2))


def _instance_number(r) -> int:
    try:
        return int(r.id.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _can_run_instance(ws: WorkingSet, r, node: WNode, max_per_node: int) -> bool:
    if r.removed or not node.can_run():
        return False
    c = r.clone
    score = c.allowed.get(node.uname)
    if score is None or score < 0:
        return False
    return c.counts.get(node.uname, 0) < max_per_node


def _ban_unavailable(ws: WorkingSet, r, max_per_node: int) -> None:
    for uname in r.allowed:
        if not _can_run_instance(ws, r, ws.node_by_uname[uname], max_per_node):
            r.allowed[uname] = -INFINITY
            for m in (r.members if r.is_group else ()):
                if uname in m.allowed:
                    m.allowed[uname] = -INFINITY


def _assign_instance(ws: WorkingSet, r, prefer: WNode | None, max_per_node: int) -> WNode | None:
    if r.allocating:
        return None
    _ban_unavailable(ws, r, max_per_node)
    chosen = allocate(ws, r, prefer)
    if chosen is not None:
        c = r.clone
        c.counts[chosen.uname] = c.counts.get(chosen.uname, 0) + 1
    return chosen


def _unassign(r) -> None:
    if r.is_group:
        for m in r.members:
            _unassign(m)
        r.provisional = True
        return
    if r.assigned is not None:
        r.assigned.num_resources -= 1
        for key, value in r.utilization.items():
            r.assigned.capacity[key] = r.assigned.capacity.get(key, 0) + value
    r.assigned = None
    r.provisional = True


def _save_tables(r):
    return [(x, dict(x.allowed), x.next_role if not x.is_group else None)
            for x in ([r] + (r.members if r.is_group else []))]


def _restore_tables(saved) -> None:
    for x, allowed, role in saved:
        x.allowed = dict(allowed)
        if not x.is_group:
            x.next_role = role


def _assign_early(ws: WorkingSet, c, r, current: WNode, max_per_node: int, available: int) -> bool:
    score = r.allowed.get(current.uname)
    if score is None or score < 0 or not current.can_run():
        return False
    saved = _save_tables(r)
    saved_counts = dict(c.counts)
    reserved = 0
    chosen = None
    while reserved < available:
        chosen = _assign_instance(ws, r, current, max_per_node)
        if chosen is current:
            break
        _restore_tables(saved)
        if chosen is None:
            _unassign(r)
            _restore_tables(saved)
            break
        reserved += 1
        _unassign(r)
        _restore_tables(saved)
        chosen = None
    c.counts = saved_counts
    if chosen is None:
        return False
    c.counts[chosen.uname] = c.counts.get(chosen.uname, 0) + 1
    return True


def _assign_instances(ws: WorkingSet, c, instances) -> None:
    c.counts = {}
    available_nodes = sum(1 for uname in c.allowed if ws.node_by_uname[uname].can_run())
    max_total, max_per_node = c.clone_max, c.clone_node_max
    optimal = max(1, max_total // available_nodes) if available_nodes else 1
    assigned = 0
    for r in instances:
        if assigned >= max_total:
            break
        if not r.provisional or not r.running_on or r.failed:
            continue
        current = r.current_node()
        if not current.can_run():
            continue
        if c.counts.get(current.uname, 0) >= optimal and current.uname in c.allowed:
            continue
        if _assign_early(ws, c, r, current, max_per_node, max_total - assigned):
            assigned += 1
    for r in instances:
        if not r.provisional:
            continue
        if assigned >= max_total:
            for x in ([r] + (r.members if r.is_group else [])):
                for uname in list(x.allowed) or [n.uname for n in ws.nodes]:
                    x.allowed[uname] = -INFINITY
            if r.is_group:
                allocate(ws, r)
            elif r.managed:
                _record(ws, PRIMITIVE_STAGE, r, r.allowed)
                _assign(r, None, force=False)
            else:
                allocate(ws, r)
        elif _assign_instance(ws, r, None, max_per_node) is not None:
            assigned += 1


def _sort_key(ws: WorkingSet, rsc, current: WNode | None):
    strategy = ws.placement_strategy
    if strategy != "default":
        return cmp_to_key(lambda a, b: _compare_nodes(ws, rsc, current, a, b))

    def key(uname):
        node = ws.node_by_uname[uname]
        w = rsc.allowed[uname] if node.can_run() else -INFINITY
        pref = 0 if (current is not None and current is node) else 1
        return (-w, node.num_resources, pref, uname.encode())
    return key


def _compare_nodes(ws: WorkingSet, rsc, current, u1: str, u2: str) -> int:
    """Pacemaker's node order with a placement strategy: score; balanced: more free capacity;
    not minimal: fewer assigned resources; then the current node, then the name."""
    n1, n2 = ws.node_by_uname[u1], ws.node_by_uname[u2]
    w1 = rsc.allowed[u1] if n1.can_run() else -INFINITY
    w2 = rsc.allowed[u2] if n2.can_run() else -INFINITY
    if w1 != w2:
        return -1 if w1 > w2 else 1
    if ws.placement_strategy != "minimal":
        if ws.placement_strategy == "balanced":
            result = compare_capacities(n1, n2)
            if result:
                return -1 if result < 0 else 1
        if n1.num_resources != n2.num_resources:
            return -1 if n1.num_resources < n2.num_resources else 1
    if current is not None and (current is n1) != (current is n2):
        return -1 if current is n1 else 1
    return _cmp(u1.encode(), u2.encode())


# --- utilization (pcmk_sched_utilization.c) -----------------------------------------------

def compare_capacities(n1: WNode, n2: WNode) -> int:
    """Negative when n1 has more free capacity (counted attribute by attribute)."""
    result = 0
    for key in list(n1.capacity) + [k for k in n2.capacity if k not in n1.capacity]:
        c1, c2 = n1.capacity.get(key, 0), n2.capacity.get(key, 0)
        if c1 > c2:
            result -= 1
        elif c1 < c2:
            result += 1
    return result


def _enough(node: WNode, need: Dict[str, int]) -> bool:
    return all(value <= node.capacity.get(key, 0) for key, value in need.items())


def _colocated(rsc, out: list) -> list:
    """The primitives colocated with this one at INFINITY, either way, groups taken whole
    (colocated_resources); a clone counts as itself (its dependents only when they are clones)."""
    if rsc in out:
        return out
    if rsc.is_clone:
        out.append(rsc)
        for c in rsc.cons:
            if c.score >= INFINITY and c.dep_role is None and c.primary_role is None:
                _colocated(c.primary, out)
        for c in rsc.cons_lhs:
            if c.score >= INFINITY and c.dep.is_clone and c.dep_role is None and c.primary_role is None:
                _colocated(c.dep, out)
        return out
    if rsc.is_group:
        for m in rsc.members:
            _colocated(m, out)
        return out
    out.append(rsc)
    if rsc.group is not None:
        _colocated(rsc.group, out)
    for c in rsc.cons:
        if c.score >= INFINITY:
            _colocated(c.primary, out)
    for c in rsc.cons_lhs:
        if c.score >= INFINITY:
            _colocated(c.dep, out)
    return out


def _clone_utilization(c, together: list) -> Dict[str, int]:
    """pcmk__clone_add_utilization: a clone being placed adds the utilization of its instance whose
    group member is already counted, or of its first instance when none of its instances is."""
    out: Dict[str, int] = {}
    existing = False
    for inst in c.instances:
        if inst in together:
            existing = True
        elif inst.is_group and any(m in together for m in inst.members):
            for m in inst.members:
                for key, value in m.utilization.items():
                    out[key] = out.get(key, 0) + value
            existing = True
    if not existing and c.instances:
        first = c.instances[0]
        for m in (first.members if first.is_group else [first]):
            for key, value in m.utilization.items():
                out[key] = out.get(key, 0) + value
    return out


def ban_insufficient_capacity(ws: WorkingSet, rsc) -> WNode | None:
    """pcmk__ban_insufficient_capacity: nodes that cannot hold the resource (and what is colocated
    with it) are banned; returns the most capable node when none can hold them all."""
    together = [r for r in _colocated(rsc, []) if r is rsc or r.provisional]
    need: Dict[str, int] = {}
    for r in together:
        for key, value in (_clone_utilization(r, together) if r.is_clone else r.utilization).items():
            need[key] = need.get(key, 0) + value
    any_capable = False
    most = None
    for uname, score in rsc.allowed.items():
        node = ws.node_by_uname[uname]
        if score < 0 or not node.can_run():
            continue
        if _enough(node, need):
            any_capable = True
        if most is None or compare_capacities(node, most) < 0:
            most = node
    need_one = need if any_capable else rsc.utilization
    for uname, score in list(rsc.allowed.items()):
        node = ws.node_by_uname[uname]
        if score >= 0 and node.can_run() and not _enough(node, need_one):
            rsc.allowed[uname] = -INFINITY
    return None if any_capable else most


def _choose_node(ws: WorkingSet, rsc, prefer: WNode | None = None) -> None:
    if not rsc.provisional:
        return
    current = rsc.current_node()
    unames = sorted(rsc.allowed, key=_sort_key(ws, rsc, current))
    chosen = None
    if prefer is not None and unames:
        score = rsc.allowed.get(prefer.uname)
        best_score = rsc.allowed[unames[0]] if ws.node_by_uname[unames[0]].can_run() else -INFINITY
        if score is not None and score >= best_score and score >= 0 and prefer.can_run():
            _assign(rsc, prefer, force=False)
            return
    if unames:
        best = unames[0]
        node = ws.node_by_uname[best]
        if rsc.allowed[best] >= 0 and node.can_run():
            chosen = node
            # among equally good positive scores, stay where the resource runs now
            if current is not None and current.can_run() and rsc.allowed[best] > 0:
                for other in unames[1:]:
                    if rsc.allowed[other] != rsc.allowed[best]:
                        break
                    if other == current.uname:
                        chosen = current
    _assign(rsc, chosen, force=False)


def _assign(rsc, node: WNode | None, force: bool) -> None:
    rsc.provisional = False
    if node is None or (not force and not node.can_run()):
        rsc.assigned = None
        rsc.next_role = STOPPED
        return
    rsc.assigned = node
    node.num_resources += 1
    for key, value in rsc.utilization.items():
        node.capacity[key] = node.capacity.get(key, 0) - value


def _sort_scores(ws: WorkingSet, rsc) -> Dict[str, int]:
    """A resource's node scores for pcmk__sort_resources: add_colocated_node_scores with 'this with'
    colocations, followed recursively with the product of the factors (a group through its last member,
    which reaches the others through the internal colocations and the first member's own)."""
    return _this_with_scores(ws, rsc, None, None, 1.0)


def _this_with_scores(ws: WorkingSet, rsc, work: Dict[str, int] | None, coloc, factor: float,
                      active: bool = False) -> Dict[str, int] | None:
    if rsc.is_group:  # pcmk__group_add_colocated_node_scores: the last member first, else the first
        if not rsc.members:
            return work
        rsc = rsc.members[-1] if work is None else rsc.members[0]
    if rsc.merging:
        return work
    rsc.merging = True
    if work is None:
        table = dict(rsc.allowed)
    else:
        table = dict(work)
        _add_matching(ws, table, rsc, coloc.attr, factor)
    if can_run_any(ws, table):
        for c in rsc.cons:
            table = _this_with_scores(ws, c.primary, table, c, factor * c.score / float(INFINITY), True)
    elif active:  # pcmk__coloc_select_active: roll back what this step added
        rsc.merging = False
        return work
    rsc.merging = False
    return table


def _cmp_resources(nodes: list, tables: Dict[str, Dict[str, int]], a, b) -> int:
    """cmp_resources: higher priority first, then the higher score on its current node, then the
    higher score on the nodes in order."""
    if a.priority != b.priority:
        return -1 if a.priority > b.priority else 1
    ta, tb = tables[a.id], tables[b.id]
    na = a.running_on[0] if a.running_on else None
    nb = b.running_on[0] if b.running_on else None
    sa = ta.get(na.uname, -INFINITY) if na is not None else -INFINITY
    sb = tb.get(nb.uname, -INFINITY) if nb is not None else -INFINITY
    if sa != sb:
        return -1 if sa > sb else 1
    for n in nodes:
        x, y = ta.get(n.uname, -INFINITY), tb.get(n.uname, -INFINITY)
        if x != y:
            return -1 if x > y else 1
    return 0


def _cmp_sort_nodes(ws: WorkingSet, n1: WNode, n2: WNode) -> int:
    """pcmk__sort_nodes before any assignment: usable first; balanced: more free capacity; not
    minimal: fewer resources; then the name."""
    a1, a2 = n1.can_run(), n2.can_run()
    if a1 != a2:
        return -1 if a1 else 1
    if ws.placement_strategy == "balanced":
        result = compare_capacities(n1, n2)
        if result:
            return -1 if result < 0 else 1
    if ws.placement_strategy != "minimal" and n1.num_resources != n2.num_resources:
        return -1 if n1.num_resources < n2.num_resources else 1
    return _cmp(n1.uname.encode(), n2.uname.encode())


def assign_all(ws: WorkingSet) -> None:
    if ws.placement_strategy != "default":
        # pcmk__sort_resources: with a placement strategy, resources that keep their nodes go first
        nodes = sorted(ws.nodes, key=cmp_to_key(lambda a, b: _cmp_sort_nodes(ws, a, b)))
        tables = {r.id: _sort_scores(ws, r) for r in ws.resources}
        ws.display_resources = list(ws.resources)  # status output keeps the unpacked (priority) order
        ws.resources = sorted(ws.resources, key=cmp_to_key(lambda a, b: _cmp_resources(nodes, tables, a, b)))
    for rsc in ws.resources:
        allocate(ws, rsc)
    _interleave_unassign(ws)


def _clone_min(c) -> int:
    try:
        return max(0, int(c.meta.get("clone-min", "0")))
    except ValueError:
        return 0


def _interleave_unassign(ws: WorkingSet) -> None:
    """A mandatory order between interleaved clones: an instance of 'then' that has no instance
    of 'first' on its node is not allowed to come up (unassign_if_mandatory), which may in turn
    leave instances of clones ordered after it without a partner."""
    pairs = []
    for o in ws.cib.orders:
        first, then = ws.lookup(o.first), ws.lookup(o.then)
        if first is None or then is None or not first.is_clone or not then.is_clone or first is then:
            continue
        mandatory = o.kind == "Mandatory" and not (o.score is not None and o.score == 0)
        symmetric = o.symmetrical if o.symmetrical is not None else True
        if not mandatory or not symmetric or not then.interleave or not o.require_all:
            continue
        if _clone_min(first) > 0:
            continue  # ordered through a clone-one-or-more pseudo-action: nothing to interleave
        if o.first_action in ("stop", "demote") or o.then_action in ("stop", "demote"):
            continue
        pairs.append((first, then))
    changed = True
    while changed and pairs:
        changed = False
        for first, then in pairs:
            nodes = {inst.assigned for inst in first.instances
                     if inst.assigned is not None and not inst.blocked}
            for inst in then.instances:
                if inst.assigned is not None and inst.assigned not in nodes and inst.managed:
                    for m in (inst.members if inst.is_group else [inst]):
                        if m.assigned is not None:
                            m.assigned.num_resources -= 1
                            m.interleave_node = m.assigned
                        m.assigned = None
                        m.next_role = STOPPED
                    changed = True
