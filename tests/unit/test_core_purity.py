"""Layering: hadaemon/core is pure (no I/O layers, sockets, subprocess, asyncio or clock reads), bus/ never imports daemons/.

Checked on the AST of every file, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, List, Tuple

import hadaemon

PKG = Path(hadaemon.__file__).resolve().parent

# Modules pure code must not import (a name or any submodule of it).
CORE_FORBIDDEN_MODULES = ("hadaemon.io", "hadaemon.bus", "hadaemon.daemons", "socket", "subprocess", "asyncio")
# Functions that read the clock, as module.function.
CLOCK_FUNCTIONS = {
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"},
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _matches(name: str, forbidden: Iterable[str]) -> str | None:
    for f in forbidden:
        if name == f or name.startswith(f + "."):
            return f
    return None


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for a chain of attributes on a name, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def violations(source: str, module: str, is_package: bool, forbidden: Iterable[str],
               clock: bool) -> List[Tuple[int, str]]:
    """(line, what) for every forbidden import (and, when `clock`, every clock read) in `source`."""
    forbidden = tuple(forbidden)
    found: List[Tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _matches(alias.name, forbidden):
                    found.append((node.lineno, f"imports {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            for alias in node.names:
                # `from hadaemon import io` names the module hadaemon.io.
                for name in (target, f"{target}.{alias.name}"):
                    if _matches(name, forbidden):
                        found.append((node.lineno, f"imports {name}"))
                        break
                else:
                    if clock and alias.name in CLOCK_FUNCTIONS.get(target, ()):
                        found.append((node.lineno, f"reads the clock: from {target} import {alias.name}"))
        elif clock and isinstance(node, ast.Call):
            name = _dotted(node.func)
            if "." in name:
                owner, func = name.rsplit(".", 1)
                if func in CLOCK_FUNCTIONS.get(owner.rsplit(".", 1)[-1], ()):
                    found.append((node.lineno, f"reads the clock: {name}()"))
    return sorted(set(found))


def _scan(directory: Path, forbidden: Iterable[str], clock: bool) -> List[str]:
    report = []
    for path in sorted(directory.rglob("*.py")):
        found = violations(path.read_text(), _module_name(path), path.name == "__init__.py", forbidden, clock)
        report += [f"{path.relative_to(PKG.parent)}:{line}: {what}" for line, what in found]
    return report


def test_core_is_pure():
    bad = _scan(PKG / "core", CORE_FORBIDDEN_MODULES, clock=True)
    assert not bad, ("hadaemon/core must stay pure (no io/bus/daemons, sockets, subprocess, asyncio, "
                     "clock reads; take `now` as an argument and do I/O in the shell):\n  " + "\n  ".join(bad))


def test_bus_does_not_import_daemons():
    bad = _scan(PKG / "bus", ("hadaemon.daemons",), clock=False)
    assert not bad, ("hadaemon/bus must not import hadaemon/daemons (shared types belong in core, "
                     "e.g. hadaemon.core.errors.BadRequest):\n  " + "\n  ".join(bad))


def test_the_checker_finds_each_kind_of_violation():
    source = """\
import socket
import os, subprocess as sp
from asyncio import sleep
from hadaemon import io
from hadaemon.bus.dbusnext import Variant
from ...daemons import director
from ..cib import xmltree
from time import monotonic
import time, datetime
from datetime import date
def f():
    import hadaemon.io.lvs
    a = time.time()
    b = time.strftime("%Y")
    c = datetime.datetime.now()
    d = date.today()
    e = time.perf_counter_ns()
    return datetime.datetime.fromtimestamp(0)
"""
    got = violations(source, "hadaemon.core.director.config", False, CORE_FORBIDDEN_MODULES, clock=True)
    assert got == [
        (1, "imports socket"),
        (2, "imports subprocess"),
        (3, "imports asyncio"),
        (4, "imports hadaemon.io"),
        (5, "imports hadaemon.bus.dbusnext"),
        (6, "imports hadaemon.daemons"),
        (8, "reads the clock: from time import monotonic"),
        (12, "imports hadaemon.io.lvs"),
        (13, "reads the clock: time.time()"),
        (15, "reads the clock: datetime.datetime.now()"),
        (16, "reads the clock: date.today()"),
        (17, "reads the clock: time.perf_counter_ns()"),
    ]
    # A relative import inside a package's __init__ resolves from the package itself.
    assert violations("from .. import io\n", "hadaemon.core", True, CORE_FORBIDDEN_MODULES, clock=False) == [
        (1, "imports hadaemon.io")]
