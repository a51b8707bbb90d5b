"""Every checker against a small server on loopback: success, failure and timeout paths."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hadaemon.core.director.checks import CheckSpec  # noqa: E402
from hadaemon.core.director.config import parse_config  # noqa: E402
from hadaemon.io.checks import check, run_check  # noqa: E402

import servers  # noqa: E402
from servers import LO, spec  # noqa: E402

running = servers.running          # fixtures shared with the other check tests
tls_files = servers.tls_files


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
            "from hadaemon.core.director.checks import CheckSpec;from hadaemon.io.checks import run_check;"
            "r=asyncio.run(run_check(CheckSpec('ping','none','tcp','127.0.0.1',4,0,0.3,attempts=2)));"
            "print(r.ok, r.detail)")
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=str(Path(__file__).resolve().parents[2]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("False no echo reply"), p.stdout


def test_spec_timeout_override():
    s = spec("http", 80, timeout=2)
    assert replace(s, timeout=5).timeout == 5


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
