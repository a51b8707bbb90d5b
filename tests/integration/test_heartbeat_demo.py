"""The README's demo (scripts/demo runs `python -m hadaemon.demo`): it runs to the end and tells the story."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_demo_forms_membership_declares_the_cut_node_dead_and_sees_it_come_back():
    cp = subprocess.run([sys.executable, "-m", "hadaemon.demo"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
    out = cp.stdout
    assert cp.returncode == 0, out[-3000:] + cp.stderr[-3000:]
    assert "Traceback" not in out + cp.stderr
    steps = ["membership formed on every node", "cutting node3 off", "bringing node3 back", "node3 rejoined", "hactl status on node1:",
             "cleaning up", "done"]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), list(zip(steps, positions))
    assert positions == sorted(positions), list(zip(steps, positions))
    cut = out[positions[1]:positions[2]]  # between the cut and the link coming back: both observers
    assert "node1: node3 is dead" in cut and "node2: node3 is dead" in cut, cut
    # detection times printed for both observers, within deadtime 1 s + 2 x keepalive 200 ms
    dead_ms = [int(m) for m in re.findall(r"node[12]: node3 is dead \((\d+) ms after the cut\)", out)]
    assert len(dead_ms) == 2 and all(ms <= 1400 for ms in dead_ms), dead_ms
    # the final tables: all three up again
    tail = out[out.find("node3 rejoined"):]
    assert re.search(r"members node1 node2 node3", tail)
