"""Run one agent action through the LRM, like cts-exec-helper / crm_resource --force-*:

    python -m hadaemon.io.lrm exec ocf:heartbeat:IPaddr2 start -p ip=10.0.0.5 -p cidr_netmask=24
    python -m hadaemon.io.lrm meta-data lsb:apache2
    python -m hadaemon.io.lrm list [CLASS [PROVIDER]] |  python -m hadaemon.io.lrm providers [AGENT]

exec prints the result (cts-exec style) and the exit reason, and exits with the OCF rc.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from hadaemon.core.errors import BadRequest
from hadaemon.io.lrm import LocalResourceManager, OpRequest, ResourceSpec


def _agent(spec: str):
    parts = spec.split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], None, parts[1]
    raise SystemExit(f"agent {spec!r}: expected CLASS:PROVIDER:TYPE or CLASS:TYPE")


async def _main(a) -> int:
    lrm = LocalResourceManager(lambda r: print(r.describe(), flush=True), ocf_root=a.ocf_root,
                               lsb_dir=a.lsb_dir, use_systemd=False if a.no_systemd else None)
    try:
        if a.cmd == "exec":
            cls, provider, type_ = _agent(a.agent)
            params = dict(p.split("=", 1) for p in a.param)
            meta = dict(p.split("=", 1) for p in a.meta)
            rsc = ResourceSpec(a.resource or type_, cls, provider, type_, params)
            res = await lrm.execute(rsc, OpRequest(a.action, interval_ms=a.interval, timeout_ms=a.timeout,
                                                   start_delay_ms=a.start_delay, meta=meta))
            print(res.describe() + (f" reason:{res.exit_reason}" if res.exit_reason else ""))
            if a.output and res.output:
                print(res.output.rstrip())
            if a.interval:
                await asyncio.sleep(a.watch)
            return res.rc
        if a.cmd == "meta-data":
            cls, provider, type_ = _agent(a.agent)
            print(await lrm.meta_data(cls, provider, type_))
        elif a.cmd == "list":
            print("\n".join(await lrm.list_agents(a.cls, a.provider)))
        elif a.cmd == "providers":
            print("\n".join(await lrm.list_providers(a.agent)))
        elif a.cmd == "classes":
            print("\n".join(lrm.classes()))
        return 0
    except BadRequest as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        await lrm.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hadaemon.io.lrm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ocf-root", default="/usr/lib/ocf")
    p.add_argument("--lsb-dir", default="/etc/init.d")
    p.add_argument("--no-systemd", action="store_true", help="run actions in process groups, not scopes")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("exec", help="run one action")
    e.add_argument("agent", help="CLASS:PROVIDER:TYPE or CLASS:TYPE")
    e.add_argument("action")
    e.add_argument("-r", "--resource", help="resource id (default: the type)")
    e.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    e.add_argument("-m", "--meta", action="append", default=[], metavar="NAME=VALUE")
    e.add_argument("-i", "--interval", type=int, default=0, help="ms; > 0 makes it recurring")
    e.add_argument("-t", "--timeout", type=int, default=20000, help="ms")
    e.add_argument("-s", "--start-delay", type=int, default=0, help="ms")
    e.add_argument("-w", "--watch", type=float, default=10.0, help="seconds to print a recurring op's changes")
    e.add_argument("-o", "--output", action="store_true", help="print the agent's output")
    m = sub.add_parser("meta-data", help="print an agent's meta-data")
    m.add_argument("agent")
    ls = sub.add_parser("list", help="list the agents of a class")
    ls.add_argument("cls", nargs="?", help="a class (default: every class)")
    ls.add_argument("provider", nargs="?")
    pr = sub.add_parser("providers", help="list the OCF providers")
    pr.add_argument("agent", nargs="?", help="only the providers of this agent")
    sub.add_parser("classes", help="list the resource classes")
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
