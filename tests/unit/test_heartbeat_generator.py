"""units/ha-heartbeat-generator: the drop-in that makes ha-heartbeat.service want and follow corosync.service
is written exactly when ha.cf says `stack corosync` (ha.cf found through HA_HEARTBEAT_OPTS --config too);
a missing or broken ha.cf writes nothing and never fails (systemd runs generators at every daemon-reload).
Under real systemd: tests/system/test_heartbeat_unit.py."""
import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "units" / "ha-heartbeat-generator"


@pytest.fixture()
def gen(tmp_path, monkeypatch):
    loader = importlib.machinery.SourceFileLoader("ha_heartbeat_generator", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    monkeypatch.setattr(mod, "DEFAULT_CONFIG", str(tmp_path / "ha.cf"))
    monkeypatch.setattr(mod, "ENV_FILES", (str(tmp_path / "sysconfig"), str(tmp_path / "default")))
    return mod


def dropin(out):
    p = out / "ha-heartbeat.service.d" / "50-corosync.conf"
    return p.read_text() if p.exists() else None


def test_stack_corosync_wants_and_follows_corosync(gen, tmp_path):
    (tmp_path / "ha.cf").write_text("keepalive 1\nstack heartbeat  # first\nstack corosync\n")
    assert gen.main([str(tmp_path / "out"), "early", "late"]) == 0
    text = dropin(tmp_path / "out")
    assert "[Unit]\nWants=corosync.service\nAfter=corosync.service\n" in text


@pytest.mark.parametrize("hacf", ["node a\nbcast eth0\n", "node a\nbcast eth0\nstack heartbeat\n",
                                  "# stack corosync\nnode a\nbcast eth0\n"])
def test_native_stack_writes_nothing(gen, tmp_path, hacf):
    (tmp_path / "ha.cf").write_text(hacf)
    assert gen.main([str(tmp_path / "out")]) == 0
    assert dropin(tmp_path / "out") is None


def test_missing_or_broken_hacf_writes_nothing_and_succeeds(gen, tmp_path, capsys):
    assert gen.main([str(tmp_path / "out")]) == 0            # no ha.cf: not configured yet
    (tmp_path / "ha.cf").write_text("stack corosync\nstack pacemaker\n")
    assert gen.main([str(tmp_path / "out")]) == 0
    assert dropin(tmp_path / "out") is None
    assert f"{tmp_path / 'ha.cf'}:2:" in capsys.readouterr().err


def test_config_from_ha_heartbeat_opts(gen, tmp_path):
    other = tmp_path / "other.cf"
    other.write_text("stack corosync\n")
    (tmp_path / "ha.cf").write_text("node a\nbcast eth0\n")
    (tmp_path / "sysconfig").write_text(f'# options\nHA_HEARTBEAT_OPTS="--debug --config {other}"\n')
    assert gen.config_path() == str(other)
    assert gen.main([str(tmp_path / "out")]) == 0
    assert f"{other} says `stack corosync`" in dropin(tmp_path / "out")
    (tmp_path / "default").write_text(f"HA_HEARTBEAT_OPTS=--config={tmp_path / 'ha.cf'}\n")   # the later file wins
    assert gen.config_path() == str(tmp_path / "ha.cf")


def test_needs_the_output_directory(gen):
    assert gen.main([]) == 2
