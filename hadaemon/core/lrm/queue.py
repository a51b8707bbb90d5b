"""Per-resource operation queues: actions on one resource run one at a time, in the order they
were submitted; different resources run in parallel. Recurring runs and one-off ops share the
resource's queue, so a monitor never collides with a start or stop in flight.

Pure bookkeeping: the executor asks whether an op may run, and learns which op may run next when
one finishes or a waiting one is withdrawn (cancelled).
"""
from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Tuple

Key = Tuple[str, str, int]   # (resource, action, interval_ms)


class ResourceQueues:
    def __init__(self) -> None:
        self._waiting: Dict[str, Deque[int]] = {}
        self._running: Dict[str, int] = {}
        self._ops: Dict[int, Tuple[str, Key]] = {}

    def submit(self, op_id: int, key: Key) -> bool:
        """Queue an op; True when it may run at once (nothing of its resource runs or waits)."""
        if op_id in self._ops:
            raise ValueError(f"op {op_id} submitted twice")
        rsc = key[0]
        self._ops[op_id] = (rsc, key)
        if rsc not in self._running and not self._waiting.get(rsc):
            self._running[rsc] = op_id
            return True
        self._waiting.setdefault(rsc, deque()).append(op_id)
        return False

    def _promote(self, rsc: str) -> int | None:
        q = self._waiting.get(rsc)
        if not q:
            self._waiting.pop(rsc, None)
            return None
        nxt = q.popleft()
        if not q:
            del self._waiting[rsc]
        self._running[rsc] = nxt
        return nxt

    def finish(self, op_id: int) -> int | None:
        """The running op ended (or was given up): the op of that resource that may run now, if any."""
        rsc, _ = self._ops.pop(op_id, (None, None))
        if rsc is None or self._running.get(rsc) != op_id:
            raise ValueError(f"op {op_id} is not running")
        del self._running[rsc]
        return self._promote(rsc)

    def withdraw(self, op_id: int) -> int | None:
        """Remove an op that has not finished (cancelled while waiting, or given up right after it
        was allowed to run); the op that may run now because of it, if any."""
        entry = self._ops.get(op_id)
        if entry is None:
            return None
        rsc, _ = entry
        if self._running.get(rsc) == op_id:
            return self.finish(op_id)
        del self._ops[op_id]
        q = self._waiting.get(rsc)
        if q is not None and op_id in q:
            q.remove(op_id)
            if not q:
                del self._waiting[rsc]
        return None

    def waiting(self, key: Key) -> List[int]:
        """Ops with this key still waiting for their turn (oldest first)."""
        q = self._waiting.get(key[0], ())
        return [i for i in q if self._ops[i][1] == key]

    def running(self, rsc: str) -> int | None:
        return self._running.get(rsc)

    def depth(self, rsc: str) -> int:
        """How many ops of the resource are queued, the running one included."""
        return len(self._waiting.get(rsc, ())) + (1 if rsc in self._running else 0)

    def idle(self) -> bool:
        return not self._ops
