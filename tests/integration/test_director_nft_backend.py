"""The nftables backend against the real nft in a throw-away namespace: every diff between generated
tables applies, read() returns the wanted table, other tables are untouched, clear() removes ours."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hadaemon.core.director.lvs_table import Destination, VirtualService, diff, make_table, with_weight
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
    return "\n".join(subprocess.run(["nft", "list", what, "ip", "hadaemon", name], capture_output=True,
                                    text=True).stdout for what, name in (("chain", "s0n"), ("map", "s0m")))


def test_weights_become_numgen_ranges_and_weight_0_is_left_out(netns):
    text = in_ns(netns, _weights_to_ranges)
    assert "numgen inc mod 4 vmap @s0m" in text, text
    assert "elements = { 0 : jump s0d0, 1 : jump s0d1, 2 : jump s0d1, 3 : jump s0d1 }" in " ".join(text.split()), text
    assert "s0d2" not in text


def kernel_weights(family="ip"):
    """{service chain: (modulus of its pick rule, {dest key: values it owns in the map})} from the kernel,
    with a check that each map covers 0..modulus-1 exactly once."""
    import json
    import re

    from hadaemon.io.lvs.nft import _parse_dest
    data = json.loads(subprocess.run(["nft", "-j", "list", "table", family, "hadaemon"], capture_output=True,
                                     text=True, check=True).stdout)["nftables"]
    text = subprocess.run(["nft", "list", "table", family, "hadaemon"], capture_output=True, text=True).stdout
    dest_of = {}
    for o in data:
        rule = o.get("rule")
        if rule and rule.get("comment", "").startswith("hadaemon-dest "):
            dest_of[rule["chain"]] = _parse_dest(rule["comment"]).key
    out = {}
    for o in data:
        m = o.get("map")
        if not m or not m["name"].endswith("m"):
            continue
        chain = m["name"][:-1]
        found = re.search(rf"chain {chain}n {{\n(?:\s*)(?:numgen inc|jhash \S+ \S+) mod (\d+) vmap @{chain}m", text)
        mod = int(found.group(1)) if found else 0
        owned, values = {}, []
        for key, verdict in m.get("elem", []):
            lo, hi = (key["range"] if isinstance(key, dict) else (key, key))
            values.extend(range(lo, hi + 1))
            dk = dest_of[verdict["jump"]["target"]]
            owned[dk] = owned.get(dk, 0) + hi - lo + 1
        if sorted(values) != list(range(mod)):
            return f"map {m['name']} does not cover 0..{mod - 1}: {sorted(values)[:20]}"
        out[chain] = (mod, owned)
    return out


def _in_place(seed):
    """Random weight changes, reals added and removed on fixed services, applied without reading back in
    between: every apply is made in place (no table rewrite), and the kernel's maps give each real
    exactly its weight; a service change rewrites once, then changes are in place again."""
    rng = random.Random(seed)
    svcs = [VirtualService("tcp", "10.0.0.1", 80, scheduler="wrr"),
            VirtualService("tcp", "10.0.0.1", 443, scheduler="sh", persistent=300, netmask="255.255.255.0"),
            VirtualService("fwm", fwmark=4, scheduler="wrr", persistent=60),
            VirtualService("udp", "10.0.0.1", 53, scheduler="wrr")]        # weights of thousands: an interval map
    pool = [f"10.1.{i // 200}.{i % 200 + 1}" for i in range(60)]
    table = make_table([(s, [Destination(a, 0 if s.protocol == "fwm" else 80, rng.choice(["gate", "masq"]),
                                         rng.randint(0, 3) * (6000 if s.protocol == "udp" else 1)) for a in pool[:20]])
                        for s in svcs])
    backend = NftBackend()
    backend.apply(diff({}, table))
    writes = backend.writes
    for step in range(40):
        new = {}
        for key, e in table.items():
            dests = dict(e.dests)
            for _ in range(rng.randint(1, 6)):
                a = rng.choice(pool)
                port = 0 if e.service.protocol == "fwm" else 80
                k = f"{a}:{port}"
                if k in dests and rng.random() < 0.2:
                    del dests[k]
                else:
                    big = e.service.protocol == "udp"
                    dests[k] = Destination(a, port, rng.choice(["gate", "masq", "ipip"]),
                                           rng.choice([0, 0, 1, 1, 2, 5]) * (6000 if big else 1))
            new[key] = (e.service, dests.values())
        wanted = make_table(new.values())
        backend.apply(diff(table, wanted))
        if backend.writes != writes:
            return f"step {step}: the table was rewritten for destination changes"
        table = wanted
        got = kernel_weights()
        if isinstance(got, str):
            return f"step {step}: {got}"
        for n, key in enumerate(sorted(table)):
            mod, owned = got[f"s{n}"]
            want = {k: d.weight for k, d in table[key].dests.items() if d.weight > 0}
            if owned != want or mod != sum(want.values()):
                return f"step {step}: {key}: kernel {mod} {owned} != {want}"
    if backend.read() != table:
        return "read() != the table applied in place"
    # a service changed (a reload): one rewrite, then in place again
    edited = dict(table)
    e = edited[svcs[0].key]
    edited[svcs[0].key] = type(e)(VirtualService("tcp", "10.0.0.1", 80, scheduler="rr"), e.dests)
    backend.apply(diff(table, edited))
    again = with_weight(edited, svcs[0].key, sorted(e.dests)[0], 7)
    backend.apply(diff(edited, again))
    if backend.writes != writes + 1 or backend.read() != again:
        return f"after a service edit: writes {backend.writes - writes}, read {backend.read() == again}"
    backend.clear(list(again))
    return "ok"


def test_destination_changes_are_made_in_place(netns):
    for seed in range(2):
        assert in_ns(netns, _in_place, seed) == "ok"


if __name__ == "__main__":   # the namespace side of in_ns()
    name, *argv = sys.argv[1:]
    print({"_roundtrip": lambda: _roundtrip(int(argv[0])), "_weights_to_ranges": _weights_to_ranges,
           "_in_place": lambda: _in_place(int(argv[0]))}[name]())
