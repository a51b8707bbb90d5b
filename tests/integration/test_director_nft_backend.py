"""The nftables backend against the real nft in a throw-away namespace: every diff between generated
tables applies, read() returns the wanted table, other tables are untouched, clear() removes ours."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hadaemon.core.director.lvs_table import Destination, VirtualService, diff, make_table
from hadaemon.io.lvs.nft import NftBackend, render

pytestmark = [pytest.mark.root]


@pytest.fixture
def netns():
    name = f"hdldnft{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(netns, fn, *args):
    """Run fn(*args) of this module inside the namespace (a child python via ip netns exec); its result."""
    repo = Path(__file__).resolve().parents[2]
    cp = subprocess.run(["ip", "netns", "exec", netns, sys.executable, __file__, fn.__name__, *map(str, args)],
                        capture_output=True, text=True, timeout=120, cwd=repo,
                        env=dict(os.environ, PYTHONPATH=str(repo)))
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.strip()


def random_table(rng):
    services = [
        VirtualService("tcp", "10.0.0.1", 80, scheduler=rng.choice(["wrr", "rr", "sh", "dh"])),
        VirtualService("tcp", "10.0.0.1", 443, scheduler="wlc", persistent=rng.choice([None, 300]),
                       netmask=rng.choice([None, "255.255.255.0"])),
        VirtualService("udp", "10.0.0.2", 53, scheduler="rr", flags=rng.choice([(), ("ops",)])),
        VirtualService("fwm", fwmark=rng.choice([1, 2]), scheduler="wrr"),
        VirtualService("tcp", "2001:db8::1", 80, scheduler="wrr", persistent=rng.choice([None, 60]),
                       netmask=rng.choice([None, "64"])),
        VirtualService("fwm", fwmark=3, family="inet6", scheduler="sh", flags=("sh-port",)),
    ]
    entries = []
    for svc in rng.sample(services, rng.randint(0, len(services))):
        v6 = svc.family == "inet6"
        pool = (["2001:db8::10", "2001:db8::11", "::1"] if v6 else ["10.1.0.1", "10.1.0.2", "10.1.0.3", "127.0.0.1"])
        port = 0 if svc.protocol == "fwm" and rng.random() < 0.5 else rng.choice([80, 8080])
        dests = [Destination(a, port, rng.choice(["gate", "masq", "ipip"]), rng.randint(0, 4),
                             upper=rng.choice([0, 50]))
                 for a in rng.sample(pool, rng.randint(0, len(pool)))]
        entries.append((svc, dests))
    return make_table(entries)


def _roundtrip(seed):
    rng = random.Random(seed)
    backend = NftBackend()
    subprocess.run(["nft", "add", "table", "ip", "other"], check=True)   # someone else's table
    current = backend.read()
    assert current == {}
    steps = 0
    for _ in range(12):
        wanted = random_table(rng)
        backend.apply(diff(current, wanted))
        got = backend.read()
        if got != wanted:
            return f"seed {seed}: read() != wanted\n{got}\n{wanted}\n" + render(wanted, "inet")
        current = got
        steps += 1
    backend.clear(list(current))
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if backend.read() != {} or "hadaemon" in tables or "table ip other" not in tables:
        return f"clear() left {tables}"
    return f"ok {steps}"


def test_random_diffs_apply_and_read_back(netns):
    for seed in range(4):
        assert in_ns(netns, _roundtrip, seed) == "ok 12"


def _weights_to_ranges():
    svc = VirtualService("tcp", "10.0.0.1", 80)
    t = make_table([(svc, [Destination("10.1.0.1", 80, "gate", 1), Destination("10.1.0.2", 80, "gate", 3),
                           Destination("10.1.0.3", 80, "gate", 0)])])
    NftBackend().write(t)
    return subprocess.run(["nft", "list", "chain", "ip", "hadaemon", "s0"], capture_output=True, text=True).stdout


def test_weights_become_numgen_ranges_and_weight_0_is_left_out(netns):
    text = in_ns(netns, _weights_to_ranges)
    assert "numgen inc mod 4 vmap { 0 : jump s0d0, 1-3 : jump s0d1 }" in text, text
    assert "s0d2" not in text


if __name__ == "__main__":   # the namespace side of in_ns()
    name, *argv = sys.argv[1:]
    print({"_roundtrip": lambda: _roundtrip(int(argv[0])), "_weights_to_ranges": _weights_to_ranges}[name]())
