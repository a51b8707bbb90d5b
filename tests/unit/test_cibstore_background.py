"""CibStore(background=True): writes from a thread; saves coalesce; when_saved / flush wait for the disk."""
from __future__ import annotations

import asyncio
import os

from hadaemon.io.cibstore import CibStore


def test_background_saves_reach_the_disk_newest_last(tmp_path):
    store = CibStore(str(tmp_path / "state"), keep=5, background=True)
    store.check()
    assert store.save("<cib epoch='1'/>")
    assert not store.save("<cib epoch='1'/>")          # the same text queued: nothing new
    for i in range(2, 30):
        assert store.save(f"<cib epoch='{i}'/>")
    assert store.flush(10)
    assert CibStore(str(tmp_path / "state")).load() == "<cib epoch='29'/>"
    assert not store.save("<cib epoch='29'/>")          # what is on disk already
    store.close()


def test_background_inputs_numbered_at_once_and_written(tmp_path):
    store = CibStore(str(tmp_path / "state"), keep=5, background=True)
    paths = []
    for i in range(8):
        paths.append(store.archive_input(f"<cib n='{i}'/>"))
        assert store.archive_input(f"<cib n='{i}'/>") == paths[-1]   # the same input: once
    assert [os.path.basename(p) for p in paths] == [f"pe-input-{i}.xml" for i in range(8)]
    store.close()
    assert [os.path.basename(p) for p in store.inputs()] == [f"pe-input-{i}.xml" for i in range(3, 8)]
    with open(paths[-1]) as f:
        assert f.read() == "<cib n='7'/>"


def test_when_saved_resolves_after_the_write(tmp_path):
    store = CibStore(str(tmp_path / "state"), background=True)
    store.check()

    async def main():
        loop = asyncio.get_running_loop()
        store.save("<cib epoch='7'/>")
        await asyncio.wait_for(store.when_saved(loop), 10)
        with open(store.path) as f:
            assert f.read() == "<cib epoch='7'/>"
        done = store.when_saved(loop)                   # nothing queued: done at once
        assert done.done()

    asyncio.run(main())
    store.close()


def test_foreground_store_unchanged(tmp_path):
    store = CibStore(str(tmp_path / "state"))
    store.check()
    assert store.save("<cib/>")
    loop = asyncio.new_event_loop()
    try:
        assert store.when_saved(loop).done()
    finally:
        loop.close()
    with open(store.path) as f:
        assert f.read() == "<cib/>"
