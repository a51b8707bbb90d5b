"""tests/skipcheck.py: the deliberate-skip list parses, matches by node id and reason, and in CI mode a skip
not on the list fails a run that would otherwise pass (checked on a throwaway test file via pytester-free
subprocess runs)."""
import os
import subprocess
import sys
from pathlib import Path

from tests.skipcheck import LIST, is_deliberate, load_list

REPO = Path(__file__).resolve().parents[2]


def test_the_list_parses_and_every_entry_names_a_test_file_that_exists():
    entries = load_list()
    assert entries
    for nodeid, _reason, why in entries:
        assert (REPO / nodeid.split("::")[0]).is_file(), nodeid
        assert len(why) > 20, f"{nodeid}: say why the skip is right for this machine"


def test_matching_needs_both_node_id_and_reason():
    entries = [("tests/a.py::t[*]", "no systemd*", "because")]
    assert is_deliberate("tests/a.py::t[x]", "no systemd here", entries)
    assert not is_deliberate("tests/a.py::t[x]", "crm_simulate not installed", entries)
    assert not is_deliberate("tests/b.py::t", "no systemd here", entries)


def _run(tmp_path, ci: bool):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_missing_tool():\n    pytest.skip('frobnicate not installed')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), HADAEMON_CI="1" if ci else "0")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.skipcheck", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_x.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_an_undeliberate_skip_fails_in_ci_and_is_counted_outside(tmp_path):
    assert LIST.is_file()
    local = _run(tmp_path, ci=False)
    assert local.returncode == 0, local.stdout
    assert "skipped: 1 (0 deliberate, listed in tests/deliberate-skips.txt; 1 not deliberate)" in local.stdout
    assert "NOT DELIBERATE: test_x.py::test_missing_tool: frobnicate not installed" in local.stdout
    ci = _run(tmp_path, ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "HADAEMON_CI=1: a skip that is not deliberate fails the run" in ci.stdout
