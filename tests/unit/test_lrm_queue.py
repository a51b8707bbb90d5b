"""Per-resource operation queues (core/lrm/queue.py): one op of a resource at a time, FIFO,
resources independent, waiting ops withdrawn by a cancel."""
import pytest

from hadaemon.core.lrm.queue import ResourceQueues


def test_one_at_a_time_in_order():
    q = ResourceQueues()
    assert q.submit(1, ("r", "start", 0)) is True
    assert q.submit(2, ("r", "monitor", 1000)) is False
    assert q.submit(3, ("r", "monitor", 0)) is False
    assert q.running("r") == 1 and q.depth("r") == 3
    assert q.finish(1) == 2
    assert q.running("r") == 2
    assert q.finish(2) == 3
    assert q.finish(3) is None
    assert q.running("r") is None and q.idle()


def test_resources_are_independent():
    q = ResourceQueues()
    assert q.submit(1, ("a", "start", 0)) is True
    assert q.submit(2, ("b", "start", 0)) is True
    assert q.submit(3, ("a", "stop", 0)) is False
    assert q.finish(2) is None            # b's end lets nothing of a run
    assert q.running("a") == 1
    assert q.finish(1) == 3


def test_a_new_op_does_not_overtake_waiting_ones():
    q = ResourceQueues()
    q.submit(1, ("r", "start", 0))
    q.submit(2, ("r", "monitor", 1000))
    q.finish(1)                            # 2 runs now
    assert q.submit(3, ("r", "stop", 0)) is False
    assert q.finish(2) == 3


def test_withdraw_waiting_and_granted_ops():
    q = ResourceQueues()
    q.submit(1, ("r", "start", 0))
    q.submit(2, ("r", "monitor", 0))
    q.submit(3, ("r", "monitor", 0))
    q.submit(4, ("r", "stop", 0))
    assert q.waiting(("r", "monitor", 0)) == [2, 3]
    assert q.waiting(("r", "stop", 0)) == [4] and q.waiting(("x", "stop", 0)) == []
    assert q.withdraw(3) is None           # cancelled while waiting: nothing changes for the others
    assert q.waiting(("r", "monitor", 0)) == [2]
    assert q.finish(1) == 2
    # 2 was allowed to run but gave up before it did (its task was cancelled): 4 gets its turn
    assert q.withdraw(2) == 4
    assert q.withdraw(99) is None          # unknown: ignored
    assert q.finish(4) is None and q.idle()


def test_misuse_is_refused():
    q = ResourceQueues()
    q.submit(1, ("r", "start", 0))
    q.submit(2, ("r", "stop", 0))
    with pytest.raises(ValueError):
        q.submit(1, ("r", "start", 0))
    with pytest.raises(ValueError):
        q.finish(2)                        # waiting, not running
    with pytest.raises(ValueError):
        q.finish(7)
