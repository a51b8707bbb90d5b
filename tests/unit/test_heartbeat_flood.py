"""hadaemon.testing.flood's native flooder (the C sendmmsg flooder of the attack tests and the bench):
a compile failure says why, a run that fails says why, the other runs are ended by PID, a datagram it
cannot hold is refused before anything is sent. No traffic leaves the host: the runs that start send
nothing or fail before their first datagram."""
from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace

import pytest

from hadaemon.testing import flood as fl
from hadaemon.testing.procs import Proc


def _fake_cluster(tmp_path, spawn=None):
    started = []

    def default_spawn(node, argv, name=None):
        p = Proc(argv, tmp_path / "logs" / f"{node}-{name}.log", name=name)
        started.append(p)
        return p
    return SimpleNamespace(workdir=tmp_path, spawn=spawn or default_spawn, started=started)


def _path_with(tmp_path, gcc_script: str | None) -> str:
    d = tmp_path / "bin"
    d.mkdir()
    if gcc_script is not None:
        gcc = d / "gcc"
        gcc.write_text(gcc_script)
        gcc.chmod(0o755)
    return str(d)


def test_compile_failure_shows_gccs_words(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path, "#!/bin/sh\necho 'hbflood.c:1: fatal error: stdio.h: "
                                                    "No such file or directory' >&2\nexit 1\n"))
    with pytest.raises(RuntimeError) as err:
        fl.native_flooder(_fake_cluster(tmp_path))
    assert "stdio.h: No such file or directory" in str(err.value) and "gcc" in str(err.value)
    assert not (tmp_path / "hbflood").exists()


def test_no_gcc_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path, None))
    with pytest.raises(RuntimeError) as err:
        fl.native_flooder(_fake_cluster(tmp_path))
    assert "gcc" in str(err.value) and "scripts/setup" in str(err.value)


def test_half_written_binary_is_not_reused(tmp_path, monkeypatch):
    # a gcc that dies after writing part of its output (killed, timed out) leaves no "hbflood" behind
    monkeypatch.setenv("PATH", _path_with(tmp_path, "#!/bin/sh\nwhile [ $# -gt 1 ]; do [ \"$1\" = -o ] && "
                                                    "echo partial > \"$2\"; shift; done\nexit 1\n"))
    with pytest.raises(RuntimeError):
        fl.native_flooder(_fake_cluster(tmp_path))
    assert not (tmp_path / "hbflood").exists()


def test_flooder_errors_are_in_words(tmp_path):
    exe = fl.native_flooder(_fake_cluster(tmp_path))
    cp = subprocess.run([exe, "127.0.0.1", "9", "1", str(tmp_path / "no-such-file")], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 2 and "no-such-file" in cp.stderr
    pool = tmp_path / "pool.hex"
    pool.write_text("00ff\n")
    cp = subprocess.run([exe, "not-an-address", "9", "1", str(pool)], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2 and "not-an-address" in cp.stderr
    cp = subprocess.run([exe], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2 and "usage" in cp.stderr


def test_a_failed_run_ends_the_others_by_pid(tmp_path):
    started = []

    def spawn(node, argv, name=None):
        if not started:   # the first run fails at once, the second would go on for a minute
            argv = ["sh", "-c", "echo cannot flood >&2; exit 2"]
        else:
            argv = ["sleep", "60"]
        p = Proc(argv, tmp_path / "logs" / f"{node}-{name}.log", name=name)
        started.append(p)
        return p
    with pytest.raises(RuntimeError) as err:
        fl.flood(_fake_cluster(tmp_path, spawn), "client", "replay", "127.0.0.1", 1.0, [b"x" * 40], procs=2,
                 native=True)
    assert "cannot flood" in str(err.value) and "exit 2" in str(err.value)
    assert len(started) == 2 and not started[1].alive()


def test_a_datagram_too_long_for_the_flooder_is_refused(tmp_path):
    c = _fake_cluster(tmp_path)
    with pytest.raises(ValueError, match="2048"):
        fl.flood(c, "client", "replay", "127.0.0.1", 1.0, [b"x" * 2049], native=True)
    with pytest.raises(ValueError, match="2048"):   # forged: 28 bytes of IPv4 and UDP headers in front
        fl.flood(c, "client", "replay", "127.0.0.1", 1.0, [b"x" * 2030], native=True, spoof="10.0.0.1:694")
    assert c.started == [] and not any(p.suffix == ".hex" for p in tmp_path.iterdir())
    assert os.path.exists(tmp_path)
