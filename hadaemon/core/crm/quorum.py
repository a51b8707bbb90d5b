"""Quorum: a majority of the configured nodes; two-node clusters like corosync's two_node + wait_for_all.

`step(state, members) -> state`; `state.has_quorum` is the answer. With exactly two configured nodes a
single member keeps quorum (two_node), but only once all nodes have been seen together since this
daemon started (wait_for_all): a node booting alone does not start resources on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Tuple

__all__ = ["Quorum", "new_quorum", "step", "describe"]


@dataclass(frozen=True)
class Quorum:
    configured: Tuple[str, ...]
    two_node: bool
    wait_for_all: bool
    seen_all: bool = False
    members: Tuple[str, ...] = ()
    has_quorum: bool = False


def new_quorum(configured: Iterable[str], two_node: bool | None = None,
               wait_for_all: bool | None = None) -> Quorum:
    nodes = tuple(sorted(set(configured)))
    tn = len(nodes) == 2 if two_node is None else two_node
    wfa = tn if wait_for_all is None else wait_for_all
    return Quorum(nodes, tn, wfa)


def step(state: Quorum, members: Iterable[str]) -> Quorum:
    """The quorum after a membership change (members: the current partition, local node included)."""
    present = tuple(sorted(set(members)))
    counted = [m for m in present if m in state.configured] if state.configured else list(present)
    total = len(state.configured) or len(present)
    seen_all = state.seen_all or (len(counted) >= total)
    if state.wait_for_all and not seen_all:
        has = False
    elif state.two_node and total == 2:
        has = len(counted) >= 1
    else:
        has = len(counted) * 2 > total
    return replace(state, members=present, seen_all=seen_all, has_quorum=has)


def describe(state: Quorum) -> str:
    total = len(state.configured) or len(state.members)
    n = len([m for m in state.members if not state.configured or m in state.configured])
    why = ""
    if state.wait_for_all and not state.seen_all:
        why = ", waiting for all nodes (wait_for_all)"
    return f"{'quorate' if state.has_quorum else 'no quorum'}: {n} of {total} nodes{why}"
