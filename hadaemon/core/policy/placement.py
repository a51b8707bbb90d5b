"""Stages 2-3: node criteria (locations, stickiness, fail limits) and assignment to nodes."""
from __future__ import annotations

from typing import Dict

from hadaemon.core.cib.rules import eval_rule
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.unpack import WorkingSet, failcount
from hadaemon.core.policy.working import STARTED, STOPPED, UNKNOWN, Coloc, WNode, role_from_text

PRIMITIVE_STAGE = "pcmk__primitive_assign"
GROUP_STAGE = "pcmk__group_assign"


# --- node criteria -------------------------------------------------------------------------

def _rsc_location(ws: WorkingSet, rsc, scores: Dict[str, int]) -> None:
    """Apply node scores to a resource; a colocated group passes real scores to its first member only."""
    if not scores:
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
        rsc = ws.prims.get(loc.rsc) or ws.groups.get(loc.rsc)
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
                if not eval_rule(rule, node.attrs):
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
            for r in (rsc.members if rsc.is_group else [rsc]):
                for uname in scores:
                    r.discovery[uname] = loc.discovery


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
            if r.migration_threshold <= 0:
                continue
            fc = failcount(ws, r, node)
            if fc > 0 and r.migration_threshold - fc <= 0:
                r.allowed[node.uname] = -INFINITY


def build_colocations(ws: WorkingSet) -> None:
    group_cons = {g: [] for g in ws.groups}
    group_lhs = {g: [] for g in ws.groups}
    for c in ws.cib.colocations:
        dep = ws.prims.get(c.rsc) or ws.groups.get(c.rsc)
        primary = ws.prims.get(c.with_rsc) or ws.groups.get(c.with_rsc)
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
    for r in list(ws.prims.values()) + list(ws.groups.values()):
        r.cons = _sorted(r.cons, lambda c: c.primary)
        r.cons_lhs = _sorted(r.cons_lhs, lambda c: c.dep)
    for g in ws.groups.values():
        if g.members:
            g.members[0].cons.extend(_sorted(group_cons[g.id], lambda c: c.primary))
            g.members[-1].cons_lhs.extend(_sorted(group_lhs[g.id], lambda c: c.dep))


def _sorted(cons, other):
    keyed = [((-other(c).priority, 0 if other(c).is_group else 1, other(c).id.encode(), -i), c)
             for i, c in enumerate(cons)]
    return [c for _k, c in sorted(keyed, key=lambda kc: kc[0])]


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


def _add_matching(ws: WorkingSet, work: Dict[str, int], rsc, attr: str | None, factor: float) -> None:
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
        wf = factor * score
        weight = int(wf - 0.5) if wf < 0 else int(wf + 0.5)
        if weight == 0 and score != 0:
            weight = 1 if factor > 0 else (-1 if factor < 0 else 0)
        work[uname] = add_scores(weight, work[uname])


def merge_weights(ws: WorkingSet, rsc, rhs: str, nodes: Dict[str, int], attr, factor: float) -> Dict[str, int]:
    """Fold a dependent's (and its own dependents') preferences into nodes, scaled by factor."""
    if rsc.is_group:
        if not rsc.members:
            return nodes
        rsc = rsc.members[0]
    if rsc.merging:
        return nodes
    rsc.merging = True
    work = dict(nodes)
    _add_matching(ws, work, rsc, attr, factor)
    if can_run_any(ws, work):
        for c in rsc.cons_lhs:
            if not (c.influence or not _running(c.primary)):
                continue
            work = merge_weights(ws, c.dep, rhs, work, c.attr, factor * c.score / float(INFINITY))
    else:
        rsc.merging = False
        return nodes
    rsc.merging = False
    return work


def _running(rsc) -> bool:
    return bool(rsc.running_on)


def _record(ws: WorkingSet, stage: str, rsc, table: Dict[str, int]) -> None:
    for node in ws.nodes:
        if node.uname in table:
            ws.scores.append((stage, rsc.id, node.uname, table[node.uname]))
        elif not ws.symmetric:
            ws.scores.append((stage, rsc.id, node.uname, -INFINITY))


def allocate_group(ws: WorkingSet, g) -> None:
    if not g.provisional or g.allocating:
        return
    g.allocating = True
    _record(ws, GROUP_STAGE, g, g.allowed)
    for m in g.members:
        _record(ws, GROUP_STAGE, m, m.allowed)
    for m in g.members:
        allocate(ws, m)
    g.allocating = False
    g.provisional = False


def _coloc_primary(c: Coloc):
    p = c.primary
    if p.is_group:
        if p.provisional or not p.members:
            return None
        return p.members[-1] if c.score >= INFINITY else p.members[0]
    return p


def _apply_colocation(ws: WorkingSet, dep, c: Coloc) -> None:
    primary = _coloc_primary(c)
    if primary is None or primary.provisional or not dep.provisional or c.score == 0:
        return
    if c.dep_role is not None or c.primary_role is not None:
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


def allocate(ws: WorkingSet, rsc) -> WNode | None:
    if rsc.is_group:
        allocate_group(ws, rsc)
        return None
    if rsc.group is not None and not rsc.group.allocating:
        allocate_group(ws, rsc.group)
    if not rsc.provisional:
        return rsc.assigned
    if rsc.allocating:
        return None
    rsc.allocating = True
    for c in rsc.cons:
        archive = dict(rsc.allowed) if -INFINITY < c.score < 0 else None
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
        _choose_node(ws, rsc)
    rsc.allocating = False
    return rsc.assigned


def _sort_key(ws: WorkingSet, rsc, current: WNode | None):
    def key(uname):
        node = ws.node_by_uname[uname]
        w = rsc.allowed[uname] if node.can_run() else -INFINITY
        pref = 0 if (current is not None and current is node) else 1
        return (-w, node.num_resources, pref, uname.encode())
    return key


def _choose_node(ws: WorkingSet, rsc) -> None:
    if not rsc.provisional:
        return
    current = rsc.current_node()
    unames = sorted(rsc.allowed, key=_sort_key(ws, rsc, current))
    chosen = None
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


def assign_all(ws: WorkingSet) -> None:
    for rsc in ws.resources:
        allocate(ws, rsc)
