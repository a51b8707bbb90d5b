"""agents/IPaddr2 run by a Python without pyroute2 (here: -S, no site-packages at all, as the system Python
of a checkout without python3-pyroute2): exit 5 (OCF_ERR_INSTALLED) with one line, no traceback;
meta-data still works."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "agents" / "IPaddr2"


def run(action):
    env = dict(os.environ, OCF_RESKEY_ip="192.0.2.10", OCF_RESOURCE_INSTANCE="vip")
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-S", str(AGENT), action], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize("action,missing", [("start", "pyroute2 and scapy not installed (python3-pyroute2, python3-scapy)"),
                                            ("monitor", "pyroute2 not installed (python3-pyroute2)"),
                                            ("stop", "pyroute2 not installed (python3-pyroute2)")])
def test_missing_pyroute2_is_not_installed(action, missing):
    cp = run(action)
    assert cp.returncode == 5, cp.stderr
    assert cp.stderr == f"ocf-exit-reason:IPaddr2 {action}: {missing}\n"
    assert cp.stdout == ""


def test_meta_data_needs_no_pyroute2():
    cp = run("meta-data")
    assert cp.returncode == 0, cp.stderr
    assert '<resource-agent name="IPaddr2"' in cp.stdout
