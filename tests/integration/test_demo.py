"""The README's demo (scripts/demo runs `python -m hadaemon.demo`): experiments 1 and 2 run to the end,
in order, with the client served at every step and nothing ever active on two connected nodes."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_both_experiments_to_the_end():
    cp = subprocess.run([sys.executable, "-m", "hadaemon.demo"], cwd=REPO, capture_output=True, text=True,
                        timeout=600)
    out = cp.stdout
    assert cp.returncode == 0, out[-4000:] + cp.stderr[-3000:]
    assert "Traceback" not in out + cp.stderr
    steps = ["experiment 1:", "webserver runs on admin1, mysql on admin2", "cutting admin1's network",
             "webserver started on admin2", "webserver failed back to admin1", "cutting admin2's network",
             "admin1 took over mysql", "MigrateResource ss webserver admin2", "webserver moved to admin2",
             "experiment 2:", "the director group started on", "halting", "the group moved to", "done"]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions) if p < 0]
    assert positions == sorted(positions), list(zip(steps, positions))
    # the client reads the site through the VIP from the node that holds it at each step
    served = re.findall(r'GET http://\S+ -> 200 "[^"]*" \(X-Served-By: (admin[12])\)', out)
    assert served[:4] == ["admin1", "admin2", "admin1", "admin2"], served
    # the observers never saw a resource on two connected nodes
    assert re.search(r"moments with a resource active on two connected nodes: 0\b", out), out[-3000:]
    assert re.search(r"moments with the VIP or ldirectord active on two nodes: 0\b", out), out[-3000:]
    # experiment 2: both real servers answer through the director VIP, before and after the move
    both = re.findall(r"requests through \S+: (.*)", out)
    assert len(both) == 2 and all("rs1" in b and "rs2" in b for b in both), both
