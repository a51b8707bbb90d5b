"""The observer counts a resource on two nodes only when both held it at one instant: the nodes are read
one after the other, so a handoff between two reads shows both (hadaemon.testing.observer)."""
from __future__ import annotations

from pathlib import Path

from hadaemon.testing.observer import NodeView, Observer


def _views(*names):
    return {n: NodeView(n, 1, Path("/nonexistent")) for n in names}


def test_a_handoff_between_two_reads_is_not_an_overlap():
    # the first reads (by _sample) found both; admin1 lost the address in between: its second read
    # (by _confirm) says so
    reads = {"admin1": [False], "admin2": [True]}
    probe = lambda v: reads[v.name].pop(0)    # noqa: E731
    assert Observer._confirm(("admin1", "admin2"), _views("admin1", "admin2"), probe) == ("admin2",)


def test_a_real_overlap_is_confirmed():
    reads = {"admin1": [True], "admin2": [True]}
    probe = lambda v: reads[v.name].pop(0)    # noqa: E731
    assert Observer._confirm(("admin1", "admin2"), _views("admin1", "admin2"), probe) == ("admin1", "admin2")


def test_three_nodes_two_of_them_together():
    reads = {"n1": [True], "n2": [False], "n3": [True]}
    probe = lambda v: reads[v.name].pop(0)    # noqa: E731
    assert Observer._confirm(("n1", "n2", "n3"), _views("n1", "n2", "n3"), probe) == ("n1", "n3")
