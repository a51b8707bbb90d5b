"""units/: every long-running daemon (Type=notify) has a watchdog, restart on failure, a reload, a config
check before start, and a sandbox `systemd-analyze security --offline=true` rates at most 5.0; ha-crmd is
bound to ha-heartbeat and ha-heartbeat starts it when ha.cf says crm on / respawn (ha-crm-respawn)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "units").glob("*.service"))
DAEMONS = [u for u in UNITS if re.search(r"^Type=notify$", u.read_text(), re.M)]
MAX_EXPOSURE = 5.0


def settings(unit: Path) -> dict:
    out = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_the_daemons_are_there():
    names = {u.name for u in DAEMONS}
    assert {"ha-heartbeat.service", "ha-crmd.service", "ha-ldirectord.service"} <= names


def test_every_long_running_unit_is_held_to_the_contract():
    assert {u.name for u in DAEMONS} == {"ha-heartbeat.service", "ha-crmd.service", "ha-ldirectord.service",
                                        "ha-web.service"}


@pytest.mark.parametrize("name", ["ha-heartbeat.service", "ha-crmd.service", "ha-ldirectord.service",
                                  "ha-web.service"])
def test_daemon_unit_contract(name):
    s = settings(REPO / "units" / name)
    assert s.get("WatchdogSec"), "no WatchdogSec"
    assert s.get("Restart") == ["on-failure"]
    assert s.get("ExecReload"), "no ExecReload"
    assert any("--check-config" in v for v in s.get("ExecStartPre", [])), "no ExecStartPre --check-config"
    for key in ["CapabilityBoundingSet", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "RestrictAddressFamilies",
                "SystemCallFilter"]:
        assert s.get(key), f"no {key}"


def exposure(unit: Path) -> str:
    """`systemd-analyze security --offline=true` of the unit file: its overall exposure, e.g. "2.2 OK"."""
    assert shutil.which("systemd-analyze"), "systemd-analyze missing (package systemd)"
    cp = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                        capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+ [A-Z]+)", cp.stdout + cp.stderr)
    assert m, cp.stdout[-2000:] + cp.stderr[-2000:]
    return m.group(1)


@pytest.mark.parametrize("unit", DAEMONS, ids=lambda u: u.name)
def test_exposure_at_most_5(unit):
    score = exposure(unit)
    assert float(score.split()[0]) <= MAX_EXPOSURE, f"{unit.name}: exposure {score}"


def test_the_docs_give_every_units_current_score():
    """docs/packaging.md's sandbox table names each unit of units/ with the score systemd-analyze gives it now."""
    text = (REPO / "docs" / "packaging.md").read_text()
    documented = dict(re.findall(r"^\| `(ha-[^`]+\.service)`[^|]*\| \*\*(\d+\.\d+ [A-Z]+)\*\*", text, re.M))
    assert set(documented) == {u.name for u in UNITS}, sorted(documented)
    wrong = {u.name: (documented[u.name], exposure(u)) for u in UNITS if documented[u.name] != exposure(u)}
    assert not wrong, f"docs/packaging.md (documented, systemd-analyze now): {wrong}"


def test_crmd_is_bound_to_heartbeat_and_started_by_it():
    crmd, hb = settings(REPO / "units/ha-crmd.service"), settings(REPO / "units/ha-heartbeat.service")
    assert "ha-heartbeat.service" in " ".join(crmd["BindsTo"]) and "ha-heartbeat.service" in " ".join(crmd["After"])
    assert crmd["KillMode"] == ["process"] and crmd["Type"] == ["notify"]
    assert any("/usr/libexec/hadaemon/ha-crm-respawn" in v for v in hb["ExecStartPost"])


@pytest.mark.parametrize("line,decision", [("crm respawn", "crm respawn: would start"),
                                           ("crm on", "crm on: would start"), ("crm yes", "crm on: would start"),
                                           ("crm off", "crm off: ha-crmd.service not started"),
                                           ("", "crm off: ha-crmd.service not started")])
def test_ha_crm_respawn_reads_ha_cf(tmp_path, line, decision):
    hacf = tmp_path / "ha.cf"
    hacf.write_text(f"keepalive 1\ndeadtime 10\nbcast eth0\nnode a\nnode b\n{line}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cp = subprocess.run([sys.executable, str(REPO / "packaging/ha-crm-respawn"), "--node", "a", "--config", str(hacf),
                         "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert decision in cp.stdout


def test_ha_crm_respawn_bad_ha_cf_is_one_line_and_nonzero(tmp_path):
    hacf = tmp_path / "ha.cf"
    hacf.write_text("crm sometimes\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cp = subprocess.run([sys.executable, str(REPO / "packaging/ha-crm-respawn"), "--config", str(hacf)],
                        capture_output=True, text=True, env=env, timeout=60)
    assert cp.returncode == 1 and cp.stderr.startswith(f"ha-crm-respawn: {hacf}:1:"), cp.stderr
