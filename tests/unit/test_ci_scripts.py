"""CI tells the truth (issue 11): .ci/conformance prints each scheduler corpus's score and fails below the floor
recorded in the repository or when a corpus cannot be scored; scripts/test (the README's test command) turns
pytest's exit 5 (no test collected) into a failure and prints the skip count.

.ci/conformance runs here against a stand-in corpus tree and a stand-in scheduler-compare that prints the score
the test chose (the real corpora take minutes; .ci/run runs them)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_COMPARE = """\
import sys
from pathlib import Path
corpus = Path(sys.argv[1])
assert sys.argv[2:] == [{hactl!r}, "simulate", "{{xml}}"], sys.argv
print("case-1: ok")
print((corpus / "score").read_text().strip())
"""


def shared_tree(tmp_path: Path, scores: dict) -> Path:
    """tmp/shared/testdata/CORPUS/xml/*.xml (as many cases as the score counts) + tools/scheduler-compare."""
    shared = tmp_path / "shared"
    for corpus, score in scores.items():
        xml = shared / "testdata" / corpus / "xml"
        xml.mkdir(parents=True)
        for i in range(5):
            (xml / f"case-{i}.xml").write_text("<cib/>\n")
        (shared / "testdata" / corpus / "score").write_text(score + "\n")
    (shared / "tools").mkdir(parents=True)
    (shared / "tools" / "scheduler-compare").write_text(FAKE_COMPARE.format(hactl="/x/hactl"))
    return shared


def conformance(tmp_path: Path, shared: Path, floors: str):
    floor_file = tmp_path / "floor"
    floor_file.write_text("# corpus floor\n" + floors)
    env = dict(os.environ, HADAEMON_SHARED=str(shared), CONFORMANCE_FLOOR=str(floor_file), HACTL="/x/hactl")
    return subprocess.run([str(REPO / ".ci" / "conformance")], capture_output=True, text=True, env=env, timeout=60)


def test_both_scores_are_printed_and_at_the_floor_passes(tmp_path):
    shared = shared_tree(tmp_path, {"corpus-a": "4 passed, 1 failed", "corpus-b": "5 passed, 0 failed"})
    cp = conformance(tmp_path, shared, "corpus-a 4\ncorpus-b   5\n")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.splitlines() == ["scheduler conformance (corpus-a): 4 of 5 cases match, 1 differ (floor 4)",
                                      "scheduler conformance (corpus-b): 5 of 5 cases match, 0 differ (floor 5)"]


def test_a_score_below_its_floor_fails_and_says_which(tmp_path):
    shared = shared_tree(tmp_path, {"corpus-a": "4 passed, 1 failed", "corpus-b": "3 passed, 2 failed"})
    cp = conformance(tmp_path, shared, "corpus-a 4\ncorpus-b 4\n")
    assert cp.returncode == 1
    assert "scheduler conformance (corpus-b): 3 of 5 cases match, 2 differ (floor 4)" in cp.stdout
    assert "scheduler conformance (corpus-a): 4 of 5" in cp.stdout  # the other score is still printed
    assert f"scheduler conformance (corpus-b): 3 is below the floor 4 in {tmp_path / 'floor'}" in cp.stderr


@pytest.mark.parametrize("scores,floors,why", [
    ({"corpus-a": "4 passed, 1 failed"}, "corpus-a 4\ncorpus-gone 1\n", "corpus-gone): "),
    ({"corpus-a": "Traceback (most recent call last)"}, "corpus-a 4\n", "no score (last line: Traceback"),
    ({"corpus-a": "4 passed, 1 failed"}, "corpus-a four\n", "floor 'four' is not a number"),
    ({"corpus-a": "4 passed, 1 failed"}, "", "lists no corpus"),
])
def test_what_cannot_be_scored_fails(tmp_path, scores, floors, why):
    cp = conformance(tmp_path, shared_tree(tmp_path, scores), floors)
    assert cp.returncode == 1 and why in cp.stderr, cp.stdout + cp.stderr


def test_a_missing_compare_tool_fails(tmp_path):
    shared = shared_tree(tmp_path, {"corpus-a": "5 passed, 0 failed"})
    (shared / "tools" / "scheduler-compare").unlink()
    cp = conformance(tmp_path, shared, "corpus-a 4\n")
    assert cp.returncode == 1 and "scheduler-compare is absent — failure" in cp.stderr, cp.stderr


def test_the_floor_file_lists_both_corpora():
    corpora = [line.split()[0] for line in (REPO / ".ci" / "conformance-floor").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert sorted(corpora) == ["pacemaker-scheduler", "pacemaker-scheduler-clones"]
    assert "\n.ci/conformance\n" in (REPO / ".ci" / "run").read_text()


@pytest.mark.slow
def test_scripts_test_turns_no_tests_into_a_failure_and_counts_skips():
    """The README's command (scripts/test) with a selection that matches nothing: pytest exits 5, scripts/test says
    so and exits 1; the skip summary line is printed (runs setup, ruff and a collection of the whole suite)."""
    env = dict(os.environ)
    env.pop("HADAEMON_CI", None)
    cp = subprocess.run([str(REPO / "scripts" / "test"), "-p", "no:cacheprovider", "-q", "-k",
                         "zz_no_test_is_named_like_this_zz"], capture_output=True, text=True, env=env, timeout=900,
                        cwd=REPO)
    assert cp.returncode == 1, cp.stdout[-3000:] + cp.stderr[-3000:]
    assert "scripts/test: pytest collected no tests — that is a failure" in cp.stderr, cp.stderr[-3000:]
    assert "skipped: 0 (0 deliberate, listed in tests/deliberate-skips.txt; 0 not deliberate)" in cp.stdout, \
        cp.stdout[-3000:]
