"""`ha-ldirectord --check-config` / `configtest` on the shared ldirectord.cf files and on broken ones:
exit 0 with a summary, or 1 with `file:line: message` — never a traceback. Each loadable file also
gives a table the backends accept (every real up), so config -> table -> diff works end to end."""
from pathlib import Path

import pytest

from hadaemon.io.director_config import load_config
from hadaemon.core.director.debounce import HealthState, RealHealth
from hadaemon.core.director.checks import make_plan
from hadaemon.core.director.table import wanted_table
from hadaemon.core.errors import ConfigError
from hadaemon.core.director.lvs_table import apply_ops, diff
from hadaemon.daemons.director import main

SHARED = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "ldirectord"
FILES = sorted(SHARED.rglob("*.cf")) + sorted(SHARED.glob("*.example")) if SHARED.is_dir() else []


@pytest.mark.skipif(not FILES, reason="../shared/testdata/ldirectord is absent")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shared_files_check_config(path, capsys):
    try:
        config = load_config(str(path))
    except ConfigError:
        config = None
    rc = main(["--check-config", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if config is None:
        assert rc == 1 and f"{path}:" in err
        return
    assert rc == 0 and "configuration OK" in out, err
    plan = make_plan(config)
    table = wanted_table(config, HealthState({p: RealHealth(up=True) for p in plan.targets}), None, plan)
    assert apply_ops({}, diff({}, table)) == table
    assert main([str(path), "configtest"]) == 0


@pytest.mark.parametrize("text, line", [
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tscheduler=wrr\n\tnonsense=1\n", 4),
    ("checkinterval=abc\n", 1),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 route\n", 2),
    # ldirectord's parser lets these through (ipvsadm fails later); no table can hold them
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 99999999999999999999\n", 2),
    ("virtual=99999999999999999999\n\treal=10.0.0.2:80 gate\n", 1),
    ("checkinterval=1\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tpersistent=99999999999\n", 2),
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tfallback=10.0.0.9:80 gate\n"
     "\treal=10.0.0.3:80 gate 4294967296\n", 4),
    # one weight limit everywhere (ipvsadm's, D-Bus SetWeight's): 0..65535
    ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 65536\n", 2),
    ("virtual=10.0.0.1:80\n" + "".join(f"\treal=10.0.0.{i}:80 gate 2147483647\n" for i in (2, 3, 4)), 2),
    # ldirectord accepts these and removes every virtual service; we refuse them
    ("", 1),
    ("checktimeout=3\n\n", 2),
])
def test_broken_files_name_file_and_line(tmp_path, capsys, text, line):
    path = tmp_path / "ldirectord.cf"
    path.write_text(text)
    assert main(["--check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line}:" in err and "Traceback" not in err


def test_unsupported_service_is_named(tmp_path, capsys):
    """service=oracle loads (as in ldirectord) but is reported clearly, naming the missing library."""
    path = tmp_path / "ldirectord.cf"
    path.write_text("virtual=10.0.0.1:1521\n\treal=10.0.0.2:1521 gate\n\tservice=oracle\n")
    assert main(["--check-config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{path}:1: warning:" in err and "Oracle client library" in err and "checktype=connect" in err
    path.write_text("virtual=10.0.0.1:1521\n\treal=10.0.0.2:1521 gate\n\tservice=oracle\n\tchecktype=connect\n")
    assert main(["--check-config", str(path)]) == 0
    assert "Oracle" not in capsys.readouterr().err


def test_missing_file_is_an_error_not_a_traceback(tmp_path, capsys):
    assert main(["--check-config", str(tmp_path / "nope.cf")]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_status_of_a_director_that_is_not_running(tmp_path, capsys):
    path = tmp_path / "ldirectord.cf"
    path.write_text("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n")
    assert main([str(path), "status", "--pidfile", str(tmp_path / "pid")]) == 3
    (tmp_path / "pid").write_text("999999999\n")
    assert main([str(path), "status", "--pidfile", str(tmp_path / "pid")]) == 1   # stale pid file
    assert main([str(path), "stop", "--pidfile", str(tmp_path / "pid")]) == 0
    assert main([str(path), "reload", "--pidfile", str(tmp_path / "pid")]) == 7
