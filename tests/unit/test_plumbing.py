"""daemons/plumbing: SIGHUP brackets a reload (sync or async) with RELOADING=1 / READY=1, SIGTERM stops."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile

from hadaemon.daemons.plumbing import Notifier, Runtime


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="notify-")
        self.path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)

    def messages(self):
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


async def _until(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def _run(body):
    ns = NotifySocket()
    try:
        async def main():
            rt = Runtime("test", Notifier(ns.path))
            try:
                await body(rt, ns)
            finally:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
                await rt.close()
        asyncio.run(main())
    finally:
        ns.close()


def test_sighup_with_a_plain_reload_sends_reloading_then_ready_with_the_status():
    async def body(rt, ns):
        calls = []
        rt.install_signals(reload=lambda: calls.append("reload"))
        rt.ready("2 nodes")
        await _until(lambda: ns.messages() == ["READY=1\nSTATUS=2 nodes"])
        os.kill(os.getpid(), signal.SIGHUP)
        got = []
        await _until(lambda: got.extend(ns.messages()) or len(got) >= 2)
        assert calls == ["reload"]
        assert got == ["RELOADING=1", "READY=1\nSTATUS=2 nodes"]
    _run(body)


def test_sighup_with_a_coroutine_reload_sends_ready_only_when_it_has_finished():
    async def body(rt, ns):
        release = asyncio.Event()
        done = []

        async def reload():
            await release.wait()
            rt.status("reloaded")
            done.append(True)

        rt.install_signals(reload=reload)
        rt.ready("old")
        await _until(lambda: ns.messages() == ["READY=1\nSTATUS=old"])
        os.kill(os.getpid(), signal.SIGHUP)
        await _until(lambda: ns.messages() == ["RELOADING=1"])
        await asyncio.sleep(0.2)
        assert ns.messages() == [] and not done, "READY=1 before the reload finished"
        release.set()
        got = []
        await _until(lambda: got.extend(ns.messages()) or len(got) >= 2)
        assert got == ["STATUS=reloaded", "READY=1\nSTATUS=reloaded"]
    _run(body)


def test_a_failing_coroutine_reload_still_sends_ready_and_is_logged(caplog):
    async def body(rt, ns):
        async def reload():
            raise RuntimeError("bad reload")

        rt.install_signals(reload=reload)
        os.kill(os.getpid(), signal.SIGHUP)
        got = []
        await _until(lambda: got.extend(ns.messages()) or len(got) >= 2)
        assert got == ["RELOADING=1", "READY=1"]
        await _until(lambda: "bad reload" in caplog.text)
    _run(body)


def test_sigterm_sets_stop():
    async def body(rt, ns):
        rt.install_signals()
        assert not rt.stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(rt.stop.wait(), 10)
    _run(body)
