"""Stage 3a: colocations during assignment: merging dependents' node scores (with this / this with), applying a
colocation to a dependent, with clones and roles (split from placement.py)."""
from __future__ import annotations

from hadaemon.core.cib.scores import INFINITY, add_scores
from hadaemon.core.policy.resources import PROMOTED, STARTED, STOPPED, UNPROMOTED, Coloc, role_from_text
from hadaemon.core.policy.working import WorkingSet

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict


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


def _role_of(text):
    return role_from_text(text) if text else None


def _final_role(r):
    if r.assigned is None:
        return STOPPED
    if r.promotable:
        return r.next_role if r.next_role in (PROMOTED, UNPROMOTED) else UNPROMOTED
    return STARTED
