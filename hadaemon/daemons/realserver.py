"""ha-realserver: LVS-DR real-server setup for one VIP (ARP sysctls, VIP on lo), undone on stop.

    ha-realserver start VIP [--interface IF]   arp_ignore=1, arp_announce=2 (on all+lo, or on IF);
                                               VIP/32 (IPv6: /128) on lo; saves what it found
    ha-realserver stop VIP                     restores the sysctl values it found, removes the VIP
    ha-realserver status VIP                   exit 0 when applied, 3 when not (LSB/systemd)

State: $HADAEMON_RUNDIR/realserver/<VIP>.json (default /run/hadaemon), written atomically.  Several
VIPs can be active at once: the sysctls are restored when the last one stops.
"""
from __future__ import annotations

import argparse
import glob
import ipaddress
import json
import os
import socket
import sys
from typing import Dict, List

from hadaemon.io.files import write_atomic

ADDR_PROTO = 0x68  # the IFA_PROTO marker hadaemon puts on addresses it adds (see agents/ipaddr2.py)
RTN_LOCAL = 2
WANT = {"arp_ignore": "1", "arp_announce": "2"}
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3


class RealServerError(Exception):
    """A failure to report as 'ha-realserver: message' with exit code 1."""


def state_dir() -> str:
    return os.path.join(os.environ.get("HADAEMON_RUNDIR") or "/run/hadaemon", "realserver")


def sysctl_path(conf: str, key: str) -> str:
    """/proc/sys path of net.ipv4.conf.<conf>.<key> (namespace-local when read from the namespace)."""
    return f"/proc/sys/net/ipv4/conf/{conf}/{key}"


def read_sysctl(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value + "\n")


def sysctl_targets(interface: str | None) -> Dict[str, str]:
    """The sysctl files to set and their values: conf.{all,lo} or conf.<interface>."""
    confs = [interface] if interface else ["all", "lo"]
    return {sysctl_path(c, k): v for c in confs for k, v in WANT.items()}


class RealServer:
    def __init__(self, vip: str, interface: str | None = None):
        from pyroute2 import IPRoute

        self.vip = vip
        self.addr = ipaddress.ip_address(vip)
        self.prefix = 32 if self.addr.version == 4 else 128
        self.family = socket.AF_INET if self.addr.version == 4 else socket.AF_INET6
        self.interface = interface
        self.path = os.path.join(state_dir(), f"{vip}.json")
        self.ipr = IPRoute()
        self.lo = self.ipr.link_lookup(ifname="lo")[0]

    def close(self) -> None:
        self.ipr.close()

    def load(self, path: str | None = None) -> dict | None:
        try:
            with open(path or self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise RealServerError(f"{path or self.path}: corrupt state file ({e}); remove it") from None

    def save(self, state: dict, path: str | None = None) -> None:
        write_atomic(path or self.path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode(), 0o644)

    def others(self) -> List[str]:
        return [p for p in glob.glob(os.path.join(state_dir(), "*.json")) if p != self.path]

    def vip_entry(self):
        for a in self.ipr.get_addr(family=self.family, index=self.lo):
            addr = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
            if addr and ipaddress.ip_address(addr) == self.addr and a["prefixlen"] == self.prefix:
                return a
        return None

    def route_is_local(self) -> bool:
        try:
            routes = self.ipr.route("get", dst=self.vip)
        except Exception:  # no route at all
            return False
        return any(r["type"] == RTN_LOCAL for r in routes)

    def start(self) -> None:
        state = self.load()
        if state is None:
            targets = sysctl_targets(self.interface)
            missing = [p for p in targets if not os.path.exists(p)]
            if missing:
                raise RealServerError(f"no such sysctl {missing[0]} (is the interface name right?)")
            state = {"vip": self.vip, "interface": self.interface,
                     "sysctls": {p: read_sysctl(p) for p in targets}, "added_addr": False, "added_route": False}
            # Save what we found before changing anything: a crash in between leaves a state that
            # `stop` can undo.
            self.save(state)
        for p, v in sysctl_targets(state.get("interface")).items():
            if read_sysctl(p) != v:
                write_sysctl(p, v)
        if self.vip_entry() is None:
            kw = {"index": self.lo, "address": self.vip, "prefixlen": self.prefix, "proto": ADDR_PROTO}
            if self.addr.version == 4:
                kw.update(broadcast=self.vip, label="lo")
            self.ipr.addr("add", **kw)
            state["added_addr"] = True
            self.save(state)
        if not self.route_is_local():  # the kernel's local route normally does it; old recipes added one
            self.ipr.route("add", dst=self.vip, dst_len=self.prefix, oif=self.lo, scope=254, family=self.family)
            state["added_route"] = True
            self.save(state)

    def stop(self) -> None:
        state = self.load()
        entry = self.vip_entry()
        if state is None:
            if entry is not None and entry.get_attr("IFA_PROTO") == ADDR_PROTO:
                self.ipr.addr("del", index=self.lo, address=self.vip, prefixlen=self.prefix)
            return
        if state.get("added_route"):
            try:
                self.ipr.route("del", dst=self.vip, dst_len=self.prefix, oif=self.lo, family=self.family)
            except Exception:
                pass
        if entry is not None and (state.get("added_addr") or entry.get_attr("IFA_PROTO") == ADDR_PROTO):
            self.ipr.addr("del", index=self.lo, address=self.vip, prefixlen=self.prefix)
        found = state.get("sysctls", {})
        handed_over = False
        for other_path in self.others():
            other = self.load(other_path)
            shared = [p for p in found if p in (other or {}).get("sysctls", {})]
            if shared:  # another VIP still needs these settings: it restores them when it stops
                for p in shared:
                    other["sysctls"][p] = found[p]
                self.save(other, other_path)
                handed_over = True
                break
        if not handed_over:
            for p, v in found.items():
                if os.path.exists(p) and read_sysctl(p) != v:
                    write_sysctl(p, v)
        os.unlink(self.path)

    def status(self) -> List[str]:
        """What is missing for the VIP to be served as an LVS-DR real server (empty: all applied)."""
        state = self.load()
        problems = []
        if state is None:
            problems.append("not started (no state file)")
        if self.vip_entry() is None:
            problems.append(f"{self.vip}/{self.prefix} is not on lo")
        for p, v in sysctl_targets((state or {}).get("interface", self.interface)).items():
            if os.path.exists(p) and read_sysctl(p) != v:
                problems.append(f"{p} is {read_sysctl(p)}, want {v}")
        return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ha-realserver", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("vip", help="the virtual IP address (IPv4 or IPv6)")
    parser.add_argument("--interface", "-i", help="set the ARP sysctls on this interface instead of all+lo")
    args = parser.parse_args(argv)
    try:
        vip = str(ipaddress.ip_address(args.vip))
    except ValueError:
        parser.error(f"invalid VIP {args.vip!r}: expected an IPv4 or IPv6 address")
    if args.interface and ("/" in args.interface or args.interface in (".", "..")):
        parser.error(f"invalid interface name {args.interface!r}")
    try:
        rs = RealServer(vip, args.interface)
    except Exception as e:
        print(f"ha-realserver: {e}", file=sys.stderr)
        return EXIT_FAIL
    try:
        if args.action == "start":
            rs.start()
            print(f"ha-realserver: {vip} on lo, ARP sysctls set")
        elif args.action == "stop":
            rs.stop()
            print(f"ha-realserver: {vip} removed, ARP sysctls restored")
        else:
            problems = rs.status()
            for p in problems:
                print(f"ha-realserver: {vip}: {p}")
            if problems:
                return EXIT_NOT_RUNNING
            print(f"ha-realserver: {vip}: active")
        return EXIT_OK
    except Exception as e:  # RealServerError, OSError, pyroute2 NetlinkError: a message, no traceback
        print(f"ha-realserver: {vip}: {e}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        rs.close()


if __name__ == "__main__":
    sys.exit(main())
