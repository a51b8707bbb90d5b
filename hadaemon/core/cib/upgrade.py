"""Upgrade a Heartbeat 2.0/2.1 CIB (schema 0.6) to the Pacemaker schema parse_cib reads, as Pacemaker's
xml/upgrade06.xsl does for `cibadmin --upgrade`; problems are ConfigError `file:line: message`."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Dict, Tuple

from hadaemon.core.cib.xmltree import Element, parse_xml
from hadaemon.core.errors import ConfigError

__all__ = ["is_heartbeat2", "heartbeat2_reason", "upgrade", "upgrade_text"]

# cib attributes Pacemaker drops (upgrade06.xsl "sanitizing templates")
_DROP = {"generated", "ccm_transition", "num_peers", "cib_last_written", "ignore_dtd", "cib_feature_revision",
         "crm-debug-origin"}
# attributes whose '_' become '-'
_RENAME = {"boolean_op", "on_fail", "have_quorum", "dc_uuid", "op_status", "transition_magic", "call_id", "rc_code",
           "op_digest", "transition_key", "op_restart_digest", "op_force_restart", "score_attribute",
           "score_attribute_mangled", "start_delay", "node_attribute"}
# cluster option names: 2.x spelling -> Pacemaker 1.0
_OPTION_NAMES = {"transition_idle_timeout": "cluster-delay"}
_OPTION_DASHED = ("default_resource_stickiness", "no_quorum_policy", "symmetric_cluster", "stonith_enabled",
                  "stonith_action", "is_managed_default", "stop_orphan_resources", "stop_orphan_actions",
                  "remove_after_stop", "default_resource_failure_stickiness", "default_action_timeout",
                  "startup_fencing", "cluster_recheck_interval", "pe_error_series_max", "pe_warn_series_max",
                  "pe_input_series_max", "short_resource_names", "election_timeout", "dc_deadtime")
# instance attributes that are meta attributes in Pacemaker (copied to meta_attributes, as the XSL does)
_INSTANCE_TO_META = ("resource_stickiness", "allow_migrate", "globally_unique", "target_role", "clone_max",
                     "clone_node_max", "master_max", "master_node_max")
_RESOURCE_KEEP = ("id", "type", "class", "provider", "description")
_KEEP_ID = ("lrm_resource", "node", "node_state")  # ids left as they are (node uuids, resource names)
_NEEDS_ID = {"primitive", "group", "clone", "master", "rsc_location", "rsc_colocation", "rsc_order", "rule",
             "expression", "date_expression", "nvpair", "op", "instance_attributes", "meta_attributes",
             "cluster_property_set", "node", "node_state", "lrm_resource", "lrm_rsc_op", "transient_attributes"}


def heartbeat2_reason(root: Element) -> str | None:
    """Why this <cib> is a Heartbeat 2.x (schema 0.6) CIB, or None when it is not one."""
    vw = root.get("validate-with")
    if vw is not None and not vw.startswith(("pacemaker-0.", "transitional-0.")):
        return None
    for el in _iter(root):  # the first sign in document order
        if el.tag == "attributes":
            return f"<attributes> wrappers around nvpairs (line {el.line})"
        if el.tag == "nvpair" and (el.get("name") or "") in _OPTION_DASHED + tuple(_OPTION_NAMES):
            return f"the 2.x option name '{el.get('name')}' (line {el.line})"
    old = [a for a in ("have_quorum", "dc_uuid", "cib_feature_revision") if root.get(a) is not None]
    if vw is not None or old:
        return "2.x attributes of <cib>: " + ", ".join(old or [f"validate-with={vw}"])
    return None


def is_heartbeat2(text, path: str = "<cib>") -> bool:
    return heartbeat2_reason(parse_xml(text, path)) is not None


class _Upgrader:
    def __init__(self, path: str):
        self.path = path
        self.lines: Dict[ET.Element, int] = {}  # output element -> input line
        self.counter = 0

    def err(self, el: Element, message: str) -> ConfigError:
        return ConfigError(self.path, el.line, message)

    def new(self, parent: ET.Element | None, tag: str, src: Element, attrs: Dict[str, str] | None = None) -> ET.Element:
        el = ET.Element(tag, attrs or {}) if parent is None else ET.SubElement(parent, tag, attrs or {})
        self.lines[el] = src.line
        return el

    def auto_id(self, tag: str) -> str:
        self.counter += 1
        return f"{tag}.auto-{self.counter}"

    def fix_id(self, src: Element, value: str | None) -> str:
        if value is None or value == "":
            return self.auto_id(src.tag)
        if src.tag in _KEEP_ID:
            return value
        if value[0].isdigit():
            return self.auto_id(src.tag)
        return value.replace(":", "-")

    def attr(self, src: Element, name: str, value: str) -> Tuple[str, str] | None:
        """One attribute through the XSL's generic templates: (name, value) or None to drop it."""
        if name in _DROP:
            return None
        if name == "disabled":
            return "enabled", "false" if "true" in value.lower() else "true"
        if name == "prereq":
            return "requires", value
        if name == "score":
            return name, value.split(".", 1)[0] if "." in value else value.upper()
        if name == "provider" and "ocf" not in (src.get("class") or ""):
            return None
        if name == "id":
            return name, self.fix_id(src, value)
        if name in _RENAME:
            return name.replace("_", "-"), value
        if name == "action":
            return "rsc-action", value
        if name == "to_action":
            return "before-rsc-action", value
        if name == "name" and src.tag == "nvpair":
            return name, _option_name(value)
        return name, value

    def copy_attrs(self, src: Element, dst: ET.Element, skip=()) -> None:
        for k, v in src.attrib.items():
            if k in skip:
                continue
            kv = self.attr(src, k, v)
            if kv is not None:
                dst.set(*kv)
        if src.tag in _NEEDS_ID and not dst.get("id"):
            dst.set("id", self.auto_id(src.tag))

    # --- element templates ------------------------------------------------------------------------------
    def convert(self, src: Element, parent: ET.Element | None) -> ET.Element | None:
        handler = getattr(self, "t_" + src.tag, None)
        if handler is not None:
            return handler(src, parent)
        el = self.new(parent, src.tag, src)
        self.copy_attrs(src, el)
        for child in src.children:
            self.convert(child, el)
        return el

    def t_cib(self, src: Element, parent) -> ET.Element:
        attrs = {}
        if src.get("crm_feature_set"):
            attrs["crm_feature_set"] = src.get("crm_feature_set")
        for k in ("admin_epoch", "epoch", "num_updates"):
            attrs[k] = src.get(k) or "0"
        attrs["dc-uuid"] = src.get("dc-uuid") or src.get("dc_uuid") or "0"
        attrs["have-quorum"] = src.get("have-quorum") or src.get("have_quorum") or "false"
        attrs["validate-with"] = "pacemaker-1.0"
        el = self.new(parent, "cib", src, attrs)
        for child in src.children:
            self.convert(child, el)
        if el.find("configuration") is None:
            raise self.err(src, "<cib> has no <configuration>")
        return el

    def t_crm_config(self, src: Element, parent) -> ET.Element:
        el = self.new(parent, "crm_config", src)
        for child in src.children:
            self.convert(child, el)
        if not any(nv.get("name") == "stonith-enabled" for nv in el.iter("nvpair")):
            # Heartbeat 2 ran without fencing unless told: keep it so (as upgrade06.xsl does)
            cps = self.new(el, "cluster_property_set", src, {"id": self.auto_id("cluster_property_set")})
            self.new(cps, "nvpair", src, {"id": self.auto_id("nvpair"), "name": "stonith-enabled", "value": "false"})
        return el

    def _nvset(self, src: Element, parent, meta: bool) -> ET.Element:
        el = self.new(parent, src.tag, src)
        self.copy_attrs(src, el)
        for child in src.children:
            if child.tag == "attributes":
                for nv in child.children:
                    if nv.tag != "nvpair":
                        raise self.err(nv, f"unexpected <{nv.tag}> in <attributes>: expected <nvpair>")
                    self._nvpair(nv, el, meta)
            elif child.tag == "nvpair":
                self._nvpair(child, el, meta)
            elif child.tag == "rule":
                self.t_rule(child, el)
            else:
                raise self.err(child, f"unexpected <{child.tag}> in <{src.tag}>")
        return el

    def _nvpair(self, src: Element, parent: ET.Element, meta: bool) -> None:
        if not src.get("name"):
            raise self.err(src, "<nvpair> has no name")
        el = self.new(parent, "nvpair", src)
        self.copy_attrs(src, el)
        if meta:
            el.set("name", src.get("name").replace("_", "-"))
        el.set("id", self.fix_id(src, src.get("id")) if src.get("id") else self.auto_id("nvpair"))
        el.set("value", src.get("value", "") or "")

    def t_cluster_property_set(self, src, parent):
        return self._nvset(src, parent, meta=False)

    def t_instance_attributes(self, src, parent):
        return self._nvset(src, parent, meta=False)

    def t_meta_attributes(self, src, parent):
        return self._nvset(src, parent, meta=True)

    def _resource(self, src: Element, parent, tag: str) -> ET.Element:
        el = self.new(parent, tag, src, {"id": self.fix_id(src, src.get("id"))})
        if tag == "primitive":
            if not src.get("class") or not src.get("type"):
                raise self.err(src, f"primitive '{src.get('id')}' needs 'class' and 'type'")
            for k in ("class", "provider", "type"):
                if src.get(k) is not None:
                    kv = self.attr(src, k, src.get(k))
                    if kv is not None:
                        el.set(*kv)
        if src.get("description") is not None:
            el.set("description", src.get("description"))
        meta = self.new(el, "meta_attributes", src, {"id": f"{tag}-{el.get('id')}.meta"})
        for k, v in src.attrib.items():
            if k not in _RESOURCE_KEEP:
                self.new(meta, "nvpair", src, {"id": self.auto_id(f"{tag}.meta"), "name": k.replace("_", "-"),
                                              "value": v})
        for ia in src.findall("instance_attributes"):
            for nv in (n for a in ia.children if a.tag == "attributes" for n in a.children) if \
                    ia.find("attributes") is not None else ia.children:
                if nv.tag == "nvpair" and nv.get("name") in _INSTANCE_TO_META:
                    self.new(meta, "nvpair", nv, {"id": self.auto_id(f"{tag}.meta"),
                                                  "name": nv.get("name").replace("_", "-"),
                                                  "value": nv.get("value", "") or ""})
        for child in src.children:
            self.convert(child, el)
        if not len(meta):
            el.remove(meta)
        return el

    def t_primitive(self, src, parent):
        return self._resource(src, parent, "primitive")

    def t_group(self, src, parent):
        return self._resource(src, parent, "group")

    def t_clone(self, src, parent):
        return self._resource(src, parent, "clone")

    def t_master_slave(self, src, parent):
        return self._resource(src, parent, "master")

    def t_op(self, src: Element, parent) -> ET.Element:
        if not src.get("name"):
            raise self.err(src, "<op> has no name")
        el = self.new(parent, "op", src, {"name": src.get("name"), "interval": "0"})
        self.copy_attrs(src, el)
        for child in src.children:
            self.convert(child, el)
        return el

    def t_rule(self, src: Element, parent) -> ET.Element:
        el = self.new(parent, "rule", src)
        if src.get("score") is None and src.get("score_attribute") is None:
            el.set("score", "0")
        self.copy_attrs(src, el)
        for child in src.children:
            self.convert(child, el)
        if not len(el):
            self.new(el, "expression", src, {"id": self.auto_id("expression"), "attribute": "#uname",
                                             "operation": "defined"})
        return el

    def t_date_expression(self, src: Element, parent) -> ET.Element:
        el = self.new(parent, "date_expression", src, {"operation": "in_range"})
        self.copy_attrs(src, el)
        for child in src.children:
            self.convert(child, el)
        return el

    def t_rsc_colocation(self, src: Element, parent) -> ET.Element:
        rsc, with_rsc = src.get("from") or src.get("rsc"), src.get("to") or src.get("with-rsc")
        if not rsc or not with_rsc:
            raise self.err(src, f"rsc_colocation '{src.get('id')}' needs 'from' and 'to'")
        el = self.new(parent, "rsc_colocation", src, {"rsc": rsc, "with-rsc": with_rsc})
        if src.get("from_role"):
            el.set("rsc-role", src.get("from_role").capitalize())
        if src.get("to_role"):
            el.set("with-rsc-role", src.get("to_role").capitalize())
        self.copy_attrs(src, el, skip=("from", "to", "from_role", "to_role", "symmetrical", "rsc", "with-rsc"))
        for child in src.children:
            self.convert(child, el)
        return el

    def t_rsc_order(self, src: Element, parent) -> ET.Element:
        if src.get("first") is not None:  # already the new syntax
            el = self.new(parent, "rsc_order", src)
            self.copy_attrs(src, el)
            return el
        frm, to = src.get("from"), src.get("to")
        if not frm or not to:
            raise self.err(src, f"rsc_order '{src.get('id')}' needs 'from' and 'to'")
        kind = (src.get("type") or "after").lower()
        if kind not in ("before", "after"):
            raise self.err(src, f"rsc_order '{src.get('id')}' has type '{src.get('type')}' (before or after)")
        if kind == "after":  # from starts after to
            attrs = {"first": to, "then": frm, "then-action": src.get("action") or "start",
                     "first-action": src.get("to_action") or src.get("action") or "start"}
        else:
            attrs = {"first": frm, "then": to}
            if src.get("action"):
                attrs["first-action"] = src.get("action")
            if src.get("to_action"):
                attrs["then-action"] = src.get("to_action")
        el = self.new(parent, "rsc_order", src, attrs)
        self.copy_attrs(src, el, skip=("from", "to", "type", "action", "to_action"))
        for child in src.children:
            self.convert(child, el)
        return el

    def t_node(self, src: Element, parent) -> ET.Element:
        el = self.new(parent, "node", src)
        self.copy_attrs(src, el)
        if (src.get("type") or "").lower() == "normal":
            el.set("type", "member")  # Pacemaker 1.1+ names it member (upgrade-1.3.xsl)
        for child in src.children:
            self.convert(child, el)
        return el


def _option_name(name: str) -> str:
    if name in _OPTION_NAMES:
        return _OPTION_NAMES[name]
    if name in _OPTION_DASHED:
        return name.replace("_", "-")
    return name


def _iter(el: Element):
    """xmltree elements in document order (as ElementTree's iter)."""
    yield el
    for child in el.children:
        yield from _iter(child)


def upgrade(text, path: str = "<cib>") -> ET.Element:
    """The Heartbeat 2.x CIB in text as a Pacemaker <cib> element; ConfigError(path, line) on problems,
    including when the result does not load (the line is the one of the input element it came from)."""
    from hadaemon.core.cib.loader import parse_cib

    root = parse_xml(text, path)
    if root.tag != "cib":
        raise ConfigError(path, root.line, f"the root element is <{root.tag}>, expected <cib>")
    up = _Upgrader(path)
    if heartbeat2_reason(root) is None:
        # already the Pacemaker schema (e.g. cibadmin --query of Pacemaker 1.1): only the node type
        # "normal" is renamed, everything else is kept as it is
        out = ET.fromstring(text)
        for node in out.iter("node"):
            if (node.get("type") or "").lower() == "normal":
                node.set("type", "member")
    else:
        out = up.convert(root, None)
    ET.indent(out)
    serial = ET.tostring(out, encoding="unicode")
    try:
        parse_cib(serial, path)
    except ConfigError as exc:
        line = 0
        for mine, reread in zip(out.iter(), _iter(parse_xml(serial, path))):
            if reread.line == exc.line:  # the output element on that line -> the input element it came from
                line = up.lines.get(mine, 0)
                break
        message = re.sub(r"^<[^>]*>:\d+: ", "", exc.message)
        raise ConfigError(path, line, f"after the upgrade: {message}") from None
    return out


def upgrade_text(text, path: str = "<cib>") -> str:
    """upgrade() serialised, with an XML declaration and a final newline."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(upgrade(text, path), encoding="unicode") + "\n"
