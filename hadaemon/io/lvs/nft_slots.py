"""Which numgen values (0..total-1) go to which real server, changed in place (pure: no I/O).

The nft backend spreads new connections with `numgen inc mod TOTAL vmap @map`: a real of weight W owns W
of the TOTAL values, as intervals of the map. When a weight changes only a few intervals change: a
weight that grows takes new values at the end; a weight that shrinks frees some of its values and the
holes below the new total are filled by moving the values at the top (so the values stay 0..total-1).
Every change is recorded as map elements deleted and added, which the backend sends as
`delete element` / `add element` in one `nft -f` transaction, instead of rewriting the table.
"""
from __future__ import annotations

from typing import Dict, List, Set, Tuple

Element = Tuple[int, int, int]        # (first value, last value, owner id)


class Slots:
    """The intervals of one service's map. Invariant: the intervals cover 0..total-1 exactly."""

    def __init__(self) -> None:
        self.total = 0
        self.at: Dict[int, Tuple[int, int]] = {}      # first value -> (last value, owner)
        self.end: Dict[int, int] = {}                 # last value -> first value
        self.owned: Dict[int, Set[int]] = {}          # owner -> first values of its intervals
        self._added: Set[Element] = set()
        self._deleted: Set[Element] = set()
        self.flushed = False                          # compacted: the map is to be flushed and refilled

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _add(self, lo: int, hi: int, owner: int) -> None:
        self.at[lo] = (hi, owner)
        self.end[hi] = lo
        self.owned.setdefault(owner, set()).add(lo)
        e = (lo, hi, owner)
        if e in self._deleted:
            self._deleted.discard(e)
        else:
            self._added.add(e)

    def _remove(self, lo: int) -> Tuple[int, int]:
        hi, owner = self.at.pop(lo)
        del self.end[hi]
        mine = self.owned[owner]
        mine.discard(lo)
        if not mine:
            del self.owned[owner]
        e = (lo, hi, owner)
        if e in self._added:
            self._added.discard(e)
        else:
            self._deleted.add(e)
        return hi, owner

    def weight(self, owner: int) -> int:
        return sum(self.at[lo][0] - lo + 1 for lo in self.owned.get(owner, ()))

    def elements(self) -> List[Element]:
        return sorted((lo, hi, owner) for lo, (hi, owner) in self.at.items())

    def take_changes(self) -> Tuple[bool, List[Element], List[Element]]:
        """(flush the map first, elements to delete, elements to add) since the last call."""
        out = (self.flushed, sorted(self._deleted), sorted(self._added))
        self._deleted, self._added, self.flushed = set(), set(), False
        return out

    # -- changes -------------------------------------------------------------------------------------
    def set_weight(self, owner: int, weight: int) -> None:
        """Give `owner` exactly `weight` values (0: none), moving as few intervals as possible."""
        cur = self.weight(owner)
        if weight > cur:
            n, lo = weight - cur, self.total
            prev = self.end.get(self.total - 1)
            if prev is not None and self.at[prev][1] == owner:     # extend its interval at the top
                self._remove(prev)
                lo = prev
            self._add(lo, self.total + n - 1, owner)
            self.total += n
        elif weight < cur:
            self._shrink(owner, cur - weight)
        if len(self.at) > 2 * len(self.owned) + 16:
            self.compact()

    def _shrink(self, owner: int, n: int) -> None:
        new_total = self.total - n
        holes: List[Tuple[int, int]] = []
        for lo in sorted(self.owned[owner], reverse=True):          # free its highest values first
            if n == 0:
                break
            hi, _ = self._remove(lo)
            take = min(n, hi - lo + 1)
            if take < hi - lo + 1:
                self._add(lo, hi - take, owner)
            holes.append((hi - take + 1, hi))
            n -= take
        hole_at_end = {b: a for a, b in holes}
        fill = sorted((a, min(b, new_total - 1)) for a, b in holes if a < new_total)
        tail = self.total - 1
        for c, d in fill:                      # move the values at the top into the holes below new_total
            while c <= d:
                while tail in hole_at_end:
                    tail = hole_at_end[tail] - 1
                lo = self.end[tail]
                _, other = self._remove(lo)
                m = min(tail - max(lo, new_total) + 1, d - c + 1)
                if lo <= tail - m:
                    self._add(lo, tail - m, other)
                self._add(c, c + m - 1, other)
                c += m
                tail -= m
        self.total = new_total

    def compact(self) -> None:
        """One interval per owner again (after many moves), in owner order; the map is refilled whole."""
        weights = sorted((owner, self.weight(owner)) for owner in self.owned)
        self.at, self.end, self.owned = {}, {}, {}
        self._added, self._deleted = set(), set()
        total = 0
        for owner, w in weights:
            self._add(total, total + w - 1, owner)
            total += w
        self.total = total
        self.flushed = True
