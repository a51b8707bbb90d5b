"""`hactl simulate` imports only what a simulation needs: start-up is most of a small CIB's run (issue 9), so
the plain path must not pull in D-Bus, netlink or packet libraries, the CIB verifier and its agent runner,
the what-if injection code, ElementTree or importlib.metadata (--version only), nor the standard modules
whose loading costs more than scheduling a small CIB (argparse, re, typing, dataclasses, ...). Checked in a
fresh interpreter started as the installed hactl is (python3 -I -S): the modules loaded once the run is
over."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.unit.test_policy_scheduler import cib, node_state, primitive, running

REPO = Path(__file__).resolve().parents[2]
PROBE = r"""
import io, sys
sys.path.insert(0, sys.argv.pop(1))
from hadaemon.cli.hactl import main
sys.stdout = io.StringIO()
rc = main(["simulate", *sys.argv[1:]])
sys.stdout = sys.__stdout__
print(repr({"rc": rc, "modules": sorted(sys.modules)}))
"""

NEVER = ("dbus_next", "pyroute2", "scapy", "hadaemon.bus", "hadaemon.io.lrm", "hadaemon.daemons")
NOT_ON_THE_PLAIN_PATH = ("hadaemon.core.cib.verify", "hadaemon.cli.verify", "hadaemon.core.policy.inject",
                         "hadaemon.core.cib.upgrade", "xml.etree.ElementTree", "importlib.metadata",
                         "subprocess", "argparse", "re", "typing", "dataclasses", "inspect", "enum", "calendar",
                         "datetime", "contextlib", "gettext", "locale", "shutil", "collections", "functools")


def loaded(tmp_path, *args):
    f = tmp_path / "cib.xml"
    f.write_text(cib(resources=[primitive("rsc1"), primitive("rsc2")],
                     status=[node_state("node1", running("rsc1")), node_state("node2")]))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(REPO), str(f), "--now", "1000", *args],
                         capture_output=True, text=True, timeout=120)
    result = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, out.stderr
    return set(result["modules"])


def _hits(modules, names):
    return sorted(m for m in modules for n in names if m == n or m.startswith(n + "."))


def test_plain_simulation_imports_only_the_scheduler(tmp_path):
    modules = loaded(tmp_path)
    assert "hadaemon.core.policy" in modules
    assert _hits(modules, NEVER) == []
    assert _hits(modules, NOT_ON_THE_PLAIN_PATH) == []


def test_what_if_runs_load_the_injection_code_but_no_daemon_libraries(tmp_path):
    modules = loaded(tmp_path, "--node-down", "node1")
    assert "hadaemon.core.policy.inject" in modules
    assert _hits(modules, NEVER) == []
