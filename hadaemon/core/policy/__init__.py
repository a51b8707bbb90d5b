"""The policy engine: schedule(cib, now) -> Transition, a pure Pacemaker-compatible scheduler."""
from __future__ import annotations

from hadaemon.core.cib.model import Cib
from hadaemon.core.cib.scores import score_text
from hadaemon.core.cib.xmltree import paused_gc
from hadaemon.core.policy.graph import Action, TransitionGraph
from hadaemon.core.policy import actions as A
from hadaemon.core.policy import digests as D
from hadaemon.core.policy import placement as P
from hadaemon.core.policy import summary as S
from hadaemon.core.policy.working import WorkingSet
from hadaemon.core.policy.unpack import unpack

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Tuple

__all__ = ["Change", "Transition", "schedule"]

Change = S.Change


class Transition:
    """The outcome of one scheduler run: scores, placement, summary and the transition graph."""

    def __init__(self, ws: WorkingSet, planner: A.Planner, fenced: List[Action]):
        self._ws = ws
        self.scores: List[Tuple[str, str, str, int]] = list(ws.scores)
        self.placement: Dict[str, str | None] = {
            r.id: (r.assigned.uname if r.assigned is not None else None) for r in ws.prims.values()}
        self.current: Dict[str, Tuple[str, ...]] = {
            r.id: tuple(n.uname for n in r.running_on) for r in ws.prims.values()}
        self.changes: List[S.Change] = S.changes(ws, planner, fenced)
        self.summary: List[str] = S.summary_lines(self.changes, ws.fence_action)
        order = S.executed(planner)
        self._order = order
        edges = []
        ids = {a.id for a in order}
        for first, then, flags in planner.edges:
            if first.id in ids and then.id in ids and planner.in_graph(first, then, flags):
                edges.append((first.id, then.id))
        self.graph = TransitionGraph(sorted(order, key=lambda a: a.id), sorted(set(edges)))
        self.fenced = [a.node for a in fenced if a.fence_type != "on"]  # unfencing leaves the node up
        # required stops on unclean nodes that cannot run (not fenceable): clone notifications still list
        # them as stopping (collect_resource_data), so hadaemon.core.crm.clonemeta adds them
        unclean = {n.uname for n in ws.nodes if n.unclean}
        self.unclean_stops: List[Tuple[str, str]] = [
            (a.rsc, a.node) for a in planner.actions
            if a.task == "stop" and a.rsc is not None and a.node in unclean and not a.optional and not a.runnable]
        self.revised: Dict[str, List[str]] = {k: list(v) for k, v in self.current.items()}
        for a in order:
            if a.rsc is None or a.rsc not in self.revised:
                continue
            nodes = self.revised[a.rsc]
            if a.task == "stop" and a.node in nodes:
                nodes.remove(a.node)
            elif a.task in ("start", "migrate_from") and a.node not in nodes:
                nodes.append(a.node)
            elif a.task == "migrate_to" and a.node in nodes:
                nodes.remove(a.node)

    def status_text(self, revised: bool = False) -> str:
        placement = self.revised if revised else {k: list(v) for k, v in self.current.items()}
        touched = {a.rsc for a in self._order if a.rsc is not None and a.task in ("stop", "start")}
        return "\n".join(S.status_lines(self._ws, placement, self.fenced, revised, touched))

    def counts_line(self) -> str | None:
        """"N of M resource instances DISABLED and K BLOCKED ..." when some are (else None)."""
        return S.counts_line(self._ws)

    def executed_lines(self) -> List[str]:
        return S.executed_lines(self._ws, self._order)

    def graph_xml(self) -> str:
        """The graph as --save-graph writes it: with the CRM_meta_* attributes Pacemaker's graph carries
        for clone instances (clone, clone_max, ...), notifications (notify_type, notify_operation,
        notify_key_*, and the notify_*_resource / _uname lists on the notify, start, stop, promote and
        demote actions of a notify=true clone) and migrations (migrate_source/target), computed by
        hadaemon.core.crm.clonemeta, the same code the CRM executes the graph with."""
        from hadaemon.core.crm.clonemeta import action_meta
        return self.graph.to_xml(action_meta(self))

    def score_lines(self) -> List[str]:
        return [f"{stage}: {rsc} allocation score on {node}: {score_text(score)}"
                for stage, rsc, node, score in self.scores]


def schedule(cib: Cib, now: int | None = None) -> Transition:
    """Run the scheduler pipeline on a CIB; same input, same output."""
    with paused_gc():
        return _schedule(cib, now)


def _schedule(cib: Cib, now: int | None) -> Transition:
    ws = unpack(cib, now)
    D.check_definitions(ws)
    P.apply_locations(ws)
    P.apply_tickets(ws)
    P.apply_node_health(ws)
    P.apply_shutdown_locks(ws)
    P.apply_stickiness(ws)
    P.apply_fail_limits(ws)
    P.apply_exclusive_discovery(ws)
    P.build_colocations(ws)
    P.assign_all(ws)
    planner = A.plan(ws)
    fenced = [a for a in planner.actions if a.kind == "crm_event" and a.task == "stonith"]
    return Transition(ws, planner, fenced)
