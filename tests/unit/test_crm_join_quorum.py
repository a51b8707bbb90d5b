"""Join (the newest CIB wins as in Pacemaker) and quorum (majority, two_node, wait_for_all)."""
from hadaemon.core.crm import join as J
from hadaemon.core.crm import quorum as Q


def _join(expected=("dc", "b", "c")):
    return J.new_join("dc", 1, expected, 0.0, 5.0)


def _report(j, node, version, now=0.1, round_=1):
    return J.step(j, J.Report(node, round_, J.JoinReport(version)), now)


def test_newest_cib_wins_by_admin_epoch_then_epoch_then_num_updates():
    j = _join()
    j, eff = _report(j, "dc", (0, 5, 9))
    assert eff == []
    j, eff = _report(j, "b", (0, 6, 0))
    j, eff = _report(j, "c", (1, 0, 0))
    assert eff == [J.Finalize("c", (1, 0, 0), ("b", "c", "dc"), ())]
    j = _join()
    for node, v in (("dc", (0, 5, 9)), ("b", (0, 5, 10)), ("c", (0, 4, 99))):
        j, eff = _report(j, node, v)
    assert eff[0].cib_source == "b"


def test_a_tie_keeps_the_dc_copy():
    j = _join(("dc", "b"))
    j, _ = _report(j, "b", (0, 3, 3))
    j, eff = _report(j, "dc", (0, 3, 3))
    assert eff[0].cib_source == "dc"


def test_timeout_finalizes_without_the_silent_node_and_reports_of_other_rounds_are_ignored():
    j = _join()
    j, _ = _report(j, "dc", (0, 1, 0))
    j, eff = _report(j, "b", (0, 9, 0), round_=7)
    assert eff == [] and "b" not in j.reports
    j, eff = J.step(j, J.Tick(), 4.0)
    assert eff == []
    j, eff = J.step(j, J.Tick(), 5.0)
    assert eff == [J.Finalize("dc", (0, 1, 0), ("dc",), ("b", "c"))]
    j2, eff = _report(j, "c", (0, 9, 0), now=6.0)
    assert eff == [] and j2.done


def test_a_lost_node_is_not_waited_for():
    j = _join()
    j, _ = _report(j, "dc", (0, 1, 0))
    j, _ = _report(j, "b", (0, 1, 0))
    j, eff = J.step(j, J.NodeLost("c"), 0.2)
    assert eff == [J.Finalize("dc", (0, 1, 0), ("b", "dc"), ())]


def test_quorum_is_a_majority_of_configured_nodes():
    q = Q.new_quorum(["a", "b", "c"])
    assert not q.two_node
    assert Q.step(q, ["a", "b"]).has_quorum
    assert not Q.step(q, ["a"]).has_quorum
    assert Q.step(q, ["a", "b", "c"]).has_quorum
    assert not Q.step(q, ["a", "x", "y"]).has_quorum  # unknown nodes do not count
    q5 = Q.new_quorum(["a", "b", "c", "d"])
    assert not Q.step(q5, ["a", "b"]).has_quorum


def test_two_node_cluster_waits_for_all_at_first_start_then_survives_one_loss():
    q = Q.new_quorum(["a", "b"])
    assert q.two_node and q.wait_for_all
    q = Q.step(q, ["a"])
    assert not q.has_quorum and "wait_for_all" in Q.describe(q)
    q = Q.step(q, ["a", "b"])
    assert q.has_quorum
    q = Q.step(q, ["a"])
    assert q.has_quorum
    q = Q.step(q, [])
    assert not q.has_quorum


def test_two_node_without_wait_for_all():
    q = Q.step(Q.new_quorum(["a", "b"], wait_for_all=False), ["a"])
    assert q.has_quorum
