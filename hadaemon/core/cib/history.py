"""Reading lrm history entries: op keys, expected results, and Pacemaker's call-id order."""
from __future__ import annotations

from typing import List, Sequence

from hadaemon.core.cib.model import LrmOp

# Execution status (op-status) codes, as the executor records them.
EXEC_PENDING, EXEC_DONE, EXEC_CANCELLED, EXEC_TIMEOUT, EXEC_NOT_SUPPORTED, EXEC_ERROR = -1, 0, 1, 2, 3, 4
EXEC_ERROR_HARD, EXEC_ERROR_FATAL, EXEC_NOT_INSTALLED = 5, 6, 7
# OCF exit codes.
OCF_OK, OCF_UNKNOWN_ERROR, OCF_INVALID_PARAM, OCF_UNIMPLEMENTED = 0, 1, 2, 3
OCF_INSUFFICIENT_PRIV, OCF_NOT_INSTALLED, OCF_NOT_CONFIGURED, OCF_NOT_RUNNING = 4, 5, 6, 7
OCF_RUNNING_PROMOTED, OCF_FAILED_PROMOTED, OCF_DEGRADED, OCF_DEGRADED_PROMOTED = 8, 9, 190, 191


def target_rc(op: LrmOp) -> int:
    """The result the cluster expected, from the transition key (-1 when unknown)."""
    if not op.transition_key:
        return -1
    parts = op.transition_key.split(":")
    if len(parts) < 4:
        return -1
    try:
        return int(parts[2])
    except ValueError:
        return -1


def op_key(rsc_id: str, task: str, interval_ms: int) -> str:
    return f"{rsc_id}_{task}_{interval_ms}"


def is_probe(op: LrmOp) -> bool:
    return op.operation == "monitor" and op.interval_ms == 0


def sort_ops(ops: Sequence[LrmOp]) -> List[LrmOp]:
    """History in execution order: by call-id, pending (-1) entries last."""
    return sorted(ops, key=lambda o: (o.call_id < 0, o.call_id))


def effective_rc(rc: int) -> int:
    """Degraded results count as their successful counterparts."""
    if rc == OCF_DEGRADED:
        return OCF_OK
    if rc == OCF_DEGRADED_PROMOTED:
        return OCF_RUNNING_PROMOTED
    return rc


def last_start_index(ops: Sequence[LrmOp]) -> int | None:
    """Index of the last successful start-like entry (start, migrate_from, promote)."""
    found = None
    for i, o in enumerate(ops):
        if o.operation in ("start", "migrate_from") and o.rc_code == 0 and o.op_status == 0:
            found = i
        elif o.operation == "stop" and o.rc_code == 0 and o.op_status == 0:
            found = None
    return found
