"""`hactl simulate` imports only what a simulation needs: start-up is most of a small CIB's run (issue 9), so
the plain path must not pull in D-Bus, netlink or packet libraries, the CIB verifier and its agent runner,
the what-if injection code, ElementTree or importlib.metadata (--version only). Checked
in a fresh interpreter: the modules loaded once the run is over."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.test_policy_scheduler import cib, node_state, primitive, running

PROBE = r"""
import contextlib, io, json, sys
from hadaemon.cli.hactl import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(["simulate", *sys.argv[1:]])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""

NEVER = ("dbus_next", "pyroute2", "scapy", "hadaemon.bus", "hadaemon.io.lrm", "hadaemon.daemons")
NOT_ON_THE_PLAIN_PATH = ("hadaemon.core.cib.verify", "hadaemon.cli.verify", "hadaemon.core.policy.inject",
                         "hadaemon.core.cib.upgrade", "xml.etree.ElementTree", "importlib.metadata",
                         "subprocess")


def loaded(tmp_path, *args):
    f = tmp_path / "cib.xml"
    f.write_text(cib(resources=[primitive("rsc1"), primitive("rsc2")],
                     status=[node_state("node1", running("rsc1")), node_state("node2")]))
    out = subprocess.run([sys.executable, "-c", PROBE, str(f), "--now", "1000", *args], capture_output=True,
                         text=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
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
