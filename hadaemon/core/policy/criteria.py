"""Stage 2: node criteria: locations, node health, tickets, shutdown locks, exclusive discovery, stickiness,
fail limits, and the colocation lists (split from placement.py)."""
from __future__ import annotations

from hadaemon.core.cib.rules import eval_rule
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.resources import PROMOTED, STARTED, UNPROMOTED, Coloc, role_from_text
from hadaemon.core.policy.working import WorkingSet, leaves
from hadaemon.core.policy.status import failcount

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
