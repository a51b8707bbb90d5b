"""The nft backend's numgen value allocation (io/lvs/nft_slots.py): after any sequence of weight changes the
intervals cover 0..total-1 exactly, each owner has its weight, and the recorded element changes turn the
previous map into the new one; a change moves a bounded number of intervals."""
from hypothesis import given, settings
from hypothesis import strategies as st

from hadaemon.io.lvs.nft_slots import Slots


def check(slots: Slots, weights: dict) -> None:
    covered = []
    for lo, hi, _owner in slots.elements():
        assert lo <= hi
        covered.extend(range(lo, hi + 1))
    assert sorted(covered) == list(range(slots.total))
    assert slots.total == sum(weights.values())
    for owner, w in weights.items():
        assert slots.weight(owner) == w


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6)), max_size=80))
def test_any_sequence_of_weights_keeps_the_map_exact(changes):
    slots, weights = Slots(), {}
    applied = set()                                   # the map as the kernel would hold it
    for batch_start in range(0, len(changes), 5):     # a few changes per apply, as the backend batches them
        for owner, w in changes[batch_start:batch_start + 5]:
            slots.set_weight(owner, w)
            weights[owner] = w
        flushed, deleted, added = slots.take_changes()
        if flushed:
            applied = set()
        for e in deleted:
            assert e in applied, e                    # only elements that are there are deleted
            applied.discard(e)
        for e in added:
            assert e not in applied
            applied.add(e)
        assert applied == set(slots.elements())
        check(slots, {o: w for o, w in weights.items()})


def test_a_flapping_real_changes_a_few_elements_whatever_the_size():
    slots = Slots()
    for owner in range(5000):
        slots.set_weight(owner, 1)
    slots.take_changes()
    for step in range(200):
        owner = (step * 7919) % 5000
        slots.set_weight(owner, 0 if step % 2 == 0 else 1)
        flushed, deleted, added = slots.take_changes()
        assert not flushed and len(deleted) + len(added) <= 4, (deleted, added)
    assert len(slots.at) <= 2 * len(slots.owned) + 16


def test_fragmentation_is_bounded_by_compaction():
    slots = Slots()
    for owner in range(50):
        slots.set_weight(owner, 1 + owner % 5)
    for step in range(2000):
        owner = (step * 31) % 50
        slots.set_weight(owner, (step * 13) % 7)
        assert len(slots.at) <= 2 * len(slots.owned) + 16
    check(slots, {o: slots.weight(o) for o in range(50)})
