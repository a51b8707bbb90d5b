"""Reading lrm history entries: op keys, expected results, and Pacemaker's call-id order."""
from __future__ import annotations

from hadaemon.core.cib.model import LrmOp
# Execution status (op-status) codes and OCF exit codes: the one vocabulary in core/lrm/results.
from hadaemon.core.lrm.results import (  # noqa: F401  (re-exported for the policy engine)
    EXEC_CANCELLED, EXEC_DONE, EXEC_ERROR, EXEC_ERROR_FATAL, EXEC_ERROR_HARD, EXEC_NOT_INSTALLED,
    EXEC_NOT_SUPPORTED, EXEC_PENDING, EXEC_TIMEOUT, OCF_DEGRADED, OCF_DEGRADED_PROMOTED,
    OCF_FAILED_PROMOTED, OCF_INSUFFICIENT_PRIV, OCF_INVALID_PARAM, OCF_NOT_CONFIGURED, OCF_NOT_INSTALLED,
    OCF_NOT_RUNNING, OCF_OK, OCF_RUNNING_PROMOTED, OCF_UNIMPLEMENTED, OCF_UNKNOWN_ERROR, effective_rc,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from typing import Dict, List, Sequence, Tuple


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
    if len(ops) < 2:
        return list(ops)
    return sorted(ops, key=lambda o: (o.call_id < 0, o.call_id))


def active_range(ops: Sequence[LrmOp]) -> Tuple[int, int]:
    """(start_index, stop_index) the way Pacemaker finds a resource's active stretch of history."""
    start = stop = -1
    implied_monitor = implied_promote = -1
    for i, o in enumerate(ops):
        if o.operation == "stop" and o.op_status == 0:
            stop = i
        elif o.operation in ("start", "migrate_from"):
            start = i
        elif implied_monitor <= stop and o.operation == "monitor":
            if o.rc_code in (0, 8):
                implied_monitor = i
        elif o.operation in ("promote", "demote"):
            implied_promote = i
    if start == -1:
        if implied_promote != -1:
            start = implied_promote
        elif implied_monitor != -1:
            start = implied_monitor
    return start, stop


def active_ops(ops: Sequence[LrmOp]) -> List[LrmOp]:
    """History entries from the last start on, or [] when the resource was stopped since."""
    start, stop = active_range(ops)
    if start < stop or start < 0:
        return []
    return list(ops[start:])


def digest(params: Dict[str, str]) -> str:
    """Pacemaker's operation digest: MD5 of the sorted <parameters> element."""
    try:  # CPython's own MD5 (what hashlib falls back to): loading OpenSSL for hashlib costs ~4 ms of start-up
        from _md5 import md5
    except ImportError:  # built with OpenSSL's hashes only (RHEL's Python)
        from hashlib import md5

    attrs = "".join(f' {k}="{_esc(v)}"' for k, v in sorted(params.items()))
    # not for security (usedforsecurity=False): RHEL in FIPS mode refuses MD5 otherwise
    return md5(f" <parameters{attrs}/>\n".encode(), usedforsecurity=False).hexdigest()


def _esc(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
