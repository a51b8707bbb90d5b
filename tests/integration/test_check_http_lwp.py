"""HTTP answers judged as ldirectord's LWP judges them: the same canned answers go to Perl's LWP (ldirectord's
check_http: is_success and the receive regex on the content), to check_http and to the probe fast path,
and the three verdicts must agree. Plus: a body of 1-byte chunks costs linear time."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hadaemon.io.checks import run_check  # noqa: E402
from hadaemon.io.checks.http import _Exchange  # noqa: E402

import servers  # noqa: E402
from servers import LO, spec  # noqa: E402
from test_check_probe import _probe  # noqa: E402

running = servers.running

OK_BODY = b"Content-Length: 3\r\nConnection: close\r\n\r\nOK\n"
ANSWERS = {
    "plain 200": b"HTTP/1.1 200 OK\r\n" + OK_BODY,
    "status 999": b"HTTP/1.1 999 ???\r\n" + OK_BODY,            # LWP: not a status line -> HTTP/0.9, 200
    "status 999 no OK": b"HTTP/1.1 999 ???\r\nContent-Length: 3\r\n\r\nNO\n",
    "100 KB header line": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100000 + b"\r\n" + OK_BODY,
    "8 KB header line": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 8000 + b"\r\n" + OK_BODY,
    "100 KB status line": b"HTTP/1.1 200 OK" + b"a" * 100000 + b"\r\n" + OK_BODY,
    "130 header lines": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(130)) + OK_BODY,
    "120 header lines": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + OK_BODY,
    "LF only": b"HTTP/1.1 200 OK\nContent-Length: 3\n\nOK\n",
    "junk header line": b"HTTP/1.1 200 OK\r\nthis is not a header\r\n" + OK_BODY,
    "no status line": b"OK, here you are\r\n",
    "TLS alert": b"\x15\x03\x01\x00\x02\x02\x46",
    "500": b"HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nOK\n",
    "no length, close": b"HTTP/1.0 200 OK\r\n\r\nall OK here",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nO\r\n1\r\nK\r\n0\r\n\r\n",
    "chunked with extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=1\r\nOK\r\n0\r\n\r\n",
    "gzip, chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n",
    "chunked, gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nOK\r\n0\r\n\r\n",
    "truncated body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nOK",
    "truncated chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n5\r\nab",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\nzz\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 3\r\n\r\nOK\n",
    "closed at once": b"",
}

LWP = r"""
use LWP::UserAgent;
my $ua = LWP::UserAgent->new(timeout => 5);
my $res = $ua->request(HTTP::Request->new('GET', $ARGV[0], HTTP::Headers->new(Host => 'x')));
my $recstr = $ARGV[1];
print(($res->is_success && (!($recstr =~ /.+/) || $res->content =~ /$recstr/)) ? "up\n" : "down\n");
"""


def lwp_available() -> bool:
    return bool(shutil.which("perl")) and subprocess.run(["perl", "-MLWP::UserAgent", "-e", "1"],
                                                         capture_output=True).returncode == 0


def canned(answer: bytes):
    async def handler(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
    return handler


@pytest.mark.skipif(not lwp_available(), reason="perl LWP (Debian's libwww-perl, pulled in by ldirectord) is absent")
@pytest.mark.parametrize("receive", ["OK", ""])
async def test_verdicts_equal_lwp(running, receive):
    differ = []
    for name, answer in ANSWERS.items():
        port = await running(servers.serve(canned(answer)))
        url = f"http://{LO}:{port}/.test.html"
        cp = await asyncio.to_thread(subprocess.run, ["perl", "-e", LWP, url, receive], capture_output=True,
                                     text=True, timeout=30)
        lwp = cp.stdout.strip() == "up"
        s = spec("http", port, url=url, receive=receive, timeout=5.0)
        full = await run_check(s)
        fast = await _probe(s)
        if not (lwp == full.ok == fast[0]):
            differ.append((name, "lwp", lwp, "check_http", full.ok, full.detail, "probe", fast))
    assert not differ, differ


def _decode_seconds(body_size: int, read_size: int) -> float:
    chunks = b"".join(b"1\r\n" + b"x" + b"\r\n" for _ in range(body_size)) + b"0\r\n\r\n"
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    ex = _Exchange(False)
    t0 = time.process_time()
    res = None
    for i in range(0, len(data), read_size):
        res = ex.feed(data[i:i + read_size], False)
    elapsed = time.process_time() - t0
    assert res is not None and res.body == b"x" * body_size
    return elapsed


def test_chunked_decoding_is_linear():
    """A 1 MB body of 1-byte chunks read 1 KB at a time (the 'costs 80 % of a core' case): 4x the body
    costs about 4x the time, not 16x (quadratic). Ratio, not speed: robust on a loaded machine."""
    small = min(_decode_seconds(65536, 1024) for _ in range(3))
    large = min(_decode_seconds(4 * 65536, 1024) for _ in range(3))
    assert large < 10 * max(small, 1e-3), (small, large)
