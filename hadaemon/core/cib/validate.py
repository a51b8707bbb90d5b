"""What a CIB is refused for before anything is scheduled from it: the one validator that the CIB
loader (so `hactl simulate` and ha-crmd) and `hactl verify` share.

crm_simulate validates the CIB against the schema its `validate-with` declares and refuses what does
not validate; Pacemaker's option table refuses an invalid boolean. Each refusal here is one of those:
- a constraint (or a resource set in one) naming no resource, template or tag (an IDREF to nothing);
- a boolean cluster option that is neither true nor false (e.g. stonith-enabled="flase");
- a cluster option that the declared schema no longer has (pacemaker-3.0 and later: options-3.0.rng
  drops default-resource-stickiness, is-managed-default, the underscore spellings, ...);
- an rsc_expression or op_expression under a schema older than pacemaker-3.4 (rule-3.4.rng added them).
"""
from __future__ import annotations

from hadaemon.core.cib.model import Record
from hadaemon.core.cib.xmltree import Element

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, Iterator, List, Tuple

BOOLEAN_OPTIONS = frozenset((
    "fencing-enabled", "stonith-enabled", "symmetric-cluster", "maintenance-mode", "start-failure-is-fatal",
    "stop-all-resources", "stop-orphan-resources", "stop-removed-resources", "stop-orphan-actions",
    "cancel-removed-actions", "startup-fencing", "concurrent-fencing", "enable-startup-probes",
    "have-watchdog", "shutdown-lock"))
BOOL_WORDS = frozenset(("true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"))

# Pacemaker's options-3.0.rng (used by every schema from pacemaker-3.0 on): cluster_property_set names
# that no longer validate, with what replaces each.
REMOVED_OPTIONS: Dict[str, str] = {
    "cluster_recheck_interval": "cluster-recheck-interval",
    "dc_deadtime": "dc-deadtime",
    "default-action-timeout": "timeout in <op_defaults>",
    "default_action_timeout": "timeout in <op_defaults>",
    "default-migration-threshold": "migration-threshold in <rsc_defaults>",
    "default_migration_threshold": "migration-threshold in <rsc_defaults>",
    "default-resource-failure-stickiness": "migration-threshold in <rsc_defaults>",
    "default_resource_failure_stickiness": "migration-threshold in <rsc_defaults>",
    "default-resource-stickiness": "resource-stickiness in <rsc_defaults>",
    "default_resource_stickiness": "resource-stickiness in <rsc_defaults>",
    "election_timeout": "election-timeout",
    "expected-quorum-votes": "the quorum settings of the membership layer",
    "is-managed-default": "is-managed in <rsc_defaults>",
    "is_managed_default": "is-managed in <rsc_defaults>",
    "no_quorum_policy": "no-quorum-policy",
    "notification-agent": "an <alert>",
    "notification-recipient": "an <alert>",
    "remove_after_stop": "nothing (it was removed)",
    "shutdown_escalation": "shutdown-escalation",
    "startup_fencing": "startup-fencing",
    "stonith_action": "stonith-action",
    "stonith_enabled": "stonith-enabled",
    "stop_orphan_actions": "stop-orphan-actions",
    "stop_orphan_resources": "stop-orphan-resources",
    "symmetric_cluster": "symmetric-cluster",
    "transition_idle_timeout": "cluster-delay",
}
LEGACY_INFRASTRUCTURES = frozenset(("heartbeat", "openais", "classic openais", "classic openais (with plugin)",
                                    "cman"))
RESOURCE_TAGS = frozenset(("primitive", "group", "clone", "master", "bundle", "template"))
_CONSTRAINT_REFS = {"rsc_location": ("rsc",), "rsc_colocation": ("rsc", "with-rsc"),
                    "rsc_order": ("first", "then"), "rsc_ticket": ("rsc",)}


class Refusal(Record):
    """Why the CIB is refused: the line of the offending element and what is wrong."""

    __slots__ = ("line", "message")

    def __init__(self, line: int, message: str):
        self.line = line
        self.message = message


def schema_version(validate_with: str | None) -> Tuple[int, int] | None:
    """'pacemaker-3.7' -> (3, 7); 'pacemaker-next' is newer than any; others (none, 2.x names) -> None."""
    if validate_with is None:
        return None
    if validate_with == "pacemaker-next":
        return (999, 0)
    name = validate_with.strip()
    if not name.startswith("pacemaker-"):
        return None
    major, dot, minor = name[len("pacemaker-"):].partition(".")
    return (int(major), int(minor)) if dot and major.isdecimal() and minor.isdecimal() else None


def refusals(root: Element) -> List[Refusal]:
    """Every refusal for a parsed CIB document, in line order (empty when it may be scheduled)."""
    conf = root.find("configuration")
    if conf is None:
        return []
    ids = _ids(conf)
    found = list(_option_refusals(root, conf, ids)) + list(_reference_refusals(conf, ids))
    version = schema_version(root.get("validate-with"))
    if version is not None and version < (3, 4):
        for el in conf.iter():
            if el.tag in ("rsc_expression", "op_expression"):
                found.append(Refusal(el.line, f"<{el.tag}> '{el.get('id')}' is not in the schema this CIB declares"
                                              f" (validate-with=\"{root.get('validate-with')}\"; it needs"
                                              " pacemaker-3.4 or later)"))
    return sorted(found, key=lambda r: (r.line, r.message))


def _ids(conf: Element) -> Dict[str, Element]:
    ids: Dict[str, Element] = {}
    for el in conf.iter():
        ident = el.get("id")
        if ident and el.tag not in ("resource_ref", "obj_ref") and ident not in ids:
            ids[ident] = el
    return ids


def _deref(el: Element, ids: Dict[str, Element]) -> Element:
    ref = el.get("id-ref")
    if ref is not None and ids.get(ref) is not None and ids[ref].tag == el.tag:
        return ids[ref]
    return el


def _option_refusals(root: Element, conf: Element, ids: Dict[str, Element]) -> Iterator[Refusal]:
    crm = conf.find("crm_config")
    if crm is None:
        return
    version = schema_version(root.get("validate-with"))
    strict = version is not None and version >= (3, 0)
    for s in crm.children:
        if s.tag != "cluster_property_set":
            continue
        for nv in _deref(s, ids).children:
            if nv.tag != "nvpair":
                continue
            target = _deref(nv, ids)
            name, value = target.get("name"), target.get("value")
            if name in BOOLEAN_OPTIONS and value is not None and value.strip().lower() not in BOOL_WORDS:
                yield Refusal(nv.line, f"invalid boolean '{value}' for cluster option {name}: expected true or false")
            if not strict:
                continue
            if name in REMOVED_OPTIONS:
                yield Refusal(nv.line, f"cluster option {name} is not in the schema this CIB declares"
                                       f" (validate-with=\"{root.get('validate-with')}\" has no such option since"
                                       f" pacemaker-3.0): use {REMOVED_OPTIONS[name]}")
            elif name == "cluster-infrastructure" and (value or "").strip() in LEGACY_INFRASTRUCTURES:
                yield Refusal(nv.line, f"cluster-infrastructure '{value}' is not in the schema this CIB declares"
                                       f" (validate-with=\"{root.get('validate-with')}\")")


def _reference_refusals(conf: Element, ids: Dict[str, Element]) -> Iterator[Refusal]:
    constraints = conf.find("constraints")
    if constraints is None:
        return
    names = {i for i, el in ids.items() if el.tag in RESOURCE_TAGS}
    tags = conf.find("tags")
    for tag in (tags.children if tags is not None else []):
        if tag.tag == "tag" and tag.get("id"):
            names.add(tag.get("id"))

    def what(ref: str) -> str:
        el = ids.get(ref)
        return f"a <{el.tag}>, not a resource, template or tag" if el is not None else \
            "no resource, template or tag"

    for cons in constraints.children:
        attrs = _CONSTRAINT_REFS.get(cons.tag)
        if attrs is None:
            continue
        cid = cons.get("id")
        for attr in attrs:
            ref = cons.get(attr)
            if ref is not None and ref not in names:
                yield Refusal(cons.line, f"<{cons.tag}> '{cid}' {attr}='{ref}' refers to {what(ref)}")
        for rset in cons.children:
            if rset.tag != "resource_set":
                continue
            for item in rset.children:
                ref = item.get("id")
                if item.tag == "resource_ref" and ref is not None and ref not in names:
                    yield Refusal(item.line, f"resource set '{rset.get('id')}' of <{cons.tag}> '{cid}'"
                                             f" refers to '{ref}': {what(ref)}")
