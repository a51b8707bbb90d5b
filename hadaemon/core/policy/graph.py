"""The transition graph: actions plus ordering edges, with deterministic ordering and XML."""
from __future__ import annotations

import heapq

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Set, Tuple


def quoteattr(value: str) -> str:
    """An XML attribute value with its quotes, as xml.sax.saxutils.quoteattr writes it (that module
    drags in urllib and http.client: a third of `hactl simulate`'s start-up)."""
    value = value.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
    value = value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' in value:
        if "'" in value:
            value = value.replace('"', "&quot;")
        else:
            return "'" + value + "'"
    return '"' + value + '"'


class Action:
    """One scheduled action: a resource operation, a pseudo-action or a fencing/cluster event."""

    __slots__ = ("id", "key", "task", "rsc", "node", "interval_ms", "pseudo", "optional", "runnable",
                 "reason", "kind", "probe", "target_rc", "fence_type", "migrate_source",
                 "migrate_target", "printed", "stage")

    def __init__(self, aid: int, key: str, task: str, rsc: str | None, node: str | None,
                 interval_ms: int = 0, pseudo: bool = False, optional: bool = True,
                 runnable: bool = True, kind: str = "rsc_op"):
        self.id = aid
        self.key = key
        self.task = task
        self.rsc = rsc
        self.node = node
        self.interval_ms = interval_ms
        self.pseudo = pseudo
        self.optional = optional
        self.runnable = runnable
        self.reason: str | None = None
        self.kind = kind
        self.probe = False
        self.target_rc: int | None = None
        self.fence_type = "reboot"
        self.migrate_source: str | None = None
        self.migrate_target: str | None = None
        self.printed = False
        self.stage = 3  # when Pacemaker would have created it (orders the graph like crm_simulate)

    @property
    def executed(self) -> bool:
        """True when the action belongs in the graph (required and runnable)."""
        return (not self.optional) and self.runnable

    def __repr__(self) -> str:
        flags = ("o" if self.optional else "R") + ("" if self.runnable else "!")
        return f"<Action {self.id} {self.key} {self.node} {flags}>"


class TransitionGraph:
    """Executable actions and the ordering edges between them."""

    def __init__(self, actions: List[Action], edges: List[Tuple[int, int]]):
        self.actions = actions
        self.edges = edges
        self._by_id: Dict[int, Action] = {a.id: a for a in actions}

    def action(self, aid: int) -> Action:
        return self._by_id[aid]

    def inputs(self) -> Dict[int, List[int]]:
        deps: Dict[int, List[int]] = {a.id: [] for a in self.actions}
        for before, after in self.edges:
            if after in deps and before in deps and before not in deps[after]:
                deps[after].append(before)
        return deps

    def topo_order(self) -> List[Action]:
        """Actions in an order that respects every edge; ties broken by action id."""
        deps = self.inputs()
        indeg = {aid: len(v) for aid, v in deps.items()}
        out: Dict[int, List[int]] = {aid: [] for aid in deps}
        for after, befores in deps.items():
            for b in befores:
                out[b].append(after)
        heap = [aid for aid, n in indeg.items() if n == 0]
        heapq.heapify(heap)
        order: List[Action] = []
        seen: Set[int] = set()
        while heap:
            aid = heapq.heappop(heap)
            seen.add(aid)
            order.append(self._by_id[aid])
            for nxt in out[aid]:
                indeg[nxt] -= 1
                if indeg[nxt] == 0:
                    heapq.heappush(heap, nxt)
        # A cycle would leave actions behind: append them in id order so nothing is lost.
        order.extend(self._by_id[a] for a in sorted(deps) if a not in seen)
        return order

    def to_xml(self, meta: Dict[int, Dict[str, str]] | None = None) -> str:
        """A Pacemaker-like <transition_graph> document; same graph, same bytes. meta: extra CRM_meta_*
        attributes (names without the prefix) per action id, as Transition.graph_xml() passes them."""
        meta = meta or {}
        deps = self.inputs()
        lines = ['<transition_graph cluster-delay="60s" stonith-timeout="60s" '
                 'failed-stop-offset="INFINITY" failed-start-offset="INFINITY" batch-limit="0" '
                 'transition_id="0">']
        for n, a in enumerate(sorted(self.actions, key=lambda x: x.id)):
            lines.append(f'  <synapse id="{n}">')
            lines.append("    <action_set>")
            lines.append("      " + _action_xml(a, extra=meta.get(a.id)))
            lines.append("    </action_set>")
            lines.append("    <inputs>")
            for b in sorted(deps[a.id]):
                lines.append("      <trigger>")
                lines.append("        " + _action_xml(self._by_id[b], short=True))
                lines.append("      </trigger>")
            lines.append("    </inputs>")
            lines.append("  </synapse>")
        lines.append("</transition_graph>")
        return "\n".join(lines) + "\n"


def _action_xml(a: Action, short: bool = False, extra: Dict[str, str] | None = None) -> str:
    if a.kind == "crm_event":
        tag = "crm_event"
    elif a.pseudo:
        tag = "pseudo_event"
    else:
        tag = "rsc_op"
    attrs = [("id", str(a.id)), ("operation", a.task), ("operation_key", a.key)]
    if a.node and not a.pseudo:
        attrs.append(("on_node", a.node))
    text = "<" + tag + "".join(f" {k}={quoteattr(v)}" for k, v in attrs)
    if short or (a.rsc is None and a.kind != "crm_event"):
        return text + "/>"
    inner = []
    if a.rsc is not None and tag == "rsc_op":
        inner.append(f"<primitive id={quoteattr(a.rsc)}/>")
    meta = []
    if a.interval_ms:
        meta.append(("CRM_meta_interval", str(a.interval_ms)))
    if a.target_rc is not None:
        meta.append(("CRM_meta_op_target_rc", str(a.target_rc)))
    if a.kind == "crm_event" and a.task == "stonith":
        meta.append(("CRM_meta_stonith_action", a.fence_type))
    if extra:
        meta.extend((f"CRM_meta_{k}", v) for k, v in extra.items() if k not in ("interval", "op_target_rc"))
        meta.sort()
    if meta:
        inner.append("<attributes" + "".join(f" {k}={quoteattr(v)}" for k, v in meta) + "/>")
    return text + ">" + "".join(inner) + f"</{tag}>"
