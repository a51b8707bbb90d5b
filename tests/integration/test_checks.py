"""Every checker against a small real server on loopback: success, failure and timeout paths."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hadaemon.core.ldirectord.checks import CheckSpec, make_plan
from hadaemon.core.ldirectord.config import parse_config
from hadaemon.core.ldirectord.debounce import apply_results, initial_state
from hadaemon.core.ldirectord.table import wanted_table
from hadaemon.io.checks import check, run_check
from hadaemon.io.checks.scheduler import CheckScheduler, check_all_once

sys.path.insert(0, str(Path(__file__).parent))
import servers  # noqa: E402

LO = "127.0.0.1"


def spec(service, port, kind="negotiate", timeout=2.0, **kw):
    return CheckSpec(kind, service, kw.pop("protocol", "tcp"), LO, 4, port, timeout, **kw)


@pytest.fixture
async def running():
    """Start servers with `await running(server_coro)`; all are closed at the end."""
    started = []

    async def start(coro):
        server, port = await coro
        started.append(server)
        return port
    yield start
    for s in started:
        s.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=not-the-real-name", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


# ---- http / https / http_proxy ---------------------------------------------------------

async def test_http_negotiate_paths(running):
    seen = []
    port = await running(servers.serve(servers.http_handler(seen)))
    base = dict(receive="OK", virtualhost="www.tuchao.com")
    ok = await run_check(spec("http", port, url=f"http://{LO}:{port}/.test.html", **base))
    assert ok.ok and ok.detail == "200 OK" and seen[-1] == ("GET", "/.test.html", "www.tuchao.com")
    bad = await run_check(spec("http", port, url=f"http://{LO}:{port}/wrong", **base))
    assert not bad.ok and "receive" in bad.detail
    missing = await run_check(spec("http", port, url=f"http://{LO}:{port}/nope", **base))
    assert not missing.ok and missing.detail.startswith("404")
    redirected = await run_check(spec("http", port, url=f"http://{LO}:{port}/redirect", **base))
    assert redirected.ok and seen[-1][1] == "/.test.html"
    chunked = await run_check(spec("http", port, url=f"http://{LO}:{port}/chunked", receive="abcOK"))
    assert chunked.ok
    head = await run_check(spec("http", port, url=f"http://{LO}:{port}/.test.html", httpmethod="HEAD"))
    assert head.ok and seen[-1][0] == "HEAD"


async def test_http_check_built_from_the_scenario_config(running):
    port = await running(servers.serve(servers.http_handler([])))
    c = parse_config(f"virtual=192.168.18.100:80\n\treal=127.0.0.1:{port} gate\n\trequest=\".test.html\"\n"
                     "\treceive=\"OK\"\n\tvirtualhost=www.tuchao.com\n\tchecktimeout=2\n", "x.cf")
    v = c.virtuals[0]
    assert (await check(v, v.reals[0])).ok


async def test_https_without_verification(running, tls_files):
    port = await running(servers.serve(servers.http_handler([]), ssl=tls_files))
    r = await run_check(spec("https", port, url=f"https://{LO}:{port}/.test.html", receive="OK"))
    assert r.ok, r.detail
    plain = await run_check(spec("http", port, url=f"http://{LO}:{port}/.test.html", receive="OK", timeout=1))
    assert not plain.ok


async def test_http_proxy_sends_absolute_uri(running):
    seen = []
    port = await running(servers.serve(servers.http_handler(seen)))
    r = await run_check(spec("http_proxy", port, url="http://www.example.com/.test.html", receive="OK"))
    assert r.ok and seen[-1] == ("GET", "http://www.example.com/.test.html", "www.example.com")


async def test_timeout_and_refused_are_down_within_bound(running):
    port = await running(servers.serve(servers.silent))
    t0 = time.monotonic()
    r = await run_check(spec("http", port, url=f"http://{LO}:{port}/", timeout=0.5))
    assert not r.ok and "timeout" in r.detail and time.monotonic() - t0 < 3
    closed = await run_check(spec("http", 1, url=f"http://{LO}:1/", timeout=1))
    assert not closed.ok and "Connection" in closed.detail or "refused" in closed.detail.lower()


# ---- connect, simpletcp, nntp ---------------------------------------------------------

async def test_connect(running):
    port = await running(servers.serve(servers.silent))
    assert (await run_check(spec("none", port, kind="connect"))).ok
    assert not (await run_check(spec("none", 1, kind="connect"))).ok


async def test_simpletcp(running):
    async def handler(reader, writer):
        data = await reader.read()
        writer.write(b"hello\nstatus: " + (b"GOOD\n" if data == b"PING\n" else b"BAD\n"))
        await writer.drain()
        writer.close()
    port = await running(servers.serve(handler))
    assert (await run_check(spec("simpletcp", port, request="/PING\\n", receive="status: GOOD"))).ok
    assert not (await run_check(spec("simpletcp", port, request="/PONG\\n", receive="status: GOOD"))).ok


async def test_nntp(running):
    good = await running(servers.serve(servers.nntp_handler("200 news.example ready")))
    bad = await running(servers.serve(servers.nntp_handler("502 go away")))
    assert (await run_check(spec("nntp", good))).ok
    assert not (await run_check(spec("nntp", bad))).ok


# ---- mail ------------------------------------------------------------------------------

async def test_smtp_and_submission(running):
    good = await running(servers.serve(servers.smtp_handler()))
    bad = await running(servers.serve(servers.smtp_handler("554 no service")))
    assert (await run_check(spec("smtp", good))).ok
    assert (await run_check(spec("submission", good))).ok
    assert not (await run_check(spec("smtp", bad))).ok


async def test_pop_and_pops(running, tls_files):
    port = await running(servers.serve(servers.pop_handler()))
    tls = await running(servers.serve(servers.pop_handler(), ssl=tls_files))
    assert (await run_check(spec("pop", port, login="u", passwd="p"))).ok
    assert (await run_check(spec("pop", port))).ok                 # no login: greeting only
    assert not (await run_check(spec("pop", port, login="u", passwd="x"))).ok
    assert (await run_check(spec("pops", tls, login="u", passwd="p"))).ok


async def test_imap_and_imaps(running, tls_files):
    port = await running(servers.serve(servers.imap_handler()))
    tls = await running(servers.serve(servers.imap_handler(), ssl=tls_files))
    assert (await run_check(spec("imap", port, login="u", passwd="p"))).ok
    assert not (await run_check(spec("imap", port, login="u", passwd="x"))).ok
    assert (await run_check(spec("imaps", tls, login="u", passwd="p"))).ok


# ---- ftp, ldap --------------------------------------------------------------------------

async def test_ftp_retrieves_request_and_matches_receive(running):
    port = await running(servers.serve(servers.ftp_handler({"/welcome.msg": b"this is a test file\n"})))
    base = dict(login="anonymous", passwd="ldirectord@localhost")
    assert (await run_check(spec("ftp", port, request="/welcome.msg", receive="test", **base))).ok
    assert not (await run_check(spec("ftp", port, request="/welcome.msg", receive="nothere", **base))).ok
    assert not (await run_check(spec("ftp", port, request="/missing", receive="test", **base))).ok
    assert not (await run_check(spec("ftp", port, request="/welcome.msg", receive="test", login="bob"))).ok


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
    port = _free_port()
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
    port = _free_port()
    proc = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        r = await run_check(spec("smtp", port))
        assert r.ok and r.detail.startswith("220"), r.detail
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_ldap_bind_and_base_search(running, tls_files):
    entries = {"dc=upmc, dc=fr"}
    port = await running(servers.serve(servers.ldap_handler(entries)))
    base = dict(request="/dc=upmc, dc=fr", receive="dc=upmc")
    assert (await run_check(spec("ldap", port, **base))).ok
    assert (await run_check(spec("ldap", port, login="cn=admin", passwd="secret", **base))).ok
    r = await run_check(spec("ldap", port, login="cn=admin", passwd="wrong", **base))
    assert not r.ok and "Bind failed" in r.detail
    assert not (await run_check(spec("ldap", port, request="/dc=other", receive=""))).ok
    assert not (await run_check(spec("ldap", port, request="/dc=upmc, dc=fr", receive="nomatch"))).ok
    tls = await running(servers.serve(servers.ldap_handler(entries), ssl=tls_files))
    assert (await run_check(spec("ldaps", tls, **base))).ok


# ---- udp: dns, sip, radius ----------------------------------------------------------------

async def test_dns_udp(running):
    transport, port = await servers.serve_udp(servers.dns_reply({"x.y.z": "127.0.0.1"}))
    try:
        udp = dict(protocol="udp")
        assert (await run_check(spec("dns", port, request="/x.y.z", receive="127.0.0.1", **udp))).ok
        assert not (await run_check(spec("dns", port, request="/x.y.z", receive="10.0.0.1", **udp))).ok
        assert not (await run_check(spec("dns", port, request="/other.name", receive="127", **udp))).ok
    finally:
        transport.close()
    r = await run_check(spec("dns", port, request="/x.y.z", receive="127", protocol="udp", timeout=0.5))
    assert not r.ok and "refused" in r.detail          # ICMP port unreachable
    mute, mport = await servers.serve_udp(lambda q: None)
    try:
        r = await run_check(spec("dns", mport, request="/x.y.z", receive="127", protocol="udp", timeout=0.5))
        assert not r.ok and "timeout" in r.detail
    finally:
        mute.close()


@pytest.mark.skipif(not shutil.which("dnsmasq"), reason="needs dnsmasq (dnsmasq-base)")
async def test_dns_against_dnsmasq():
    """A real DNS server on a loopback port: A query over UDP and TCP, PTR for an address."""
    port = _free_port()
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


async def test_sip_options_over_udp_and_tcp(running):
    transport, port = await servers.serve_udp(servers.sip_reply())
    transport2, port2 = await servers.serve_udp(servers.sip_reply("SIP/2.0 503 Service Unavailable"))
    try:
        assert (await run_check(spec("sip", port, protocol="udp", login="ldirectord@h"))).ok
        assert not (await run_check(spec("sip", port2, protocol="udp", login="ldirectord@h"))).ok
    finally:
        transport.close()
        transport2.close()

    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
    tcp = await running(servers.serve(handler))
    assert (await run_check(spec("sip", tcp, login="ldirectord@h"))).ok


async def test_radius_accept_reject_and_wrong_secret():
    transport, port = await servers.serve_udp(servers.radius_reply("somesecret", "readuser", "pw"))
    try:
        base = dict(protocol="udp", secret="somesecret", login="readuser")
        ok = await run_check(spec("radius", port, passwd="pw", **base))
        assert ok.ok and ok.detail == "Access-Accept"
        rej = await run_check(spec("radius", port, passwd="nope", **base))
        assert rej.ok and "Reject" in rej.detail      # the server answered: up, as Authen::Radius
        wrong = await run_check(spec("radius", port, passwd="pw", protocol="udp", secret="other", login="readuser"))
        assert not wrong.ok and "authenticator" in wrong.detail
    finally:
        transport.close()


# ---- sql --------------------------------------------------------------------------------

async def test_mysql_login_and_query(running):
    port = await running(servers.serve(servers.mysql_handler()))
    base = dict(login="readuser", passwd="genericpassword")
    r = await run_check(spec("mysql", port, request="/select 1", **base))
    assert r.ok and r.detail == "1 row(s)"
    assert not (await run_check(spec("mysql", port, request="/select 1", login="readuser", passwd="x"))).ok
    assert not (await run_check(spec("mysql", port, request="/drop table x", **base))).ok
    empty = await running(servers.serve(servers.mysql_handler(rows=0)))
    assert not (await run_check(spec("mysql", empty, request="/select 1", **base))).ok
    assert not (await run_check(spec("mysql", port, request="/", **base))).ok   # no request: down


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind((LO, 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(not (os.access("/usr/sbin/mariadbd", os.X_OK) and shutil.which("mariadb-install-db")),
                    reason="needs mariadb-server-core and mariadb-client-core")
async def test_mysql_against_a_real_mariadb():
    """mariadb-install-db + mariadbd on a loopback port; mysql_native_password login and queries."""
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="hadaemon-my-"))
    data = tmp / "data"
    init = tmp / "init.sql"
    init.write_text("CREATE USER 'readuser'@'%' IDENTIFIED BY 'genericpassword';\n"
                    "CREATE DATABASE ld;\nCREATE TABLE ld.director_slave (enabled INT);\n"
                    "INSERT INTO ld.director_slave VALUES (1);\n"
                    "GRANT SELECT ON ld.* TO 'readuser'@'%';\n")
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True, timeout=180)
    port = _free_port()
    proc = subprocess.Popen(["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                             f"--port={port}", f"--bind-address={LO}", f"--socket={tmp}/sock",
                             f"--pid-file={tmp}/pid", f"--init-file={init}", "--skip-log-bin",
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
        shutil.rmtree(tmp, ignore_errors=True)


def _postgres_bin():
    for d in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin"):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/postgres", os.X_OK):
            return d
    return None


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(_postgres_bin() is None or os.geteuid() != 0, reason="needs PostgreSQL binaries and root")
async def test_pgsql_against_a_real_postgres():
    """initdb + postgres on a loopback port (as the postgres user), scram-sha-256 login and queries."""
    import tempfile
    bindir = _postgres_bin()
    tmp_path = Path(tempfile.mkdtemp(prefix="hadaemon-pg-"))
    data = tmp_path / "pg"
    os.chmod(tmp_path, 0o755)
    pwfile = tmp_path / "pw"
    pwfile.write_text("secret\n")
    shutil.chown(tmp_path, "postgres")
    shutil.chown(pwfile, "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/initdb", "-D", str(data), "-U", "checker",
                    "--pwfile", str(pwfile), "--auth=scram-sha-256", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    import socket
    with socket.socket() as s:
        s.bind((LO, 0))
        port = s.getsockname()[1]
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
        shutil.rmtree(tmp_path, ignore_errors=True)


async def test_oracle_is_a_clear_error():
    r = await run_check(spec("oracle", 1521, login="u", request="/select 1"))
    assert not r.ok and "oracle" in r.detail.lower() and "checktype=connect" in r.detail


# ---- external, ping ------------------------------------------------------------------

async def test_external_gets_ldirectord_arguments(tmp_path):
    out = tmp_path / "args"
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {out}\n[ \"$4\" = 8080 ]\n")
    script.chmod(0o755)
    c = parse_config(f"virtual=192.168.18.100:80\n\treal=127.0.0.1:8080 gate\n\tchecktype=external\n"
                     f"\tcheckcommand={script}\n\tchecktimeout=2\n", "x.cf")
    v = c.virtuals[0]
    r = await check(v, v.reals[0])
    assert r.ok and out.read_text().split() == ["192.168.18.100", "80", "127.0.0.1", "8080"]
    c2 = parse_config(c.virtuals[0].line and f"virtual=192.168.18.100:80\n\treal=127.0.0.1:9 gate\n"
                      f"\tchecktype=external\n\tcheckcommand={script}\n", "x.cf")
    assert not (await check(c2.virtuals[0], c2.virtuals[0].reals[0])).ok


async def test_external_timeout_kills_the_command(tmp_path):
    pidfile = tmp_path / "pid"
    script = tmp_path / "slow.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 30\n")
    script.chmod(0o755)
    t0 = time.monotonic()
    r = await run_check(CheckSpec("external", "none", "tcp", LO, 4, 80, 0.5, command=str(script),
                                  args=("1", "2", "3", "4")))
    assert not r.ok and time.monotonic() - t0 < 3
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("external check command still running after its timeout")


@pytest.mark.root
async def test_ping_loopback():
    r = await run_check(CheckSpec("ping", "none", "tcp", LO, 4, 0, 1.0))
    assert r.ok, r.detail


@pytest.mark.root
@pytest.mark.skipif(not (shutil.which("unshare") and shutil.which("nft")), reason="needs unshare and nft")
def test_ping_unanswered_in_private_namespace():
    """In a private network namespace whose nftables drops echo requests, ping is down after its attempts."""
    code = ("import asyncio,subprocess;"
            "subprocess.run(['ip','link','set','lo','up'],check=True);"
            "subprocess.run(['nft','add table inet t; add chain inet t c { type filter hook input priority 0; };"
            " add rule inet t c icmp type echo-reply drop'],check=True);"
            "from hadaemon.core.ldirectord.checks import CheckSpec;from hadaemon.io.checks import run_check;"
            "r=asyncio.run(run_check(CheckSpec('ping','none','tcp','127.0.0.1',4,0,0.3,attempts=2)));"
            "print(r.ok, r.detail)")
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=str(Path(__file__).resolve().parents[2]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("False no echo reply"), p.stdout


# ---- scheduler: concurrency, intervals, results into the health core ----------------------

async def test_scheduler_checks_concurrently_and_feeds_health(running):
    fast = await running(servers.serve(servers.http_handler([])))
    fast2 = await running(servers.serve(servers.http_handler([]), host="127.0.0.2"))
    hung = await running(servers.serve(servers.silent))
    text = ("checktimeout=1\ncheckinterval=1\nquiescent=yes\nvirtual=10.9.0.1:80\n"
            f"\treal=127.0.0.1:{fast} gate\n\treal=127.0.0.2:{fast2} gate 3\n\treal=127.0.0.1:{hung} gate\n"
            "\trequest=\".test.html\"\n\treceive=\"OK\"\n\tservice=http\n")
    c = parse_config(text, "x.cf")
    plan = make_plan(c)
    state = {"s": initial_state(c, plan=plan)}
    batches = []

    def on_results(results, maintenance, now):
        batches.append(results)
        state["s"], _ = apply_results(plan, state["s"], results, now)

    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    t0 = time.monotonic()
    await asyncio.sleep(3.2)
    sched.stop()
    await asyncio.wait_for(task, 5)
    per_real = {}
    for b in batches:
        for r in b:
            per_real.setdefault(r.pair[1], []).append(r)
    # the two answering reals are checked about once a second; the hung one times out (1 s) each time
    assert 2 <= len(per_real[f"127.0.0.1:{fast}"]) <= 5
    assert 2 <= len(per_real[f"127.0.0.2:{fast2}"]) <= 5
    assert all(not r.ok for r in per_real[f"127.0.0.1:{hung}"]) and per_real[f"127.0.0.1:{hung}"]
    weights = {k: d.weight for k, d in next(iter(wanted_table(c, state["s"]).values())).dests.items()}
    assert weights == {f"127.0.0.1:{fast}": 1, f"127.0.0.2:{fast2}": 3, f"127.0.0.1:{hung}": 0}
    assert time.monotonic() - t0 < 10


async def test_check_all_once_runs_in_parallel(running):
    hung = await running(servers.serve(servers.silent))
    reals = "".join(f"\treal=127.0.0.{i}:{hung} gate\n" for i in range(1, 21))
    c = parse_config(f"checktimeout=1\nvirtual=10.9.0.1:80\n{reals}\tservice=http\n", "x.cf")
    t0 = time.monotonic()
    results = await check_all_once(make_plan(c))
    elapsed = time.monotonic() - t0
    assert len(results) == 20 and not any(r.ok for r in results)
    assert elapsed < 5, f"20 one-second timeouts took {elapsed:.1f}s: not concurrent"


async def test_maintenance_dir_forces_down(running, tmp_path):
    fast = await running(servers.serve(servers.http_handler([])))
    mdir = tmp_path / "maint"
    mdir.mkdir()
    (mdir / f"127.0.0.1:{fast}").touch()
    c = parse_config(f"checkinterval=1\nmaintenancedir={mdir}\nvirtual=10.9.0.1:80\n"
                     f"\treal=127.0.0.1:{fast} gate\n\treal=127.0.0.2:{fast} gate\n"
                     "\trequest=\".test.html\"\n\treceive=\"OK\"\n", "x.cf")
    plan = make_plan(c)
    seen = {"maint": {}, "checked": set()}

    def on_results(results, maintenance, now):
        seen["maint"] = maintenance
        seen["checked"].update(r.pair[1] for r in results)

    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    await asyncio.sleep(2.2)
    sched.stop()
    await asyncio.wait_for(task, 5)
    assert seen["maint"] == {(v, r): r == f"127.0.0.1:{fast}" for v, r in plan.targets}
    assert seen["checked"] == {f"127.0.0.2:{fast}"}


def test_spec_timeout_override():
    s = spec("http", 80, timeout=2)
    assert replace(s, timeout=5).timeout == 5


async def test_check_workers_share_the_checks(running):
    """Two checker processes, sharded by real id: every real is checked, results reach the parent."""
    from hadaemon.io.checks.worker import CheckWorkers
    fast = await running(servers.serve(servers.http_handler([])))
    hung = await running(servers.serve(servers.silent))
    # 12 reals on 127.0.0.x: only 127.0.0.1 has listeners (fast, or hung for x = 3, 6, ...),
    # the others refuse; what matters is that both shards check their share and report back
    reals = "".join(f"\treal=127.0.0.{i}:{hung if i % 3 == 0 else fast} gate\n" for i in range(1, 13))
    c = parse_config(f"checktimeout=1\ncheckinterval=1\nvirtual=10.9.0.1:80\n{reals}"
                     "\trequest=\".test.html\"\n\treceive=\"OK\"\n", "x.cf")
    plan = make_plan(c)
    state = {"s": initial_state(c, plan=plan)}
    seen = set()

    def on_results(results, maintenance, now):
        seen.update(r.pair for r in results)
        state["s"], _ = apply_results(plan, state["s"], results, now)

    from hadaemon.io.checks.scheduler import shard_of
    assert {shard_of(ident, 2) for ident in plan.groups} == {0, 1}
    workers = CheckWorkers(2, on_results)
    await workers.start(c)
    try:
        for _ in range(100):
            if len(seen) == len(plan.targets):
                break
            await asyncio.sleep(0.1)
        assert seen == set(plan.targets)
        # a worker that dies is started again and its share keeps being checked
        victim = workers.procs[0].pid
        os.kill(victim, 9)
        seen.clear()
        for _ in range(100):
            if len(seen) == len(plan.targets):
                break
            await asyncio.sleep(0.1)
        assert workers.restarts == 1 and workers.procs[0].pid != victim
    finally:
        await workers.stop()
    assert seen == set(plan.targets)
    assert state["s"].get(("tcp:10.9.0.1:80", f"127.0.0.1:{fast}")).up
    assert not state["s"].get(("tcp:10.9.0.1:80", f"127.0.0.3:{hung}")).up
    assert all(p.returncode is not None for p in workers.procs)


def _has_ipv6_loopback() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_real_server_from_a_virtual6_block(running):
    port = await running(servers.serve(servers.http_handler([]), host="::1"))
    c = parse_config(f"virtual6=[2001:db8::5]:80\n\treal6=[::1]:{port} masq\n\trequest=\".test.html\"\n"
                     "\treceive=\"OK\"\n\tchecktimeout=2\n", "x.cf")
    v = c.virtuals[0]
    r = await check(v, v.reals[0])
    assert r.ok, r.detail
    assert (await check(v, v.reals[0], kind="connect")).ok
    if os.geteuid() == 0:
        assert (await check(v, v.reals[0], kind="ping")).ok


@pytest.mark.slow
async def test_scheduler_honours_each_virtuals_checkinterval(running):
    fast = await running(servers.serve(servers.http_handler([])))
    c = parse_config(f"fork=yes\nvirtual=10.9.0.1:80\n\treal=127.0.0.1:{fast} gate\n\tcheckinterval=1\n"
                     f"\trequest=\".test.html\"\n\treceive=\"OK\"\n"
                     f"virtual=10.9.0.2:80\n\treal=127.0.0.1:{fast} masq\n\tcheckinterval=3\n"
                     f"\trequest=\".test.html\"\n\treceive=\"OK\"\n", "x.cf")
    plan = make_plan(c)
    assert len(plan.groups) == 2           # different forwarding method: two ldirectord real ids
    counts = {}

    def on_results(results, maintenance, now):
        for r in results:
            counts[r.pair[0]] = counts.get(r.pair[0], 0) + 1

    sched = CheckScheduler(plan, on_results, flush_interval=0.05)
    task = asyncio.ensure_future(sched.run())
    await asyncio.sleep(6.5)
    sched.stop()
    await asyncio.wait_for(task, 5)
    assert 5 <= counts["tcp:10.9.0.1:80"] <= 8
    assert 2 <= counts["tcp:10.9.0.2:80"] <= 3
