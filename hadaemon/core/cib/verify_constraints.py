"""hactl verify's checks of constraints and rules: references, roles, scores, order kinds and actions,
tickets' loss-policy, rule expressions and date expressions."""
from __future__ import annotations

from hadaemon.core.cib.dates import date_expression_of
from hadaemon.core.cib.support import UNSUPPORTED
from hadaemon.core.cib.xmltree import Element

ROLES = {"started", "stopped", "promoted", "unpromoted", "master", "slave"}
ORDER_ACTIONS = {"start", "stop", "promote", "demote"}
ORDER_KINDS = {"mandatory", "optional", "serialize"}
LOSS_POLICIES = {"stop", "demote", "fence", "freeze"}
EXPR_OPS = {"lt", "gt", "lte", "gte", "eq", "ne", "defined", "not_defined"}
EXPR_TYPES = {"string", "integer", "number", "version"}


class _ConstraintChecks:
    """The constraint and rule half of verify._Checker (its base class): it uses the checker's error, warn,
    check_score, check_bool and nodes."""

    # -- constraints ------------------------------------------------------------------------------
    def check_ref(self, cons: Element, attr: str, required: bool = True):
        ref = cons.get(attr)
        cid = cons.get("id")
        if ref is None:
            if required and not (cons.tag == "rsc_location" and cons.get("rsc-pattern")):
                self.error(cons, f"<{cons.tag}> '{cid}' has no {attr} attribute")
            return
        # a name that is no resource, template or tag: validate.refusals (shared with the loader)

    def check_role(self, cons: Element, attr: str):
        value = cons.get(attr)
        if value is not None and value.lower() not in ROLES:
            self.error(cons, f"invalid {attr} '{value}' in '{cons.get('id')}'")

    def check_constraints(self, conf: Element):
        constraints = conf.find("constraints")
        if constraints is None:
            return
        for cons in constraints.children:
            cid = cons.get("id")
            if cons.tag == "rsc_location":
                self.check_ref(cons, "rsc")
                self.check_role(cons, "role")
                rules = [c for c in cons.children if c.tag == "rule"]
                if cons.get("node") is not None:
                    if cons.get("node") not in self.nodes:
                        self.error(cons, f"<rsc_location> '{cid}' node='{cons.get('node')}' refers to no node"
                                         " defined in <nodes>")
                    if cons.get("score") is None:
                        self.error(cons, f"<rsc_location> '{cid}' names a node but has no score")
                    self.check_score(cons, "score", f"'{cid}'")
                elif not rules and not any(c.tag == "resource_set" for c in cons.children):
                    self.error(cons, f"<rsc_location> '{cid}' has neither node and score nor a <rule>")
                for rule in rules:
                    self.check_rule(rule, top=True)
            elif cons.tag == "rsc_colocation":
                if any(c.tag == "resource_set" for c in cons.children):
                    continue
                self.check_ref(cons, "rsc")
                self.check_ref(cons, "with-rsc")
                self.check_role(cons, "rsc-role")
                self.check_role(cons, "with-rsc-role")
                if cons.get("score") is None and cons.get("score-attribute") is None:
                    self.error(cons, f"<rsc_colocation> '{cid}' has no score")
                self.check_score(cons, "score", f"'{cid}'")
                if cons.get("rsc") is not None and cons.get("rsc") == cons.get("with-rsc"):
                    self.warn(cons, f"<rsc_colocation> '{cid}' colocates '{cons.get('rsc')}' with itself;"
                                    " it has no effect")
            elif cons.tag == "rsc_order":
                if any(c.tag == "resource_set" for c in cons.children):
                    continue
                self.check_ref(cons, "first")
                self.check_ref(cons, "then")
                for attr in ("first-action", "then-action"):
                    value = cons.get(attr)
                    if value is not None and value not in ORDER_ACTIONS:
                        self.error(cons, f"invalid {attr} '{value}' in '{cid}': expected one of "
                                         + ", ".join(sorted(ORDER_ACTIONS)))
                kind = cons.get("kind")
                if kind is not None and kind.lower() not in ORDER_KINDS:
                    self.error(cons, f"invalid kind '{kind}' in '{cid}': expected Mandatory, Optional or Serialize")
                if cons.get("symmetrical") is not None:
                    self.check_bool(cons, cons.get("symmetrical"), f"symmetrical in '{cid}'")
                self.check_score(cons, "score", f"'{cid}'")
                if cons.get("first") is not None and cons.get("first") == cons.get("then"):
                    self.warn(cons, f"<rsc_order> '{cid}' orders '{cons.get('first')}' after itself;"
                                    " it has no effect")
            elif cons.tag == "rsc_ticket":
                self.check_ticket(cons)
            elif cons.tag not in UNSUPPORTED:
                self.error(cons, f"unknown element <{cons.tag}> in <constraints>: expected rsc_location,"
                                 " rsc_colocation, rsc_order or rsc_ticket")

    def check_ticket(self, cons: Element):
        """rsc_ticket as the loader reads it: a ticket, a loss-policy, and rsc= or resource sets."""
        tid = cons.get("id")
        if not cons.get("ticket"):
            self.error(cons, f"<rsc_ticket> '{tid}' has no ticket attribute")
        policy = cons.get("loss-policy")
        if policy is not None and policy.lower() not in LOSS_POLICIES:
            self.error(cons, f"invalid loss-policy '{policy}' in '{tid}': expected one of "
                             + ", ".join(sorted(LOSS_POLICIES)))
        sets = [c for c in cons.children if c.tag == "resource_set"]
        for rset in sets:
            self.check_role(rset, "role")
        if not sets:
            self.check_ref(cons, "rsc")
            self.check_role(cons, "rsc-role")

    def check_rule(self, rule: Element, top: bool):
        rid = rule.get("id")
        if rule.get("id-ref"):
            return
        if top and rule.get("score") is None and rule.get("score-attribute") is None:
            self.error(rule, f"rule '{rid}' has no score")
        self.check_score(rule, "score", f"rule '{rid}'")
        op = rule.get("boolean-op")
        if op is not None and op not in ("and", "or"):
            self.error(rule, f"invalid boolean-op '{op}' in rule '{rid}': expected and or or")
        for child in rule.children:
            if child.tag == "rule":
                self.check_rule(child, top=False)
            elif child.tag == "expression":
                self.check_expression(child)
            elif child.tag == "date_expression" and child.tag not in UNSUPPORTED:
                self.check_date_expression(child)
            elif child.tag not in UNSUPPORTED and child.tag not in ("rsc_expression", "op_expression"):
                self.error(child, f"unexpected <{child.tag}> in rule '{rid}': expected <expression> or <rule>")

    def check_expression(self, expr: Element):
        eid, op = expr.get("id"), expr.get("operation")
        if not expr.get("attribute"):
            self.error(expr, f"expression '{eid}' has no attribute")
        if op is None or op not in EXPR_OPS:
            self.error(expr, f"invalid operation '{op}' in expression '{eid}': expected one of "
                             + ", ".join(sorted(EXPR_OPS)))
        elif op not in ("defined", "not_defined") and expr.get("value") is None:
            self.error(expr, f"expression '{eid}' ({op}) has no value")
        typ = expr.get("type")
        if typ is not None and typ not in EXPR_TYPES:
            self.error(expr, f"invalid type '{typ}' in expression '{eid}': expected one of "
                             + ", ".join(sorted(EXPR_TYPES)))

    def check_date_expression(self, expr: Element):
        """What the loader reads: lt (end), gt (start), in_range (start and/or end or duration), date_spec."""
        problem, _ = date_expression_of(expr)
        if problem is not None:
            self.error(expr, problem)
