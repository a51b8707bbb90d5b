"""Load Pacemaker CIB XML into the immutable model, with `file:line: message` errors."""
from __future__ import annotations

from types import MappingProxyType

from hadaemon.core.cib.dates import date_expression_of
from hadaemon.core.cib.loader_constraints import _ConstraintsLoader, _truth
from hadaemon.core.cib.model import (
    Cib, Clone, DateExpression, Expression, Group, LrmOp, LrmResource, Node, NodeState, NvSet, Op,
    OpExpression, RscExpression,
    Primitive, Rule, Ticket,
)
from hadaemon.core.cib.scores import parse_score
from hadaemon.core.cib.support import LEGACY_CLASSES, RESOURCE_CLASSES, UNSUPPORTED
from hadaemon.core.cib.validate import refusals
from hadaemon.core.cib.xmltree import Element, parse_xml, paused_gc
from hadaemon.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Tuple

PRIMITIVE_CLASSES = RESOURCE_CLASSES + LEGACY_CLASSES
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_UNITS = {"ms": 1, "msec": 1, "s": 1000, "sec": 1000, "": 1000, "m": 60000, "min": 60000,
          "h": 3600000, "hr": 3600000, "us": 0, "usec": 0}


def load_cib(path: str) -> Cib:
    """Read and parse the CIB file at `path`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ConfigError(path, 0, f"cannot read: {err.strerror}") from None
    return parse_cib(data, path)


def parse_cib(xml_text, path: str = "<string>") -> Cib:
    """Parse CIB XML text (str or bytes) into a Cib."""
    with paused_gc():
        root = parse_xml(xml_text, path)
        return _Loader(path).cib(root)


def parse_interval_ms(text: str | None) -> int | None:
    """"10s", "5", "1m", "500ms", "PT10S" -> milliseconds; None if malformed."""
    if text is None or text == "":
        return 0
    t = text.strip()
    number = t.rstrip(_LETTERS)  # digits, optional spaces, a unit of ASCII letters (optional)
    unit = t[len(number):].lower()
    number = number.rstrip()
    if number.isdecimal():
        return int(number) * _UNITS[unit] if unit in _UNITS else None
    return _iso_interval_ms(t)


def _iso_interval_ms(text: str) -> int | None:
    """An ISO 8601 interval as Pacemaker reads one: P, an optional T, then hours, minutes and seconds, each
    optional but in that order ("PT10S", "PT1H30M", "P5M"); None when malformed."""
    t = text.upper()
    if not t.startswith("P") or t in ("P", "PT"):
        return None
    rest = t[2:] if t.startswith("PT") else t[1:]
    seconds = 0
    for unit, factor in (("H", 3600), ("M", 60), ("S", 1)):
        number, found, tail = rest.partition(unit)
        if found and number.isdecimal():
            seconds += int(number) * factor
            rest = tail
    return seconds * 1000 if rest == "" else None


class _Loader(_ConstraintsLoader):
    def __init__(self, path: str):
        self.path = path
        self.ids: Dict[str, Element] = {}
        self.warnings: List[str] = []  # what Pacemaker would log as a configuration warning
        self.templates: Dict[str, Element] = {}
        self.template_users: Dict[str, List[str]] = {}
        self.tags: Dict[str, List[str]] = {}

    def err(self, el: Element, message: str) -> ConfigError:
        return ConfigError(self.path, el.line, message)

    def need(self, el: Element, name: str) -> str:
        value = el.get(name)
        if value is None or value == "":
            raise self.err(el, f"<{el.tag}> needs a '{name}' attribute")
        return value

    def score(self, el: Element, name: str, text: str | None) -> int:
        value = parse_score(text, None)
        if value is None:
            raise self.err(el, f"<{el.tag} id='{el.get('id', '')}'> has an invalid {name} '{text}' "
                               "(an integer, INFINITY or -INFINITY)")
        return value

    def check_unsupported(self, el: Element) -> None:
        if el.tag in UNSUPPORTED:
            raise self.err(el, f"<{el.tag}> ({UNSUPPORTED[el.tag]}) is not supported")

    # --- generic blocks ---
    def deref(self, el: Element) -> Element:
        """Follow an id-ref to the element it names (same tag), or fail with the line."""
        ref = el.get("id-ref")
        if ref is None:
            return el
        target = self.ids.get(ref)
        if target is None or target.tag != el.tag:
            raise self.err(el, f"<{el.tag}> refers to id '{ref}', which is not a <{el.tag}>")
        return target

    def nvset(self, el: Element) -> NvSet:
        el = self.deref(el)
        rule = None
        pairs: List[Tuple[str, str]] = []
        for child in el.children:
            if child.tag == "nvpair":
                nv = self.deref(child)  # <nvpair id-ref=...> takes the name and value it names
                pairs.append((self.need(nv, "name"), nv.get("value", "") or ""))
            elif child.tag == "rule":
                rule = self.rule(child)
            else:
                self.check_unsupported(child)
        score = self.score(el, "score", el.get("score", "0"))
        return NvSet(el.get("id", ""), score, rule, tuple(pairs), el.line)

    def nvsets(self, el: Element | None, tags: Tuple[str, ...]) -> Tuple[NvSet, ...]:
        if el is None:
            return ()
        return tuple(self.nvset(c) for c in el.children if c.tag in tags)

    def rule(self, el: Element, dates: bool = True) -> Rule:
        """A rule; date expressions are evaluated at the scheduler's time wherever a rule is (location
        constraints, nvpair sets of resources, nodes, rsc_defaults, op_defaults, crm_config)."""
        el = self.deref(el)
        terms = []
        for child in el.children:
            if child.tag == "expression":
                terms.append(Expression(child.get("id", ""), self.need(child, "attribute"),
                                        self.need(child, "operation"), child.get("value"),
                                        child.get("type"), child.line))
            elif child.tag == "rule":
                terms.append(self.rule(child, dates))
            elif child.tag == "date_expression":
                terms.append(self.date_expression(child))
            elif child.tag == "rsc_expression":
                terms.append(RscExpression(child.get("id", ""), child.get("class"), child.get("provider"),
                                           child.get("type"), child.line))
            elif child.tag == "op_expression":
                text = child.get("interval")
                interval = None if text is None else parse_interval_ms(text)
                terms.append(OpExpression(child.get("id", ""), self.need(child, "name"),
                                          -1 if text is not None and interval is None else interval, child.line))
            else:
                self.check_unsupported(child)
        score = None
        if el.get("score") is not None:
            score = self.score(el, "score", el.get("score"))
        op = (el.get("boolean-op") or "and").lower()
        if op not in ("and", "or"):
            raise self.err(el, f"rule '{el.get('id')}' has boolean-op '{op}' (and or or)")
        return Rule(el.get("id", ""), score, el.get("score-attribute"), op, el.get("role"),
                    tuple(terms), el.line)

    def date_expression(self, el: Element) -> DateExpression:
        """lt (before end), gt (after start), in_range (start..end, or start + <duration>), date_spec."""
        problem, expr = date_expression_of(el)
        if problem is not None:
            raise self.err(el, problem)
        return expr

    # --- configuration ---
    def op(self, el: Element) -> Op:
        interval = parse_interval_ms(el.get("interval", "0"))
        if interval is None:
            name = f"op '{el.get('id')}'" if el.get("id") else f"a {el.get('name') or 'nameless'} op without id"
            raise self.err(el, f"{name} has an invalid interval '{el.get('interval')}'")
        meta = self.nvsets(el, ("meta_attributes",))
        enabled = (el.get("enabled") or "true").lower() not in ("false", "no", "0", "off")
        return Op(el.get("id", ""), self.need(el, "name"), interval, el.get("role"),
                  el.get("timeout"), el.get("on-fail"), enabled,
                  self.nvsets(el, ("instance_attributes",)), meta, el.line)

    def primitive(self, el: Element, parent: str | None) -> Primitive:
        rid = self.need(el, "id")
        tmpl = None
        if el.get("template"):
            tmpl = self.templates.get(el.get("template"))
            if tmpl is None:
                raise self.err(el, f"primitive '{rid}' uses template '{el.get('template')}', which does not exist")
            self.template_users.setdefault(tmpl.get("id"), []).append(rid)
            prim = self.primitive(tmpl, parent) if tmpl.get("class") else None
            if prim is not None:
                own = self._primitive(el, rid, parent, prim.cls, prim.provider, prim.type)
                configured = {(o.name, o.interval_ms) for o in own.ops}
                return Primitive(rid, own.cls, own.provider, own.type, own.meta_sets + prim.meta_sets,
                                 own.instance_sets + prim.instance_sets,
                                 own.ops + tuple(o for o in prim.ops if (o.name, o.interval_ms) not in configured),
                                 parent, el.line, own.utilization + prim.utilization)
        return self._primitive(el, rid, parent)

    def _primitive(self, el: Element, rid: str, parent: str | None, cls: str | None = None,
                   provider: str | None = None, rtype: str | None = None) -> Primitive:
        cls = el.get("class") or cls or self.need(el, "class")
        if cls not in PRIMITIVE_CLASSES:
            raise self.err(el, f"primitive '{rid}' has unknown class '{cls}'")
        provider = el.get("provider") or provider
        if cls == "ocf" and not provider:
            raise self.err(el, f"primitive '{rid}' of class ocf needs a 'provider' attribute")
        ops: List[Op] = []
        for child in el.children:
            self.check_unsupported(child)
            if child.tag == "operations":
                for o in self.deref(child).children:  # <operations id-ref=...>: another resource's ops
                    self.check_unsupported(o)
                    if o.tag == "op":
                        ops.append(self.op(o))
        return Primitive(rid, cls, provider, el.get("type") or rtype or self.need(el, "type"),
                         self.nvsets(el, ("meta_attributes",)),
                         self.nvsets(el, ("instance_attributes",)), tuple(ops), parent, el.line,
                         self.nvsets(el, ("utilization",)))

    def group(self, el: Element) -> Group:
        gid = self.need(el, "id")
        members = []
        for child in el.children:
            self.check_unsupported(child)
            if child.tag == "primitive":
                members.append(self.primitive(child, gid))
            elif child.tag == "group":
                raise self.err(child, "a group inside a group is not allowed")
        return Group(gid, tuple(members), self.nvsets(el, ("meta_attributes",)),
                     self.nvsets(el, ("instance_attributes",)), el.line)

    def clone(self, el: Element) -> Clone:
        cid = self.need(el, "id")
        meta = self.nvsets(el, ("meta_attributes",))
        promotable = el.tag == "master" or any(
            name == "promotable" and _truth(value) for s in meta for name, value in s.pairs)
        child = None
        for c in el.children:
            self.check_unsupported(c)
            if c.tag in ("primitive", "group"):
                if child is not None:
                    raise self.err(c, f"clone '{cid}' has more than one resource to clone")
                child = self.primitive(c, cid) if c.tag == "primitive" else self.group(c)
            elif c.tag == "clone":
                raise self.err(c, "a clone inside a clone is not allowed")
        if child is None:
            raise self.err(el, f"clone '{cid}' has nothing to clone (a primitive or a group)")
        return Clone(cid, child, meta, self.nvsets(el, ("instance_attributes",)), promotable, el.line)

    def cib(self, root: Element) -> Cib:
        if root.tag != "cib":
            raise self.err(root, f"the root element is <{root.tag}>, expected <cib>")
        conf = root.find("configuration")
        if conf is None:
            raise self.err(root, "<cib> has no <configuration>")
        stack = [conf]
        while stack:  # ids in the configuration, for id-ref
            el = stack.pop()
            i = el.attrib.get("id")
            if i is not None and "id-ref" not in el.attrib:
                self.ids.setdefault(i, el)
            stack.extend(el.children)
        options: Dict[str, str] = {}
        crm = conf.find("crm_config")
        option_sets: Tuple[NvSet, ...] = ()
        if crm is not None:
            option_sets = self.nvsets(crm, ("cluster_property_set",))
            # Pacemaker: cib-bootstrap-options first, then by set score; the first value wins
            for s in sorted(option_sets, key=lambda x: (x.id != "cib-bootstrap-options", -x.score)):
                for name, value in s.pairs:
                    options.setdefault(name, value)
        nodes = []
        for n in (conf.find("nodes").children if conf.find("nodes") is not None else []):
            if n.tag != "node":
                continue
            nid = self.need(n, "id")
            nodes.append(Node(nid, n.get("uname") or nid, n.get("type", "member"),
                              self.nvsets(n, ("instance_attributes",)), n.line, self.nvsets(n, ("utilization",))))
        resources = []
        index = {}
        res_el = conf.find("resources")
        for r in (res_el.children if res_el is not None else []):
            if r.tag == "template":
                self.templates[self.need(r, "id")] = r
        tags_el = conf.find("tags")
        for t in (tags_el.children if tags_el is not None else []):
            if t.tag == "tag":
                self.tags[self.need(t, "id")] = [self.need(ref, "id") for ref in t.children if ref.tag == "obj_ref"]
        for r in (res_el.children if res_el is not None else []):
            self.check_unsupported(r)
            if r.tag == "primitive":
                resources.append(self.primitive(r, None))
            elif r.tag == "group":
                g = self.group(r)
                resources.append(g)
                for m in g.members:
                    if m.id in index:
                        raise self.err(r, f"resource id '{m.id}' is used twice")
                    index[m.id] = m
            elif r.tag in ("clone", "master"):
                c = self.clone(r)
                resources.append(c)
                inner = [c.child] + list(c.child.members if isinstance(c.child, Group) else ())
                for m in inner:
                    if m.id in index:
                        raise self.err(r, f"resource id '{m.id}' is used twice")
                    index[m.id] = m
            else:
                continue
            if resources[-1].id in index:
                raise self.err(r, f"resource id '{resources[-1].id}' is used twice")
            index[resources[-1].id] = resources[-1]
        locs, colocs, orders, rsc_tickets = [], [], [], []
        cons = conf.find("constraints")
        for c in (cons.children if cons is not None else []):
            self.check_unsupported(c)
            if c.tag == "rsc_location":
                locs.extend(self.locations(c, [r.id for r in resources]))
            elif c.tag == "rsc_colocation":
                colocs.extend(self.colocations(c))
            elif c.tag == "rsc_order":
                orders.extend(self.orders(c))
            elif c.tag == "rsc_ticket":
                rsc_tickets.extend(self.rsc_ticket(c))
        refused = refusals(root)  # the validator hactl verify shares
        if refused:
            raise ConfigError(self.path, refused[0].line, refused[0].message)
        rsc_defaults = self.nvsets(conf.find("rsc_defaults"), ("meta_attributes",))
        op_defaults = self.nvsets(conf.find("op_defaults"), ("meta_attributes",))
        states = []
        status = root.find("status")
        for ns in (status.children if status is not None else []):
            if ns.tag == "node_state" and ns.get("id"):  # Pacemaker ignores a node_state without id
                states.append(self.node_state(ns))
        quorum = _truth(root.get("have-quorum") or "false")
        tickets = {}
        for t in (status.children if status is not None else []):
            if t.tag != "tickets":
                continue
            for ts in t.children:
                if ts.tag == "ticket_state" and ts.get("id"):
                    tickets[ts.get("id")] = Ticket(ts.get("id"), _truth(ts.get("granted") or "false"),
                                                   _truth(ts.get("standby") or "false"))
        return Cib(self.path, MappingProxyType(options), tuple(nodes), tuple(resources), tuple(locs),
                   tuple(colocs), tuple(orders), rsc_defaults, op_defaults, tuple(states), quorum,
                   root.get("dc-uuid"), tuple(rsc_tickets), MappingProxyType(tickets),
                   feature_set=root.get("crm_feature_set"), _index=index, option_sets=option_sets)

    # --- status ---
    def node_state(self, el: Element) -> NodeState:
        transient = ()
        utilization = ()
        ta = el.find("transient_attributes")
        if ta is not None:
            transient = self.nvsets(ta, ("instance_attributes",))
            utilization = self.nvsets(ta, ("utilization",))
        lrm_rscs = []
        lrm = el.find("lrm")
        if lrm is not None:
            lr = lrm.find("lrm_resources")
            for r in (lr.children if lr is not None else []):
                if r.tag == "lrm_resource":
                    lrm_rscs.append(self.lrm_resource(r))
        return NodeState(self.need(el, "id"), el.get("uname"), el.get("in_ccm"), el.get("crmd"),
                         el.get("join"), el.get("expected"), transient, tuple(lrm_rscs), el.line, utilization)

    def lrm_resource(self, el: Element) -> LrmResource:
        ops = []
        num = self.int
        for o in el.children:
            if o.tag != "lrm_rsc_op":
                continue
            a = o.attrib
            task = a.get("operation")
            if not task:
                raise self.err(o, "<lrm_rsc_op> needs a 'operation' attribute")
            ops.append(LrmOp(
                a.get("id", ""), task, num(o, "call-id", -1), num(o, "rc-code", 0), num(o, "op-status", 0),
                num(o, "interval", 0), a.get("op-digest"), a.get("op-restart-digest"),
                a.get("op-force-restart"), _int_or_none(a.get("last-rc-change")),
                a.get("transition-key"), a.get("migrate_source"), a.get("migrate_target"), o.line))
        a = el.attrib
        return LrmResource(self.need(el, "id"), a.get("class"), a.get("provider"), a.get("type"),
                           tuple(ops), el.line, _int_or_none(a.get("shutdown-lock")))

    def int(self, el: Element, name: str, default: int) -> int:
        value = el.attrib.get(name)
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            raise self.err(el, f"<{el.tag}> has a non-integer {name} '{value}'") from None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
