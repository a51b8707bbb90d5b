"""bench/heartbeat.py's Cutter (the netlink cut of the detection benchmark): a namespace it cannot use
leaves no socket open while its error is still being handled (the traceback holds the half-made
Cutter: in the bench, during the Cluster's teardown; an open netlink socket keeps a deleted namespace
alive) and the thread back in its own namespace."""
from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.root]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "heartbeat.py"


def _bench():
    spec = importlib.util.spec_from_file_location("hb_bench_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fds():
    return sorted(os.listdir("/proc/self/fd"))


@pytest.fixture
def bare_netns():
    name = f"hbcut{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def test_a_namespace_without_the_links_leaves_no_socket_open(bare_netns):
    bench = _bench()
    cluster = SimpleNamespace(netns=lambda x: bare_netns, links=1)   # only lo there: no eth0
    own = os.readlink("/proc/thread-self/ns/net")
    before = _fds()
    with pytest.raises(OSError) as err:
        bench.Cutter(cluster, ["node1"])
    assert _fds() == before, err.traceback   # (the traceback still refers to the half-made Cutter)
    assert os.readlink("/proc/thread-self/ns/net") == own
    missing = SimpleNamespace(netns=lambda x: bare_netns if x == "node1" else "hbcut-no-such-ns", links=0)
    with pytest.raises(OSError) as err:
        bench.Cutter(missing, ["node1", "node2"])   # node1's socket is made, node2's namespace is missing
    assert _fds() == before, err.traceback
