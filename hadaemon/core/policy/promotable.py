"""Stage 3b: promotable clones: promotion scores and the instances' roles (pcmk_sched_promotable.c; split from
placement.py)."""
from __future__ import annotations

try:  # the C function functools itself exports: importing functools (and collections) costs start-up time
    from _functools import cmp_to_key
except ImportError:  # a Python without CPython's accelerator modules
    from functools import cmp_to_key

from hadaemon.core.cib.rules import eval_rule
from hadaemon.core.cib.scores import INFINITY, add_scores, parse_score
from hadaemon.core.policy.resources import PROMOTED, STARTED, STOPPED, UNKNOWN, UNPROMOTED, Coloc, WNode
from hadaemon.core.policy.working import WorkingSet

from hadaemon.core.policy.colocation import _final_role, _role_of, merge_weights
from hadaemon.core.policy.instances import _cmp_instance

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict


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
