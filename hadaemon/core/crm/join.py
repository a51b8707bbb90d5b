"""The DC's join: collect every voter's CIB version and LRM history, pick the newest CIB.

`step(join, event, now) -> (join, effects)`. The DC offers a join to each voter of the election; each
answers with its CIB version (admin_epoch, epoch, num_updates) and the operation history its LRM knows.
When every expected node answered (or the join timeout passed: late nodes join in the next round), the
newest CIB wins as in Pacemaker (highest admin_epoch, then epoch, then num_updates; on a tie the DC's
own copy), and `Finalize` tells the DC which node's CIB to take and whose histories it has.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Tuple, Union

from hadaemon.core.crm.cibdoc import Version

__all__ = ["Join", "Report", "JoinReport", "NodeLost", "Tick", "Finalize", "new_join", "step", "newest"]


@dataclass(frozen=True)
class JoinReport:
    version: Version
    lrm: str = ""          # <lrm_resources> XML of what the node's LRM knows ("" = nothing)


@dataclass(frozen=True)
class Join:
    dc: str
    round: int
    expected: Tuple[str, ...]
    deadline: float
    reports: Dict[str, JoinReport] = field(default_factory=dict)
    done: bool = False


@dataclass(frozen=True)
class Report:
    node: str
    round: int
    report: JoinReport


@dataclass(frozen=True)
class NodeLost:
    node: str


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class Finalize:
    cib_source: str                 # the node whose CIB is the newest
    version: Version
    joined: Tuple[str, ...]         # nodes that answered (members from now on)
    missing: Tuple[str, ...]        # expected nodes that did not answer


def new_join(dc: str, round_: int, expected, now: float, timeout: float) -> Join:
    return Join(dc, round_, tuple(sorted(set(expected) | {dc})), now + timeout)


def newest(reports: Dict[str, JoinReport], prefer: str) -> Tuple[str, Version]:
    """The node with the newest CIB version; prefer wins ties."""
    best = prefer if prefer in reports else min(reports)
    for node in sorted(reports):
        if reports[node].version > reports[best].version:
            best = node
    return best, reports[best].version


def _finish(join: Join, now: float) -> Tuple[Join, List[Finalize]]:
    if join.done:
        return join, []
    everyone = all(n in join.reports for n in join.expected)
    if not everyone and now < join.deadline:
        return join, []
    if join.dc not in join.reports:
        return join, []  # the DC's own report comes first, synchronously
    src, version = newest(join.reports, join.dc)
    joined = tuple(sorted(join.reports))
    missing = tuple(n for n in join.expected if n not in join.reports)
    return replace(join, done=True), [Finalize(src, version, joined, missing)]


Event = Union[Report, NodeLost, Tick]


def step(join: Join, event: Event, now: float) -> Tuple[Join, List[Finalize]]:
    if join.done:
        return join, []
    if isinstance(event, Report):
        if event.round != join.round or event.node not in join.expected:
            return join, []
        reports = dict(join.reports)
        reports[event.node] = event.report
        return _finish(replace(join, reports=reports), now)
    if isinstance(event, NodeLost):
        if event.node not in join.expected:
            return join, []
        expected = tuple(n for n in join.expected if n != event.node)
        reports = {k: v for k, v in join.reports.items() if k != event.node}
        return _finish(replace(join, expected=expected, reports=reports), now)
    if isinstance(event, Tick):
        return _finish(join, now)
    raise TypeError(f"unknown join event {event!r}")
