"""pytest plugin (scripts/test: -p tests.skipcheck): count the skipped tests and hold them against the one
list of deliberate skips, tests/deliberate-skips.txt. With HADAEMON_CI=1 (.ci/run) a skip not on the list
fails the run: in CI a test skipped because a tool is missing is a failure, not a pass."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Tuple

import pytest

LIST = Path(__file__).resolve().parent / "deliberate-skips.txt"


def load_list(path: Path = LIST) -> List[Tuple[str, str, str]]:
    """[(nodeid pattern, reason pattern, why)]; a malformed line is an error naming file:line."""
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ")]
        if len(parts) != 3 or not all(parts):
            raise pytest.UsageError(f"{path}:{n}: expected 'NODEID | REASON | WHY', got {line!r}")
        entries.append((parts[0], parts[1], parts[2]))
    return entries


def _match(pattern: str, text: str) -> bool:
    """Only * is special (node ids hold brackets: test[param])."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), text, re.S) is not None


def is_deliberate(nodeid: str, reason: str, entries) -> bool:
    return any(_match(n, nodeid) and _match(r, reason) for n, r, _ in entries)


def skip_reason(report) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        reason = str(lr[2])
    else:
        reason = str(lr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


class SkipCheck:
    def __init__(self, strict: bool):
        self.strict = strict
        self.entries = load_list()
        self.skipped: List[Tuple[str, str]] = []

    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, skip_reason(report)))

    def undeliberate(self):
        return [(n, r) for n, r in self.skipped if not is_deliberate(n, r, self.entries)]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if self.strict and self.undeliberate() and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        bad = self.undeliberate()
        tr = terminalreporter
        tr.write_sep("=", "skips")
        tr.write_line(f"skipped: {len(self.skipped)} ({len(self.skipped) - len(bad)} deliberate, listed in "
                      f"tests/deliberate-skips.txt; {len(bad)} not deliberate)")
        for nodeid, reason in bad:
            tr.write_line(f"  NOT DELIBERATE: {nodeid}: {reason}")
        if bad and self.strict:
            tr.write_line("HADAEMON_CI=1: a skip that is not deliberate fails the run (install what is missing, "
                          "or add the test to tests/deliberate-skips.txt with the reason it cannot run here)")


def pytest_configure(config):
    config.pluginmanager.register(SkipCheck(os.environ.get("HADAEMON_CI") == "1"), "hadaemon-skipcheck")
