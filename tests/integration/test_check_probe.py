"""The callback fast path for plain-HTTP checks (hadaemon.io.checks.probe) gives check_http's verdicts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hadaemon.io.checks import run_check  # noqa: E402
from hadaemon.io.checks.probe import Prober, probe_for  # noqa: E402

import servers  # noqa: E402
from servers import LO, spec  # noqa: E402

running = servers.running


async def _probe(s):
    """Run one check on a Prober; returns (ok, detail), ok None meaning 'redirect: use the full path'."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    prober = Prober(loop, lambda token, ok, detail, duration: done.set_result((ok, detail)))
    try:
        p = probe_for(s)
        assert p is not None, "a plain-HTTP check to an address must take the fast path"
        prober.start(p, "t")
        return await asyncio.wait_for(done, s.timeout + 5)
    finally:
        prober.close()


async def test_probe_verdicts_equal_run_check(running):
    port = await running(servers.serve(servers.http_handler([])))
    hung = await running(servers.serve(servers.silent))
    refused = servers.free_port()
    cases = [
        spec("http", port, url=f"http://{LO}:{port}/.test.html", receive="OK", virtualhost="www.tuchao.com"),
        spec("http", port, url=f"http://{LO}:{port}/.test.html", receive="OK", httpmethod="HEAD"),
        spec("http", port, url=f"http://{LO}:{port}/wrong", receive="OK"),
        spec("http", port, url=f"http://{LO}:{port}/nope", receive="OK"),
        spec("http", port, url=f"http://{LO}:{port}/chunked", receive="abcOK"),
        spec("http", refused, url=f"http://{LO}:{refused}/.test.html", receive="OK"),
        spec("http", hung, url=f"http://{LO}:{hung}/.test.html", receive="OK", timeout=0.5),
    ]
    for s in cases:
        fast = await _probe(s)
        full = await run_check(s)
        assert fast == (full.ok, full.detail), (s.url, fast, full)
    # both verdicts are seen, so the comparison above is not vacuous
    assert (await _probe(cases[0]))[0] is True and (await _probe(cases[2]))[0] is False


async def test_probe_leaves_redirects_to_the_full_path(running):
    port = await running(servers.serve(servers.http_handler([])))
    s = spec("http", port, url=f"http://{LO}:{port}/redirect", receive="OK")
    ok, _ = await _probe(s)
    assert ok is None
    assert (await run_check(s)).ok


def test_probe_not_used_for_https_or_host_names():
    assert probe_for(spec("https", 443, url=f"https://{LO}:443/.test.html", receive="OK")) is None
    assert probe_for(spec("http", 80, url="http://localhost:80/.test.html", receive="OK")) is None
