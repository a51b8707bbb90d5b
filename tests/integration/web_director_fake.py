"""A stand-in director for the ha-web tests: the real org.hadaemon.Director1 export (hadaemon/bus/director.py)
over an in-memory table of one virtual service and two real servers; Drain / SetWeight / Restore change it
and signal as ha-ldirectord does. (ha-ldirectord itself is tested in test_director_*.)

    python -m tests.integration.web_director_fake     # on DBUS_SYSTEM_BUS_ADDRESS; prints "ready"
"""
from __future__ import annotations

import asyncio
import signal
import sys
import time

from hadaemon.core.errors import BadRequest


class _Backend:
    name = "nft"


class FakeDirector:
    VIP = "tcp:10.9.0.200:80"

    def __init__(self):
        self.backend = _Backend()
        self.config_path = "/etc/ha.d/ldirectord.cf"
        self.reloads = 0
        self.listeners: list = []
        # real -> [health, weight, configured, overridden]
        self.reals = {"10.9.0.11:80": ["up", 1, 1, False], "10.9.0.12:80": ["up", 3, 3, False]}

    def status_line(self) -> str:
        up = sum(1 for r in self.reals.values() if r[0] == "up")
        return f"1 virtual service, {up}/{len(self.reals)} real servers up, backend nft"

    def virtual_rows(self):
        return [(self.VIP, "tcp", "10.9.0.200", 80, 0, "wrr", 0, "", "negotiate", "http")]

    def real_rows(self):
        return [(self.VIP, real, "gate", h, w, c, True, "HTTP 200 OK", time.time(), o)
                for real, (h, w, c, o) in self.reals.items()]

    def _find(self, virtual, real):
        if virtual not in (self.VIP, "10.9.0.200:80"):
            raise BadRequest("UnknownVirtual", f"no virtual service '{virtual}' (virtual services: {self.VIP})")
        if real not in self.reals:
            raise BadRequest("UnknownReal", f"no real server '{real}' in {self.VIP} (reals: {', '.join(self.reals)})")
        return self.reals[real]

    def _emit(self, *args):
        for f in list(self.listeners):
            f(*args)

    async def set_weight(self, virtual, real, weight):
        r = self._find(virtual, real)
        r[0], r[1], r[3] = ("drained" if weight == 0 else "up"), weight, True
        self._emit("admin")
        self._emit("real", self.VIP, real, r[0], r[1])

    async def restore(self, virtual, real):
        r = self._find(virtual, real)
        r[0], r[1], r[3] = "up", r[2], False
        self._emit("admin")
        self._emit("real", self.VIP, real, r[0], r[1])

    async def reload(self):
        self.reloads += 1
        self._emit("reload", self.config_path)

    def listing(self) -> str:
        return "\n".join(f"{self.VIP} -> {real} {w}" for real, (_h, w, _c, _o) in self.reals.items())


async def main() -> int:
    from hadaemon.bus.director import export

    bus = await export(FakeDirector())
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    bus.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
