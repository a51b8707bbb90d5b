"""quick_switch (hadaemon.daemons.crmd_sequence): counted users of a short GIL switch interval and of the
collector held off; the interval and the collector come back after the last user, the collector also
once GC_HOLD_MAX_S passed."""
from __future__ import annotations

import asyncio
import gc
import sys

from hadaemon.daemons import crmd_sequence
from hadaemon.daemons.crmd_sequence import quick_switch


def test_counted_users_and_what_comes_back():
    before = sys.getswitchinterval()
    assert gc.isenabled()

    async def main():
        quick_switch(True, 0.0002)
        quick_switch(True)                     # a second user (0.1 ms)
        assert sys.getswitchinterval() <= 0.0002 and not gc.isenabled()
        quick_switch(False)                    # one left: still short, still off
        assert sys.getswitchinterval() <= 0.0002 and not gc.isenabled()
        quick_switch(False)
        assert sys.getswitchinterval() == before and gc.isenabled()
        quick_switch(False)                    # one too many: nothing changes
        assert sys.getswitchinterval() == before and gc.isenabled()

    asyncio.run(main())


def test_the_collector_comes_back_after_its_bound(monkeypatch):
    monkeypatch.setattr(crmd_sequence, "GC_HOLD_MAX_S", 0.05)
    before = sys.getswitchinterval()

    async def main():
        quick_switch(True)
        assert not gc.isenabled()
        await asyncio.sleep(0.3)
        assert gc.isenabled()                  # bound passed: collecting again
        assert sys.getswitchinterval() < before   # the short interval stays until the last user ends
        quick_switch(False)
        assert sys.getswitchinterval() == before and gc.isenabled()
        # a timer of an ended spell does not act on the next one
        quick_switch(True)
        crmd_sequence._gc_bound(crmd_sequence._Quick.era - 1)
        assert not gc.isenabled()
        quick_switch(False)

    asyncio.run(main())
    assert gc.isenabled()
