"""The peers' last believed generations, kept in the state dir (`peers`: "node generation" per line).

A restarted ha-heartbeat reads them so that it still refuses its peers' older generations (issue 13: old
packets must not bring a dead node back); HeartbeatNode writes them atomically when one changes.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Mapping

from hadaemon.io.files import write_atomic

__all__ = ["PEERS_FILE", "load_peer_generations", "save_peer_generations"]

log = logging.getLogger("ha-heartbeat")

PEERS_FILE = "peers"   # in the state dir: "node generation" per line, the peers' last believed generations


def load_peer_generations(state_dir: str, nodes) -> Dict[str, int]:
    """The peers' generations persisted in state_dir/peers (configured nodes only; bad lines skipped)."""
    path = os.path.join(state_dir, PEERS_FILE)
    known: Dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read(1 << 20).splitlines()
    except FileNotFoundError:
        return known
    except OSError as exc:
        log.warning("%s: unreadable (%s); peers' generations start unknown", path, exc.strerror)
        return known
    wanted = set(nodes)
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) == 2 and parts[0] in wanted and parts[1].isdigit() and int(parts[1]) < 1 << 64:
            known[parts[0]] = int(parts[1])
        elif parts:
            log.warning("%s:%d: ignored (expected 'node generation' for a node of ha.cf)", path, number)
    return known


def save_peer_generations(state_dir: str, known: Mapping[str, int], node: str = "") -> None:
    """Write every known peer generation to state_dir/peers (write, fsync, rename); a failure is logged
    (`node`: the peer whose change is being saved, for the log's NODE= field), never raised."""
    text = "".join(f"{n} {g}\n" for n, g in sorted(known.items()))
    try:
        write_atomic(os.path.join(state_dir, PEERS_FILE), text.encode(), 0o644)
    except OSError as exc:
        log.warning("%s: cannot persist peer generations: %s", state_dir, exc.strerror,
                    extra={"NODE": node, "EVENT": "persist-failed"})
