"""Differential test: `hactl simulate` against Pacemaker 2.1.5's crm_simulate on random generated CIBs.

Both read the same generated CIB (hadaemon.testing.cibgen); their "Transition Summary" lines are compared
as multisets after the normalisation of ../shared/tools/scheduler-compare. Run directly to see the diffs:

    .venv/bin/python tests/integration/test_scheduler_differential.py [FIRST_SEED [COUNT]]
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

if __name__ == "__main__":  # run as a script: the repository's package, not an installed one
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hadaemon.testing.cibgen import generate_bench_cib, random_cib  # noqa: E402
from tests.unit.crmsim import summary_block  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMPARE_TOOL = REPO.parent / "shared" / "tools" / "scheduler-compare"
SEEDS = range(1000, 1060)
# Regression guard: how many of the SEEDS must match crm_simulate. Raise it as the scheduler improves.
MATCH_FLOOR = 60
TIMEOUT = 60


def _normalise_here(line: str) -> str:
    """The same normalisation as scheduler-compare (used when ../shared is absent)."""
    line = line.strip().lstrip("*").strip()
    line = re.sub(r"\s+due to .*$", "", line)
    line = re.sub(r"\s+'[^']*'\s*$", "", line)
    line = re.sub(r"\s+", " ", line)
    line = re.sub(r"\(\s*", "(", line)
    line = re.sub(r"\s*\)", ")", line)
    return re.sub(r"\s*->\s*", "->", line)


def _load_compare_tool():
    if not COMPARE_TOOL.is_file():
        return None
    loader = importlib.machinery.SourceFileLoader("scheduler_compare", str(COMPARE_TOOL))
    spec = importlib.util.spec_from_loader("scheduler_compare", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


_tool = _load_compare_tool()
normalise = _tool.normalise if _tool else _normalise_here


def summary_lines(text: str):
    """Counter of normalised summary lines, or None when no "Transition Summary:" was printed."""
    block = summary_block(text)
    return None if block is None else Counter(normalise(raw) for raw in block)


def hactl_available() -> bool:
    return importlib.util.find_spec("hadaemon.cli.simulate") is not None


def hactl_command():
    exe = REPO / ".venv" / "bin" / "hactl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hadaemon.cli.hactl"]


def compare(seed: int, workdir: str):
    """-> (seed, expected Counter, got Counter or None, error text)."""
    path = os.path.join(workdir, f"cib-{seed}.xml")
    with open(path, "w") as f:
        f.write(random_cib(seed).xml)
    ref = subprocess.run(["crm_simulate", "-x", path, "-S"], capture_output=True, text=True, timeout=TIMEOUT)
    expected = summary_lines(ref.stdout)
    assert expected is not None, f"seed {seed}: crm_simulate printed no summary: {ref.stderr[-500:]}"
    try:
        ours = subprocess.run(hactl_command() + ["simulate", path], capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return seed, expected, None, f"timed out after {TIMEOUT} s"
    got = summary_lines(ours.stdout)
    err = "" if ours.returncode == 0 and got is not None else f"exit {ours.returncode}: {ours.stderr.strip()[-800:]}"
    return seed, expected, got, err


def run_all(seeds):
    with tempfile.TemporaryDirectory(prefix="hadiff-") as workdir, ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda s: compare(s, workdir), seeds))


def describe(seed, expected, got, err) -> str:
    if got is None or err:
        return f"seed {seed}: hactl simulate failed: {err}"
    lines = [f"seed {seed}:"]
    lines += [f"   missing: {x}" for x in sorted((expected - got).elements())]
    lines += [f"   extra:   {x}" for x in sorted((got - expected).elements())]
    return "\n".join(lines)


@pytest.mark.crm_simulate
@pytest.mark.slow
def test_random_cibs_match_crm_simulate():
    if not hactl_available():
        pytest.skip("hactl simulate is not there yet (hadaemon/cli/simulate.py missing)")
    if not shutil.which("crm_simulate"):
        pytest.skip("crm_simulate not installed")
    results = run_all(SEEDS)
    failed = [r for r in results if r[3]]
    matched = [r for r in results if not r[3] and r[1] == r[2]]
    print(f"\ndifferential: {len(matched)} of {len(results)} random CIBs match crm_simulate 2.1.5"
          f" (seeds {SEEDS.start}-{SEEDS.stop - 1}, floor {MATCH_FLOOR})")
    for r in results:
        if r[1] != r[2] or r[3]:
            print(describe(*r))
    # Every generated CIB is inside the supported subset: hactl simulate must handle all of them.
    assert not failed, "\n".join(describe(*r) for r in failed)
    assert len(matched) >= MATCH_FLOOR


@pytest.mark.crm_simulate
@pytest.mark.slow
@pytest.mark.parametrize("state", ["fresh", "steady_lost_node"])
@pytest.mark.parametrize("nodes,prims", [(2, 10), (4, 30), (8, 60), (16, 100)])
def test_bench_cibs_match_crm_simulate(nodes, prims, state, tmp_path):
    """The benchmark's CIBs (bench/scheduler.py) get the same summary from both schedulers, so the
    benchmark compares like with like. crm_simulate -R: its summary is the same as -S's."""
    if not hactl_available():
        pytest.skip("hactl simulate is not there yet (hadaemon/cli/simulate.py missing)")
    path = tmp_path / "bench.xml"
    path.write_text(generate_bench_cib(nodes, prims, state, seed=1))
    ref = subprocess.run(["crm_simulate", "-R", "-x", str(path)], capture_output=True, text=True, timeout=TIMEOUT)
    ours = subprocess.run(hactl_command() + ["simulate", str(path)], capture_output=True, text=True,
                          timeout=TIMEOUT)
    expected, got = summary_lines(ref.stdout), summary_lines(ours.stdout)
    assert expected, ref.stderr[-500:]
    assert got == expected, describe(nodes * 1000 + prims, expected, got or Counter(), ours.stderr[-500:])


def test_normalisation_matches_scheduler_compare():
    """Our fallback normalise() agrees with the shared tool's (when ../shared is there)."""
    if _tool is None:
        pytest.skip("../shared/tools/scheduler-compare not present")
    samples = ["  * Start      rsc1    ( node1 )", "  * Move       rsc2    ( node1 -> node2 )",
               "  * Fence (reboot) node2 'peer is no longer part of the cluster'",
               "  * Restart    grp_r2   (   node1 )  due to required grp_r1 start",
               "  * Stop       rsc5        (          node4 )  due to node availability"]
    assert [_normalise_here(s) for s in samples] == [_tool.normalise(s) for s in samples]


if __name__ == "__main__":
    first = int(sys.argv[1]) if len(sys.argv) > 1 else SEEDS.start
    count = int(sys.argv[2]) if len(sys.argv) > 2 else len(SEEDS)
    res = run_all(range(first, first + count))
    for r in res:
        if r[1] != r[2] or r[3]:
            print(describe(*r))
    print(f"{sum(1 for r in res if not r[3] and r[1] == r[2])} of {len(res)} match")
