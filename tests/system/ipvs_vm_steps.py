"""Runs INSIDE the QEMU VM (see test_ipvs_vm.py): drives the IPVS backend against the VM kernel's real
IPVS and prints one JSON document with, per stage, the backend's read(), `ipvsadm -Ln --thresholds`
and `--thresholds` output and the ops applied. The host side compares them with the expected tables.

usage: python ipvs_vm_steps.py CONFIG
"""
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hadaemon.io.director_config import load_config  # noqa: E402
from hadaemon.core.director.model import table_port  # noqa: E402
from hadaemon.core.director.lvs_table import (  # noqa: E402
    Destination, Service, VirtualService, diff, make_table, table_to_data, with_weight,
)
from hadaemon.io.lvs.ipvs import IPVSBackend  # noqa: E402


def config_table(config):
    """Every real up with its configured weight (what the director programs when all checks pass)."""
    entries = []
    for v in config.virtuals:
        flags = tuple(f for f in (v.schedflags or "").split(",") if f) + (("ops",) if v.ops else ())
        svc = VirtualService(v.protocol, v.address or "", v.port or 0, v.fwmark or 0,
                             "inet6" if v.family == 6 else "inet", v.scheduler, v.persistent,
                             v.netmask, flags)
        entries.append((svc, [Destination(r.address, table_port(v, r), r.method, r.weight, r.lower, r.upper)
                              for r in v.reals]))
    return make_table(entries)


def ipvsadm(*args):
    return subprocess.run(["ipvsadm", *args], capture_output=True, text=True, check=True).stdout


def stage(name, backend, ops, out, seconds=None):
    out[name] = {"read": table_to_data(backend.read()), "ipvsadm": ipvsadm("-Ln"),
                 "thresholds": ipvsadm("-Ln", "--thresholds"),
                 "ops": [type(o).__name__ + " " + o.service.key + (" " + o.dest.key if hasattr(o, "dest") else "")
                         for o in ops]}
    if seconds is not None:
        out[name]["seconds"] = seconds


def main():
    config = load_config(sys.argv[1])
    out = {}
    backend = IPVSBackend()
    wanted = config_table(config)
    managed = set(wanted)

    # 1. adopt the table that was there before we started (created with ipvsadm by the caller)
    current = backend.read()
    stage("adopted", backend, [], out)
    mine = {k: v for k, v in current.items() if k in managed}
    ops = diff(mine, wanted)
    t0 = time.monotonic()
    backend.apply(ops)
    stage("programmed", backend, ops, out, time.monotonic() - t0)

    # 2. a diff: weight change, a quiescent real (weight 0), removal of a real and of a virtual service
    svc80 = "tcp:192.168.18.100:80"
    changed = with_weight(wanted, svc80, "192.168.18.192:80", 5)
    changed = with_weight(changed, svc80, "192.168.18.191:80", 0)
    entry = changed[svc80]
    changed[svc80] = Service(entry.service, {k: d for k, d in entry.dests.items() if d.method != "masq"})
    changed.pop("udp:192.168.18.100:53")
    ops = diff({k: v for k, v in backend.read().items() if k in managed}, changed)
    backend.apply(ops)
    stage("changed", backend, ops, out)

    # 3. cleanstop: remove what we manage, leave the rest
    ops = backend.clear(managed)
    stage("cleanstop", backend, ops, out)
    backend.close()
    print("JSON" + json.dumps(out))


if __name__ == "__main__":
    main()
