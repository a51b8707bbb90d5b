"""The CIB loader's constraints: locations, colocations, orders and tickets, with resource sets, templates
and tags expanded into the pairwise constraints Pacemaker makes of them."""
from __future__ import annotations

from hadaemon.core.cib.model import Colocation, Location, Order, RscTicket
from hadaemon.core.cib.xmltree import Element

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import List


class _ConstraintsLoader:
    """The constraint half of loader._Loader (its base class): it uses the loader's err, need, score, rule,
    check_unsupported, warnings, templates, template_users and tags."""

    # --- templates and tags stand for the resources they name --------------------------------
    def expand(self, name: str) -> List[str] | None:
        """The resources a template or a tag stands for (None: `name` is neither)."""
        if name in self.tags:
            out: List[str] = []
            for ref in self.tags[name]:
                out.extend(self.template_users.get(ref, [ref]) if ref in self.templates else [ref])
            return out
        if name in self.templates:
            return list(self.template_users.get(name, []))
        return None

    def set_refs(self, s: Element) -> List[str]:
        refs: List[str] = []
        for ref in s.children:
            if ref.tag == "resource_ref":
                rid = self.need(ref, "id")
                refs.extend(self.expand(rid) or [rid])
        return refs

    def locations(self, el: Element, resource_ids: List[str]) -> List[Location]:
        """A location; for a template, a tag, resource sets or rsc-pattern, one per resource."""
        sets = [c for c in el.children if c.tag == "resource_set"]
        pattern = el.get("rsc-pattern")
        if sets or (pattern and not el.get("rsc")):
            if sets:
                names = [n for s in sets for n in self.set_refs(s)]
            else:
                import re  # here: only rsc-pattern needs it, and re costs start-up time

                try:
                    rx = re.compile(pattern)
                except re.error as err:
                    raise self.err(el, f"rsc_location '{el.get('id')}' has an invalid rsc-pattern: {err}") from None
                names = [n for n in resource_ids if rx.search(n)]
            out = []
            for n in names:
                loc = self.location(el, n)
                out.append(loc)
            return out
        loc = self.location(el)
        names = self.expand(loc.rsc)
        if names is None:
            return [loc]
        return [Location(loc.id, n, loc.node, loc.score, loc.rules, loc.role, loc.discovery, loc.line)
                for n in names]

    def location(self, el: Element, rsc: str | None = None) -> Location:
        lid = self.need(el, "id")
        rsc = rsc or self.need(el, "rsc")
        rules = []
        for child in el.children:
            self.check_unsupported(child)
            if child.tag == "rule":
                rules.append(self.rule(child, dates=True))
            elif child.tag == "resource_set":
                continue
        node = el.get("node")
        score = None
        if node is not None:
            score = self.score(el, "score", el.get("score"))
        elif not rules:
            raise self.err(el, f"rsc_location '{lid}' needs 'node' and 'score', or a rule")
        return Location(lid, rsc, node, score, tuple(rules), el.get("role"),
                        el.get("resource-discovery"), el.line)

    def _sets(self, el: Element, a: str, b: str, role_a: str, role_b: str) -> List[Element]:
        """The constraint's resource sets; a template or tag in `a`/`b` becomes an unordered set."""
        sets = [c for c in el.children if c.tag == "resource_set"]
        if sets or not (self.expand(el.get(a) or "") is not None or self.expand(el.get(b) or "") is not None):
            return sets
        made = []
        for attr, role_attr in ((a, role_a), (b, role_b)):
            name = el.get(attr) or ""
            attrib = {"id": f"{el.get('id')}-{attr}", "sequential": "false"}
            if el.get(role_attr):
                attrib["role" if role_attr != "first-action" and role_attr != "then-action" else "action"] = \
                    el.get(role_attr)
            s = Element("resource_set", attrib, el.line)
            s.children.extend(Element("resource_ref", {"id": n}, el.line) for n in (self.expand(name) or [name]))
            made.append(s)
        return made

    def colocations(self, el: Element) -> List[Colocation]:
        """A colocation; with resource sets (or templates/tags), the pairwise colocations Pacemaker
        makes of them (unpack_colocation_set, colocate_rsc_sets)."""
        cid = self.need(el, "id")
        sets = self._sets(el, "rsc", "with-rsc", "rsc-role", "with-rsc-role")
        if not sets:
            return [self.colocation(el)]
        score = self.score(el, "score", self.need(el, "score"))
        influence = None if el.get("influence") is None else _truth(el.get("influence"))
        out: List[Colocation] = []

        def new(dep, primary, sc, r1, r2, line):
            out.append(Colocation(cid, dep, primary, sc, r1, r2, None, influence, line))
        last = None
        for s in sets:
            refs = self.set_refs(s)
            local = score if s.get("score") is None else self.score(s, "score", s.get("score"))
            role = s.get("role")
            if local != 0 and _truth(s.get("sequential") or "true"):
                if local > 0:
                    for i in range(1, len(refs)):
                        new(refs[i], refs[i - 1], local, role, role, s.line)
                else:
                    for i in range(len(refs)):
                        for j in range(i):
                            new(refs[i], refs[j], local, role, role, s.line)
            if last is not None and score != 0:
                prev = self.set_refs(last)
                r1 = prev[:1] if _truth(last.get("sequential") or "true") else prev
                r2 = refs[-1:] if _truth(s.get("sequential") or "true") else refs
                for x in r1:
                    for y in r2:
                        new(x, y, score, last.get("role"), s.get("role"), s.line)
            last = s
        return out

    def orders(self, el: Element) -> List[Order]:
        """An order; with resource sets (or templates/tags), the pairwise orders Pacemaker makes of
        them (unpack_order_set, order_rsc_sets; require-all=false: 'then' needs any one of 'first')."""
        oid = self.need(el, "id")
        sets = self._sets(el, "first", "then", "first-action", "then-action")
        if not sets:
            return [self.order(el)]
        score = None if el.get("score") is None else self.score(el, "score", el.get("score"))
        kind = self._kind(el, score)
        sym_text = el.get("symmetrical")
        out: List[Order] = []
        last = None
        for s in sets:
            refs = self.set_refs(s)
            action = s.get("action") or "start"
            local_kind = self._kind(s, score) if s.get("kind") else kind
            sym = s.get("symmetrical") if s.get("symmetrical") is not None else sym_text
            sym_b = None if sym is None else _truth(sym)
            if len(refs) > 1:
                if local_kind == "Serialize":
                    for i in range(len(refs)):
                        for j in range(i + 1, len(refs)):
                            out.append(Order(s.get("id", oid), refs[i], refs[j], action, action, local_kind, score,
                                             False, s.line))
                elif _truth(s.get("sequential") or "true"):
                    for i in range(1, len(refs)):
                        out.append(Order(s.get("id", oid), refs[i - 1], refs[i], action, action, local_kind, score,
                                         sym_b, s.line))
            if last is not None:
                prev = self.set_refs(last)
                a1, a2 = last.get("action") or "start", action
                sym_pair = None if sym_text is None else _truth(sym_text)
                if not _truth(last.get("require-all") or "true") and a1 not in ("stop", "demote"):
                    out.append(Order(last.get("id", oid), prev[0] if prev else "", refs[0] if refs else "",
                                     a1, a2, kind, score, False, s.line, False, tuple(prev), tuple(refs)))
                    if sym_pair is not False and kind != "Serialize":
                        for x in prev:
                            for y in refs:
                                out.append(Order(oid, x, y, a1, a2, kind, score, True, s.line, inverse_only=True))
                else:
                    r1 = prev[-1:] if _truth(last.get("sequential") or "true") else prev
                    r2 = refs[:1] if _truth(s.get("sequential") or "true") else refs
                    for x in r1:
                        for y in r2:
                            out.append(Order(oid, x, y, a1, a2, kind, score, sym_pair, s.line))
            last = s
        return out

    def _kind(self, el: Element, score: int | None) -> str:
        """Pacemaker's get_ordering_type: kind case-insensitively; without one, Mandatory unless the
        (deprecated) score is 0; an invalid kind is reset to Mandatory (a configuration warning there,
        not a refusal)."""
        kind = el.get("kind")
        if kind is None:
            return "Optional" if score == 0 else "Mandatory"
        for k in ("Mandatory", "Optional", "Serialize"):
            if kind.lower() == k.lower():
                return k
        self.warnings.append(f"{self.path}:{el.line}: rsc_order '{el.get('id')}': kind '{kind}' is not "
                             "Mandatory, Optional or Serialize; using Mandatory")
        return "Mandatory"

    def colocation(self, el: Element) -> Colocation:
        cid = self.need(el, "id")
        for child in el.children:
            self.check_unsupported(child)
        rsc = el.get("rsc") or el.get("from")
        with_rsc = el.get("with-rsc") or el.get("to")
        if not rsc or not with_rsc:
            raise self.err(el, f"rsc_colocation '{cid}' needs 'rsc' and 'with-rsc'")
        influence = el.get("influence")
        return Colocation(cid, rsc, with_rsc, self.score(el, "score", self.need(el, "score")),
                          el.get("rsc-role") or el.get("from_role"),
                          el.get("with-rsc-role") or el.get("to_role"), el.get("node-attribute"),
                          None if influence is None else _truth(influence), el.line)

    def rsc_ticket(self, el: Element) -> List[RscTicket]:
        """rsc_ticket with rsc (and rsc-role), or resource sets of resource_refs (with role)."""
        tid = self.need(el, "id")
        ticket = self.need(el, "ticket")
        policy = el.get("loss-policy")
        if policy is not None and policy.lower() not in ("stop", "demote", "fence", "freeze"):
            raise self.err(el, f"rsc_ticket '{tid}' has loss-policy '{policy}' (stop, demote, fence or "
                               "freeze)")
        out = []
        sets = [c for c in el.children if c.tag == "resource_set"]
        for s in sets:
            sid = self.need(s, "id")
            for ref in s.children:
                if ref.tag == "resource_ref":
                    for name in (self.expand(self.need(ref, "id")) or [ref.get("id")]):
                        out.append(RscTicket(sid, name, ticket, s.get("role"), policy, ref.line))
        if not sets:
            rsc = self.need(el, "rsc")
            for name in (self.expand(rsc) or [rsc]):
                out.append(RscTicket(tid, name, ticket, el.get("rsc-role") or el.get("rsc_role"), policy, el.line))
        return out

    def order(self, el: Element) -> Order:
        oid = self.need(el, "id")
        for child in el.children:
            self.check_unsupported(child)
        first = el.get("first") or el.get("to")
        then = el.get("then") or el.get("from")
        if not first or not then:
            raise self.err(el, f"rsc_order '{oid}' needs 'first' and 'then'")
        if el.get("first") is None and el.get("to") is not None:
            # Pacemaker 0.6 syntax: from=then action=... to=first to_action=...
            first_action = el.get("to_action") or el.get("action") or "start"
            then_action = el.get("action") or "start"
        else:
            first_action = el.get("first-action") or "start"
            then_action = el.get("then-action") or first_action
        score = None
        if el.get("score") is not None:
            score = self.score(el, "score", el.get("score"))
        kind = self._kind(el, score)
        sym = el.get("symmetrical")
        require_all = el.get("require-all")
        return Order(oid, first, then, first_action, then_action, kind, score,
                     None if sym is None else _truth(sym), el.line,
                     True if require_all is None else _truth(require_all))


def _truth(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "1", "on", "y")
