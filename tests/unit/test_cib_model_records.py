"""The CIB model's value classes (core/cib/model.Record, hand-written instead of frozen dataclasses for
hactl simulate's start-up) keep what the dataclasses gave: equality by class and compared fields, a hash
that agrees with it, replace() refusing an unknown field, and no change after construction (which Record
does not enforce at run time: here the whole scheduler runs with a guard that does)."""
from __future__ import annotations

import pytest

from hadaemon.core.cib import parse_cib
from hadaemon.core.cib.model import Expression, Op, Record, Ticket
from hadaemon.core.policy import schedule
from tests.unit.test_policy_graph_orders import CASES, NOW


def test_equality_hash_and_repr_follow_the_compared_fields():
    a = Expression("e1", "#uname", "eq", "node1", None, 3)
    b = Expression("e1", "#uname", "eq", "node1", None, 3)
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != b.replace(line=4) and a != ("e1", "#uname", "eq", "node1", None, 3)
    assert repr(a) == "Expression(id='e1', attribute='#uname', operation='eq', value='node1', type=None, line=3)"
    # the same field values in another class (even a subclass) are not equal, as with dataclasses

    class SubTicket(Ticket):
        __slots__ = ()

    assert Ticket("t", True, False) != SubTicket("t", True, False)
    assert Ticket("t", True, False) == Ticket("t", True, False)


def test_cib_ignores_its_index_and_option_sets():
    cib = parse_cib(CASES["restart"], "test.xml")
    other = cib.replace(_index={}, option_sets=())
    assert other == cib
    assert "_index" not in repr(cib) and "option_sets" not in repr(cib)
    with pytest.raises(TypeError):  # options is a mapping, as with the frozen dataclass: not hashable
        hash(cib)


def test_replace_makes_a_changed_copy_and_refuses_an_unknown_field():
    op = Op("rsc1-monitor", "monitor", 10000, None, "20s", None, True, (), (), 7)
    changed = op.replace(interval_ms=op.interval_ms + 1)
    assert changed.interval_ms == op.interval_ms + 1 and changed.name == op.name and changed != op
    with pytest.raises(TypeError, match="no field 'intervall'"):
        op.replace(intervall=5)


def _set_once(self, name, value):
    try:
        getattr(self, name)
    except AttributeError:  # a slot not set yet: its __init__
        object.__setattr__(self, name, value)
        return
    raise AttributeError(f"{type(self).__name__}.{name} changed after construction")


@pytest.mark.parametrize("name", sorted(CASES))
def test_scheduling_changes_no_record(name, monkeypatch):
    monkeypatch.setattr(Record, "__setattr__", _set_once)
    t = schedule(parse_cib(CASES[name], "test.xml"), NOW)
    assert t.graph_xml() and t.status_text(revised=True) is not None
    assert t.summary is not None and t.executed_lines() is not None and t.score_lines() is not None


def test_a_simulation_with_injections_changes_no_record(tmp_path, monkeypatch, capsys):
    from hadaemon.cli.hactl import main

    monkeypatch.setattr(Record, "__setattr__", _set_once)
    f = tmp_path / "cib.xml"
    f.write_text(CASES["restart"])
    rc = main(["simulate", str(f), "--now", str(NOW), "-f", "node2", "-i", "rsc2_monitor_0@node2=0",
               "-F", "rsc1_start_0@node1=1", "-O", str(tmp_path / "out.xml")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "Revised Cluster Status:" in out.out
