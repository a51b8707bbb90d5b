"""Pure checks of a CIB XML document (what `hactl verify` reports), with line numbers."""
from __future__ import annotations

import re
from typing import Dict, Iterator, List, Mapping, NamedTuple, Set, Tuple

from hadaemon.core.cib import xmltree
from hadaemon.core.cib.support import RESOURCE_CLASSES, UNSUPPORTED
from hadaemon.core.cib.validate import BOOLEAN_OPTIONS, refusals
from hadaemon.core.cib.verify_constraints import ROLES, _ConstraintChecks
from hadaemon.core.cib.xmltree import Element
from hadaemon.core.errors import ConfigError

ERROR, WARNING = "error", "warning"

ON_FAIL = {"ignore", "block", "stop", "restart", "standby", "fence", "demote"}
MULTIPLE_ACTIVE = {"block", "stop_only", "stop_start", "stop_unexpected"}
BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"}
NO_QUORUM_POLICIES = {"stop", "freeze", "ignore", "demote", "suicide", "fence"}
META_BOOLEANS = {"is-managed", "allow-migrate", "maintenance", "critical", "interleave", "ordered",
                 "globally-unique", "notify", "promotable"}
META_COUNTS = {"clone-max", "clone-node-max", "promoted-max", "promoted-node-max", "master-max", "master-node-max"}
TRUE_WORDS = {"true", "yes", "on", "1", "y"}
META_SCORES = {"resource-stickiness", "resource_stickiness", "migration-threshold"}
_PRIORITY_RE = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|INFINITY)\s*$")
_SCORE_RE = re.compile(r"^[+-]?(INFINITY|\d+)$")
_DURATION_RE = re.compile(r"^\s*(\d+\s*(ms|msec|us|usec|s|sec|m|min|h|hr)?|P(?!$)(\d+[YMWD])*(T(?!$)(\d+[HMS])*)?)\s*$",
                          re.IGNORECASE)


class Finding(NamedTuple):
    """One problem: where, how bad, what."""

    line: int
    severity: str
    message: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}: {self.severity}: {self.message}"


class XmlSyntaxError(Exception):
    """The document is not well-formed XML."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class AgentInfo(NamedTuple):
    """What is known about a resource agent: exists (None = cannot tell) and its parameters
    (name -> required) when its meta-data could be read."""

    exists: bool | None
    parameters: Dict[str, bool] | None = None


AgentSpec = Tuple[str, str, str]  # (class, provider or "", type)


def parse_xml(data) -> Element:
    """Parse XML text or bytes into Elements with line numbers; XmlSyntaxError when malformed."""
    try:
        return xmltree.parse_xml(data, "")
    except xmltree.XmlSyntaxError as e:
        raise XmlSyntaxError(e.line, f"XML syntax error: {e.reason} (column {e.column})") from None
    except ConfigError as e:
        raise XmlSyntaxError(e.line, e.message) from None


def parse_agent_metadata(data) -> Dict[str, bool]:
    """An OCF agent's meta-data XML -> {parameter name: required}."""
    params: Dict[str, bool] = {}
    for p in parse_xml(data).iter("parameter"):
        if p.get("name"):
            params[p.get("name")] = p.get("required", "0").lower() in ("1", "true", "yes")
    return params


def is_score(value: str | None) -> bool:
    return value is not None and bool(_SCORE_RE.match(value.strip()))


def agent_spec(prim: Element) -> AgentSpec | None:
    cls = prim.get("class")
    if not cls or not prim.get("type"):
        return None
    return (cls, prim.get("provider") or "", prim.get("type"))


def agent_specs(root: Element) -> Set[AgentSpec]:
    """The agents a document's primitives use, for the shell to look up before verify()."""
    conf = root.find("configuration")
    if conf is None or conf.find("resources") is None:
        return set()
    specs = (agent_spec(p) for p in conf.find("resources").iter("primitive"))
    return {s for s in specs if s and s[0] in RESOURCE_CLASSES}


def _nvpairs(node: Element, set_tag: str) -> Iterator[Element]:
    for s in node.children:
        if s.tag == set_tag:
            yield from (n for n in s.children if n.tag == "nvpair")


class _Checker(_ConstraintChecks):
    def __init__(self, root: Element, agents: Mapping[AgentSpec, AgentInfo]):
        self.root, self.agents = root, agents
        self.findings: List[Finding] = []
        self.ids: Dict[str, Element] = {}
        self.resources: Dict[str, Element] = {}
        self.nodes: Set[str] = set()

    def error(self, node: Element, message: str):
        self.findings.append(Finding(node.line, ERROR, message))

    def warn(self, node: Element, message: str):
        self.findings.append(Finding(node.line, WARNING, message))

    def run(self) -> List[Finding]:
        root = self.root
        if root.tag != "cib":
            self.error(root, f"the document element is <{root.tag}>, expected <cib>")
            return self.findings
        conf = root.find("configuration")
        if conf is None:
            self.error(root, "<cib> has no <configuration> section")
            return self.findings
        for tag in ("crm_config", "nodes", "resources", "constraints"):
            if conf.find(tag) is None:
                self.error(conf, f"<configuration> has no <{tag}> section")
        self.check_ids(conf)
        self.check_unsupported(root)
        self.check_crm_config(conf)
        self.check_nodes(conf)
        self.check_resources(conf)
        self.check_constraints(conf)
        self.check_fencing(conf)
        self.check_nvpairs(root)
        self.check_status(root)
        self.findings.extend(Finding(r.line, ERROR, r.message) for r in refusals(root))
        return sorted(self.findings)

    # -- ids --------------------------------------------------------------------------------------
    def check_ids(self, conf: Element):
        for node in conf.iter():
            ident = node.get("id")
            if node.tag in ("resource_ref", "obj_ref"):
                continue  # their id attribute refers to another element
            if not ident:
                if ident is not None:
                    self.error(node, f"<{node.tag}> has an empty id")
                elif node.tag in ("primitive", "group", "clone", "rsc_location", "rsc_colocation", "rsc_order", "op",
                                  "rule", "expression", "node") and not node.get("id-ref"):
                    self.error(node, f"<{node.tag}> has no id attribute")
                continue
            first = self.ids.get(ident)
            if first is not None:
                self.error(node, f"duplicate id '{ident}' (<{node.tag}>), first used by <{first.tag}>"
                                 f" on line {first.line}")
            else:
                self.ids[ident] = node
        for node in conf.iter():
            ref = node.get("id-ref")
            if ref is None:
                continue
            target = self.ids.get(ref)
            if target is None:
                self.error(node, f"<{node.tag}> id-ref '{ref}' refers to no element")
            elif target.tag != node.tag:
                self.error(node, f"<{node.tag}> id-ref '{ref}' refers to a <{target.tag}>")

    def check_unsupported(self, root: Element):
        # the loader reads resource sets in tickets
        ticket_sets = {id(s) for t in root.iter("rsc_ticket") for s in t.children if s.tag == "resource_set"}
        for node in root.iter():
            what = UNSUPPORTED.get(node.tag)
            if what and id(node) not in ticket_sets:
                self.error(node, f"<{node.tag}> is not supported: {what} are not implemented yet")
            elif node.tag == "primitive" and node.get("template") and "template" in UNSUPPORTED:
                self.error(node, f"primitive '{node.get('id')}' uses template '{node.get('template')}':"
                                 " resource templates are not implemented yet")

    # -- values -----------------------------------------------------------------------------------
    def check_score(self, node: Element, attr: str, what: str):
        value = node.get(attr)
        if value is not None and not is_score(value):
            self.error(node, f"invalid score '{value}' in {what}: expected an integer, INFINITY,"
                             " +INFINITY or -INFINITY")

    def check_bool(self, node: Element, value: str, what: str):
        if value.strip().lower() not in BOOL_WORDS:
            self.error(node, f"invalid boolean '{value}' for {what}: expected true or false")

    def check_duration(self, node: Element, value: str, what: str):
        if not _DURATION_RE.match(value):
            self.error(node, f"invalid duration '{value}' for {what}: expected e.g. 10s, 500ms, 2min or PT1M")

    def check_crm_config(self, conf: Element):
        crm = conf.find("crm_config")
        if crm is None:
            return
        for nv in _nvpairs(crm, "cluster_property_set"):
            name, value = nv.get("name"), nv.get("value")
            if not name or value is None:
                continue
            if name in BOOLEAN_OPTIONS:
                continue  # an invalid boolean: validate.refusals (shared with the loader)
            if name == "no-quorum-policy" and value not in NO_QUORUM_POLICIES:
                self.error(nv, f"invalid no-quorum-policy '{value}': expected one of "
                               + ", ".join(sorted(NO_QUORUM_POLICIES)))
            elif name in ("default-resource-stickiness", "node-health-red"):
                self.check_score(nv, "value", f"cluster option {name}")

    def cluster_option(self, conf: Element, names: Tuple[str, ...], default: str) -> str:
        crm = conf.find("crm_config")
        value = default
        if crm is not None:
            for nv in _nvpairs(crm, "cluster_property_set"):
                if nv.get("name") in names and nv.get("value") is not None:
                    value = nv.get("value")
        return value

    def check_nodes(self, conf: Element):
        nodes = conf.find("nodes")
        if nodes is None:
            return
        for node in nodes.children:
            if node.tag != "node":
                self.error(node, f"unexpected <{node.tag}> in <nodes>: expected <node>")
                continue
            uname = node.get("uname")
            if not uname:
                self.error(node, f"node '{node.get('id')}' has no uname")
            elif uname in self.nodes:
                self.error(node, f"duplicate node name '{uname}'")
            self.nodes.add(uname or "")
            if node.get("type", "member") not in ("member", "normal"):
                self.error(node, f"node '{uname}' has type '{node.get('type')}': only cluster members"
                                 " are supported (not ping or remote nodes)")
            for nv in _nvpairs(node, "instance_attributes"):
                if nv.get("name") in ("standby", "maintenance") and nv.get("value") is not None:
                    self.check_bool(nv, nv.get("value"), f"node attribute {nv.get('name')}")

    # -- resources --------------------------------------------------------------------------------
    def check_resources(self, conf: Element):
        resources = conf.find("resources")
        if resources is None:
            return
        for rsc in resources.children:
            if rsc.tag == "primitive":
                self.check_primitive(rsc)
            elif rsc.tag == "group":
                self.check_group(rsc)
            elif rsc.tag == "clone" or (rsc.tag == "master" and "master" not in UNSUPPORTED):
                self.check_clone(rsc)
            elif rsc.tag == "template" and "template" not in UNSUPPORTED:
                self.resources[rsc.get("id", "")] = rsc  # constraints may name a template
        tags = conf.find("tags")
        for tag in (tags.children if tags is not None and "tag" not in UNSUPPORTED else []):
            if tag.tag == "tag":
                self.resources[tag.get("id", "")] = tag  # ... or a tag
            elif rsc.tag not in UNSUPPORTED:
                self.error(rsc, f"unknown element <{rsc.tag}> in <resources>: expected <primitive>, <group> or"
                                " <clone>")
        for defaults in conf.children:
            if defaults.tag in ("rsc_defaults", "op_defaults"):
                for child in defaults.children:
                    if child.tag != "meta_attributes":
                        self.error(child, f"unexpected <{child.tag}> in <{defaults.tag}>: expected <meta_attributes>")
                self.check_meta(defaults)

    def check_clone(self, clone: Element):
        """A clone (or <master>) as the scheduler takes it: one primitive; promotable ones only when the
        support table no longer lists them; cloned groups, except promotable ones."""
        cid = clone.get("id", "")
        self.resources[cid] = clone
        cloned = []
        promotable = clone.tag == "master" or any(
            nv.get("name") == "promotable" and (nv.get("value") or "").strip().lower() in TRUE_WORDS
            for nv in _nvpairs(clone, "meta_attributes"))
        for child in clone.children:
            if child.tag == "primitive":
                cloned.append(child)
                self.check_primitive(child)
            elif child.tag == "group":
                cloned.append(child)
                self.check_group(child)
            elif child.tag == "clone":
                self.error(child, f"clone '{child.get('id')}' inside clone '{cid}': clones cannot be nested")
            elif child.tag not in ("meta_attributes", "instance_attributes") and child.tag not in UNSUPPORTED:
                self.error(child, f"unexpected <{child.tag}> in clone '{cid}'")
        if not cloned:
            self.error(clone, f"clone '{cid}' has nothing to clone (a primitive)")
        for extra in cloned[1:]:
            self.error(extra, f"clone '{cid}' has more than one resource to clone")
        if promotable and "promotable" in UNSUPPORTED:
            self.error(clone, f"clone '{cid}' is promotable: {UNSUPPORTED['promotable']} are not implemented yet")
        self.check_meta(clone)

    def check_group(self, group: Element):
        self.resources[group.get("id", "")] = group
        members = 0
        for child in group.children:
            if child.tag == "primitive":
                members += 1
                self.check_primitive(child)
            elif child.tag == "group":
                self.error(child, f"group '{child.get('id')}' inside group '{group.get('id')}':"
                                  " groups cannot be nested")
            elif child.tag not in ("meta_attributes", "instance_attributes", "utilization")\
                    and child.tag not in UNSUPPORTED:
                self.error(child, f"unexpected <{child.tag}> in group '{group.get('id')}'")
        if members == 0:
            self.warn(group, f"group '{group.get('id')}' has no primitives")
        self.check_meta(group)

    def check_primitive(self, prim: Element):
        rid = prim.get("id", "")
        self.resources[rid] = prim
        if prim.get("template"):
            return
        cls, typ = prim.get("class"), prim.get("type")
        if not cls:
            self.error(prim, f"primitive '{rid}' has no class (ocf, lsb, systemd, service or stonith)")
        elif cls not in RESOURCE_CLASSES:
            self.error(prim, f"primitive '{rid}' has unknown class '{cls}': expected one of "
                             + ", ".join(sorted(RESOURCE_CLASSES)))
        if not typ:
            self.error(prim, f"primitive '{rid}' has no type")
        if cls == "ocf" and not prim.get("provider"):
            self.error(prim, f"primitive '{rid}' of class ocf has no provider (e.g. heartbeat, pacemaker)")
        elif cls in RESOURCE_CLASSES and cls != "ocf" and prim.get("provider"):
            self.warn(prim, f"primitive '{rid}': provider '{prim.get('provider')}' is ignored for class {cls}")
        self.check_agent(prim)
        self.check_meta(prim)
        self.check_ops(prim)

    def check_agent(self, prim: Element):
        spec = agent_spec(prim)
        if spec is None or spec[0] not in RESOURCE_CLASSES or (spec[0] == "ocf" and not spec[1]):
            return
        info = self.agents.get(spec)
        if info is None or info.exists is None:
            return
        name = ":".join(p for p in spec if p)
        rid = prim.get("id")
        if not info.exists:
            self.warn(prim, f"primitive '{rid}': resource agent {name} is not installed on this machine")
            return
        if info.parameters is None:
            return
        given = {nv.get("name"): nv for nv in _nvpairs(prim, "instance_attributes")}
        for param, required in sorted(info.parameters.items()):
            if required and param not in given:
                self.error(prim, f"primitive '{rid}' lacks parameter '{param}', required by {name}")
        for param, nv in given.items():
            if param is not None and param not in info.parameters:
                self.warn(nv, f"primitive '{rid}': {name} has no parameter '{param}'")

    def check_meta(self, rsc: Element):
        for nv in _nvpairs(rsc, "meta_attributes"):
            name, value = nv.get("name"), nv.get("value")
            if not name or value is None:
                continue
            what = f"{name} of '{rsc.get('id', rsc.tag)}'"
            if name in META_SCORES:
                self.check_score(nv, "value", what)
            elif name in META_BOOLEANS:
                self.check_bool(nv, value, what)
            elif name == "priority" and not _PRIORITY_RE.match(value):
                self.error(nv, f"invalid priority '{value}' of '{rsc.get('id', rsc.tag)}': expected an integer")
            elif name == "target-role" and value.lower() not in ROLES:
                self.error(nv, f"invalid target-role '{value}': expected Started or Stopped")
            elif name == "multiple-active" and value not in MULTIPLE_ACTIVE:
                self.error(nv, f"invalid multiple-active '{value}': expected one of "
                               + ", ".join(sorted(MULTIPLE_ACTIVE)))
            elif name == "failure-timeout":
                self.check_duration(nv, value, what)
            elif name in META_COUNTS and not re.match(r"^\s*\d+\s*$", value):
                self.error(nv, f"invalid {name} '{value}' of '{rsc.get('id', rsc.tag)}': expected a"
                               " non-negative integer")

    def check_ops(self, prim: Element):
        seen: Dict[Tuple[str, str], Element] = {}
        for ops in prim.children:
            if ops.tag != "operations":
                continue
            for op in ops.children:
                if op.tag != "op" or op.get("id-ref"):
                    continue
                name = op.get("name")
                if not name:
                    self.error(op, f"operation '{op.get('id')}' of '{prim.get('id')}' has no name")
                    continue
                for attr in ("interval", "timeout", "start-delay"):
                    if op.get(attr) is not None:
                        self.check_duration(op, op.get(attr), f"{attr} of operation '{op.get('id')}'")
                if op.get("on-fail") is not None and op.get("on-fail") not in ON_FAIL:
                    self.error(op, f"invalid on-fail '{op.get('on-fail')}' for operation '{op.get('id')}':"
                                   " expected one of " + ", ".join(sorted(ON_FAIL)))
                if op.get("role") is not None and op.get("role").lower() not in ROLES:
                    self.error(op, f"invalid role '{op.get('role')}' for operation '{op.get('id')}'")
                key = (name, _interval_ms(op.get("interval", "0")), (op.get("role") or "").lower())
                if key in seen:
                    self.error(op, f"operation '{op.get('id')}' duplicates '{seen[key].get('id')}'"
                                   f" (same name {name} and interval)")
                else:
                    seen[key] = op

    def check_nvpairs(self, root: Element):
        for nv in root.iter("nvpair"):
            if not nv.get("name") and not nv.get("id-ref"):
                self.error(nv, f"<nvpair> '{nv.get('id')}' has no name")

    def check_status(self, root: Element):
        """The status section as the scheduler reads it: node_state, lrm_resource and lrm_rsc_op."""
        status = root.find("status")
        if status is None:
            return
        for state in status.children:
            if state.tag != "node_state":
                continue
            if not state.get("id"):
                self.error(state, "<node_state> has no id")
            for rsc in state.iter("lrm_resource"):
                if not rsc.get("id"):
                    self.error(rsc, "<lrm_resource> has no id")
                for op in rsc.children:
                    if op.tag != "lrm_rsc_op":
                        continue
                    if not op.get("operation"):
                        self.error(op, f"<lrm_rsc_op> '{op.get('id')}' has no operation")
                    for attr in ("call-id", "rc-code", "op-status", "interval"):
                        value = op.get(attr)
                        if value is not None and not re.match(r"^\s*-?\d+\s*$", value):
                            self.error(op, f"<lrm_rsc_op> '{op.get('id')}' has a non-integer {attr} '{value}'")

    def check_fencing(self, conf: Element):
        enabled = self.cluster_option(conf, ("stonith-enabled", "fencing-enabled"), "true")
        if enabled.strip().lower() not in ("true", "yes", "on", "1", "y"):
            return
        if not any(p.get("class") == "stonith" for p in self.resources.values()):
            anchor = conf.find("crm_config") or conf
            self.error(anchor, "fencing is enabled (stonith-enabled defaults to true) but no stonith resource is"
                               " defined: resources will not start; define one or set stonith-enabled=false")


def _interval_ms(value: str) -> str:
    m = re.match(r"^\s*(\d+)\s*([a-z]*)\s*$", value or "0", re.IGNORECASE)
    if not m:
        return value
    mult = {"": 1000, "s": 1000, "sec": 1000, "ms": 1, "msec": 1, "m": 60000, "min": 60000,
            "h": 3600000, "hr": 3600000}.get(m.group(2).lower())
    return str(int(m.group(1)) * mult) if mult else value


def verify(root: Element, agents: Mapping[AgentSpec, AgentInfo] | None = None) -> List[Finding]:
    """All problems in a parsed CIB, sorted by line. `agents` maps agent_specs(root) to what the
    shell found out about each agent; missing entries are not checked."""
    return _Checker(root, agents or {}).run()


def verify_text(data, agents: Mapping[AgentSpec, AgentInfo] | None = None) -> List[Finding]:
    """verify() on raw XML; a syntax error is a single finding."""
    try:
        root = parse_xml(data)
    except XmlSyntaxError as e:
        return [Finding(e.line, ERROR, e.message)]
    return verify(root, agents)
