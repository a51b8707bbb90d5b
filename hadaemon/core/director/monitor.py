"""monitorfile=: ldirectord's per-check log lines for the virtual services that name one (pure)."""

from __future__ import annotations

import re
from typing import Dict, Iterable, List

from hadaemon.core.director.checks import Plan

_SPECIAL = re.compile(r"[%|\r\n]")


def has_monitorfile(plan: Plan) -> bool:
    """Whether any virtual service of the plan logs its checks (memoized: the hot path asks often)."""
    got = plan.memo.get("monitorfile")
    if got is None:
        got = plan.memo["monitorfile"] = any(v.monitorfile for v in plan.config.virtuals)
    return bool(got)


def monitor_lines(plan: Plan, results: Iterable, when: str, pid: int) -> Dict[str, List[str]]:
    """{monitorfile: lines} for a batch of check results, as ldirectord's service_set writes them:
    `[localtime] [pid] REAL-ID [up|down] message`, the real id with its colons as spaces, the message
    with `%`, `|` and newlines URI-escaped. A result counts for every virtual sharing the real's id."""
    out: Dict[str, List[str]] = {}
    for res in results:
        ident = plan.identity.get(res.pair)
        if ident is None:
            continue
        real = re.sub(r":+", " ", ident).replace("\\", "")
        msg = _SPECIAL.sub(lambda m: f"%{ord(m.group(0)):02x}", res.detail or "-")
        state = "up" if res.ok else "down"
        for pair in plan.groups[ident]:
            v = plan.targets[pair].virtual
            if v.monitorfile:
                out.setdefault(v.monitorfile, []).append(f"[{when}] [{pid}] {real} [{state}] {msg}\n")
    return out
