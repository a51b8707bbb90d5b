"""Checkers against real, independent servers (MariaDB, PostgreSQL, dnsmasq, pyftpdlib, aiosmtpd)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hadaemon.io.checks import run_check  # noqa: E402

from servers import LO, free_port, spec  # noqa: E402


@pytest.fixture
def open_tmp():
    """A scratch directory outside pytest's private tmp (servers run as other users read it);
    removed afterwards even when the test fails early."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="hadaemon-srv-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _system_python_has(module: str) -> bool:
    return os.access("/usr/bin/python3", os.X_OK) and subprocess.run(
        ["/usr/bin/python3", "-c", f"import {module}"], capture_output=True).returncode == 0


def _wait_listening(port: int, proc, seconds: float = 15) -> None:
    import socket
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex((LO, port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"server on port {port} did not start")


@pytest.mark.skipif(not _system_python_has("pyftpdlib"), reason="needs python3-pyftpdlib")
async def test_ftp_against_pyftpdlib(tmp_path):
    """An independent FTP server (Debian's python3-pyftpdlib) with anonymous and user logins."""
    (tmp_path / "welcome.msg").write_text("this is a test file\n")
    port = free_port()
    code = ("import sys; from pyftpdlib.authorizers import DummyAuthorizer; "
            "from pyftpdlib.handlers import FTPHandler; from pyftpdlib.servers import FTPServer; "
            "a = DummyAuthorizer(); a.add_anonymous(sys.argv[2]); a.add_user('bob', 'pw', sys.argv[2]); "
            "FTPHandler.authorizer = a; FTPHandler.passive_ports = None; "
            "FTPServer(('127.0.0.1', int(sys.argv[1])), FTPHandler).serve_forever()")
    proc = subprocess.Popen(["/usr/bin/python3", "-c", code, str(port), str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        anon = dict(login="anonymous", passwd="ldirectord@localhost")
        r = await run_check(spec("ftp", port, request="/welcome.msg", receive="test", **anon))
        assert r.ok, r.detail
        assert (await run_check(spec("ftp", port, request="/welcome.msg", receive="test", login="bob",
                                     passwd="pw"))).ok
        assert not (await run_check(spec("ftp", port, request="/welcome.msg", receive="test", login="bob",
                                         passwd="wrong"))).ok
        assert not (await run_check(spec("ftp", port, request="/missing.msg", receive="test", **anon))).ok
        assert (await run_check(spec("ftp", port, request="/", **anon))).ok          # no file: login only
        assert not (await run_check(spec("ftp", port, request="/", login="bob", passwd="wrong"))).ok
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.skipif(not _system_python_has("aiosmtpd"), reason="needs python3-aiosmtpd")
async def test_smtp_against_aiosmtpd():
    """An independent SMTP server (Debian's python3-aiosmtpd)."""
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        r = await run_check(spec("smtp", port))
        assert r.ok and r.detail.startswith("220"), r.detail
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.skipif(not shutil.which("dnsmasq"), reason="needs dnsmasq (dnsmasq-base)")
async def test_dns_against_dnsmasq():
    """A real DNS server on a loopback port: A query over UDP and TCP, PTR for an address."""
    port = free_port()
    proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                             f"--port={port}", f"--listen-address={LO}", "--bind-interfaces",
                             "--address=/x.y.z/127.0.0.1", "--host-record=web1.test,10.1.2.3",
                             "--pid-file="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = None
        for _ in range(50):
            r = await run_check(spec("dns", port, request="/x.y.z", receive="127.0.0.1", protocol="udp",
                                     timeout=1))
            if r.ok or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert r is not None and r.ok, r.detail
        assert (await run_check(spec("dns", port, request="/x.y.z", receive="127.0.0.1"))).ok   # TCP
        assert not (await run_check(spec("dns", port, request="/x.y.z", receive="10.9.9.9", protocol="udp"))).ok
        ptr = await run_check(spec("dns", port, request="/10.1.2.3", receive="web1", protocol="udp"))
        assert ptr.ok, ptr.detail
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(not (os.access("/usr/sbin/mariadbd", os.X_OK) and shutil.which("mariadb-install-db")),
                    reason="needs mariadb-server-core and mariadb-client-core")
async def test_mysql_against_a_real_mariadb(open_tmp):
    """mariadb-install-db + mariadbd on a loopback port; mysql_native_password login and queries."""
    tmp = open_tmp
    data = tmp / "data"
    init = tmp / "init.sql"
    init.write_text("CREATE USER 'readuser'@'%' IDENTIFIED BY 'genericpassword';\n"
                    "CREATE DATABASE ld;\nCREATE TABLE ld.director_slave (enabled INT);\n"
                    "INSERT INTO ld.director_slave VALUES (1);\n"
                    "GRANT SELECT ON ld.* TO 'readuser'@'%';\n")
    # its own tmpdir: bootstraps sharing /tmp collide on their temporary tables (#sql-temptable-*)
    (tmp / "tmp").mkdir()
    cp = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                         "--auth-root-authentication-method=socket", "--skip-test-db", f"--tmpdir={tmp / 'tmp'}"],
                        capture_output=True, text=True, timeout=180)
    assert cp.returncode == 0, f"mariadb-install-db: {cp.stdout[-1500:]}{cp.stderr[-1500:]}"
    port = free_port()
    proc = subprocess.Popen(["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                             f"--port={port}", f"--bind-address={LO}", f"--socket={tmp}/sock",
                             f"--pid-file={tmp}/pid", f"--init-file={init}", "--skip-log-bin", f"--tmpdir={tmp / 'tmp'}",
                             "--innodb-buffer-pool-size=16M"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = dict(login="readuser", passwd="genericpassword", database="ld")
        r = None
        for _ in range(150):
            r = await run_check(spec("mysql", port, request="/select * from director_slave where enabled=1",
                                     **base))
            if r.ok or "login" in r.detail or proc.poll() is not None:
                break
            await asyncio.sleep(0.2)
        assert r is not None and r.ok, r.detail
        bad = await run_check(spec("mysql", port, request="/select 1", login="readuser", passwd="nope"))
        assert not bad.ok and "1045" in bad.detail
        none = await run_check(spec("mysql", port, request="/select * from director_slave where enabled=2",
                                    **base))
        assert not none.ok and none.detail == "0 row(s)"
        err = await run_check(spec("mysql", port, request="/select * from nope", **base))
        assert not err.ok and "nope" in err.detail
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _postgres_bin():
    for d in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin"):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/postgres", os.X_OK):
            return d
    return None


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(_postgres_bin() is None or os.geteuid() != 0, reason="needs PostgreSQL binaries and root")
async def test_pgsql_against_a_real_postgres(open_tmp):
    """initdb + postgres on a loopback port (as the postgres user), scram-sha-256 login and queries."""
    bindir = _postgres_bin()
    tmp_path = open_tmp
    data = tmp_path / "pg"
    pwfile = tmp_path / "pw"
    pwfile.write_text("secret\n")
    shutil.chown(tmp_path, "postgres")
    shutil.chown(pwfile, "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/initdb", "-D", str(data), "-U", "checker",
                    "--pwfile", str(pwfile), "--auth=scram-sha-256", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", f"{bindir}/postgres", "-D", str(data),
                             "-p", str(port), "-k", str(tmp_path), "-c", f"listen_addresses={LO}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = dict(login="checker", database="postgres")
        deadline = time.monotonic() + 30
        r = None
        while time.monotonic() < deadline:
            r = await run_check(spec("pgsql", port, passwd="secret", request="/select 1", **base))
            if r.ok or "login" in r.detail:
                break
            await asyncio.sleep(0.3)
        assert r is not None and r.ok, r.detail
        bad = await run_check(spec("pgsql", port, passwd="wrong", request="/select 1", **base))
        assert not bad.ok and "password authentication failed" in bad.detail
        none = await run_check(spec("pgsql", port, passwd="secret", request="/select 1 where false", **base))
        assert not none.ok and none.detail == "0 row(s)"
        err = await run_check(spec("pgsql", port, passwd="secret", request="/select * from nope", **base))
        assert not err.ok and "nope" in err.detail
    finally:
        proc.terminate()
        proc.wait(timeout=30)
