"""crm_attribute, crm_master, attrd_updater and crm_node for resource agents run by ha-crmd.

`python -m hadaemon.io.attrd TOOL ARGS...` speaks to the local ha-crmd (hadaemon.daemons.crmd_attrd)
and accepts the options agents use of Pacemaker's tools of the same names:

  crm_attribute [-N NODE] -n NAME [-l reboot|forever | -t status|nodes] (-v VALUE | -D | -G [-q] [-d DEFAULT])
  crm_attribute --promotion[=RSC] (-v SCORE | -D | -G)   # master-RSC, lifetime reboot
  crm_master [-l LIFETIME] [-N NODE] [-r RSC] (-v SCORE | -D | -G [-q])   # master-$OCF_RESOURCE_INSTANCE
  attrd_updater -n NAME (-U|-v VALUE | -B VALUE | -D | -Q) [-d DELAY] [-N NODE]
  crm_node -n | -q | -p

For a clone instance the promotion score names the resource without its instance number unless the
clone is globally unique (OCF_RESKEY_CRM_meta_globally_unique), as the scheduler reads it.
Exit codes: 0, 105 (no such attribute, as Pacemaker's CRM_EX_NOSUCH), 64 (usage), 1 (refused), 102
(ha-crmd not reachable, CRM_EX_UNAVAILABLE-like).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import List

EX_USAGE, EX_ERROR, EX_UNAVAILABLE, EX_NOSUCH = 64, 1, 102, 105


class ToolError(Exception):
    def __init__(self, message: str, code: int = EX_ERROR):
        super().__init__(message)
        self.code = code


def _socket_name() -> str:
    name = os.environ.get("HADAEMON_ATTRD_SOCKET")
    if name:
        return name
    return f"hadaemon-attrd-{socket.gethostname()}"


def request(req: dict, timeout: float = 30.0) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect("\0" + _socket_name())
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise ToolError(f"could not reach ha-crmd (@{_socket_name()}): {exc}", EX_UNAVAILABLE) from None
    finally:
        s.close()
    try:
        answer = json.loads(data.decode())
    except ValueError:
        raise ToolError("ha-crmd gave no answer", EX_UNAVAILABLE) from None
    if not answer.get("ok"):
        raise ToolError(answer.get("error") or "refused")
    return answer


def promotion_name(rsc: str | None) -> str:
    rsc = rsc or os.environ.get("OCF_RESOURCE_INSTANCE") or ""
    if not rsc:
        raise ToolError("no resource given and OCF_RESOURCE_INSTANCE is not set", EX_USAGE)
    unique = (os.environ.get("OCF_RESKEY_CRM_meta_globally_unique") or "false").lower() in ("true", "yes", "1", "on")
    if ":" in rsc and not unique:
        rsc = rsc.rsplit(":", 1)[0]
    return "master-" + rsc


def _attribute(name: str, node: str, lifetime: str, value: str | None, delete: bool, query: bool,
               quiet: bool, default: str | None, scope: str) -> int:
    base = {"name": name, "node": node or "", "lifetime": lifetime}
    if query:
        got = request(dict(base, op="query")).get("value")
        if got is None:
            got = default
        if got is None:
            print(f"Error performing operation: No such device or address ({name})", file=sys.stderr)
            return EX_NOSUCH
        print(got if quiet else f"scope={scope}  name={name} value={got}")
        return 0
    if delete:
        request(dict(base, op="delete"))
        return 0
    if value is None:
        raise ToolError("one of -v VALUE, -D or -G is needed", EX_USAGE)
    request(dict(base, op="update", value=value))
    return 0


def crm_attribute(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="crm_attribute", add_help=True)
    p.add_argument("-n", "--name")
    p.add_argument("-v", "--update", "--attr-value", dest="value")
    p.add_argument("-D", "--delete", action="store_true")
    p.add_argument("-G", "--query", "--get-value", dest="query", action="store_true")
    p.add_argument("-N", "--node", "-U", "--uname", dest="node", default="")
    p.add_argument("-l", "--lifetime")
    p.add_argument("-t", "--type", dest="type")
    p.add_argument("-p", "--promotion", nargs="?", const="", default=None)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-d", "--default")
    p.add_argument("-i", "--id")
    p.add_argument("-s", "--set-name")
    a = p.parse_args(argv)
    lifetime = a.lifetime
    if a.type:
        if a.type in ("status",):
            lifetime = lifetime or "reboot"
        elif a.type in ("nodes",):
            lifetime = lifetime or "forever"
        else:
            raise ToolError(f"only node attributes are supported here (type {a.type!r})", EX_USAGE)
    if a.promotion is not None:
        name = promotion_name(a.promotion or None)
        lifetime = "reboot"
    else:
        name = a.name
        if not name:
            raise ToolError("-n NAME is needed", EX_USAGE)
    lifetime = lifetime or ("reboot" if a.promotion is not None else "forever")
    if lifetime not in ("reboot", "forever"):
        raise ToolError(f"lifetime must be reboot or forever, not {lifetime!r}", EX_USAGE)
    scope = "status" if lifetime == "reboot" else "nodes"
    return _attribute(name, a.node, lifetime, a.value, a.delete, a.query, a.quiet, a.default, scope)


def crm_master(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="crm_master")
    p.add_argument("-v", "--attr-value", dest="value")
    p.add_argument("-D", "--delete-attr", dest="delete", action="store_true")
    p.add_argument("-G", "--get-value", dest="query", action="store_true")
    p.add_argument("-N", "--node", "-U", "--uname", dest="node", default="")
    p.add_argument("-l", "--lifetime", default="reboot")
    p.add_argument("-r", "--resource")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-Q", action="store_true")
    p.add_argument("-i", "--id")
    a = p.parse_args(argv)
    scope = "status" if a.lifetime == "reboot" else "nodes"
    return _attribute(promotion_name(a.resource), a.node, a.lifetime, a.value, a.delete, a.query,
                      a.quiet or a.Q, None, scope)


def attrd_updater(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="attrd_updater")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-U", "-v", "--update", dest="value")
    p.add_argument("-B", "--update-both", dest="both")
    p.add_argument("-Y", "--update-delay", action="store_true")
    p.add_argument("-D", "--delete", action="store_true")
    p.add_argument("-Q", "--query", action="store_true")
    p.add_argument("-A", "--all", action="store_true")
    p.add_argument("-R", "--refresh", action="store_true")
    p.add_argument("-d", "--delay")
    p.add_argument("-N", "--node", default="")
    p.add_argument("-p", "--private", action="store_true")
    p.add_argument("-s", "--set")
    p.add_argument("-z", "--utilization", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    value = a.both if a.both is not None else a.value
    if a.query:
        got = request({"op": "query", "name": a.name, "node": a.node, "lifetime": "reboot"}).get("value")
        if got is None:
            return EX_NOSUCH
        print(f'name="{a.name}" host="{a.node or request({"op": "node"})["value"]}" value="{got}"')
        return 0
    if a.delete:
        request({"op": "delete", "name": a.name, "node": a.node, "lifetime": "reboot"})
        return 0
    if a.update_delay or a.refresh:
        return 0   # dampening is ha-crmd's business; nothing to refresh
    if value is None:
        raise ToolError("one of -U VALUE, -B VALUE, -D or -Q is needed", EX_USAGE)
    request({"op": "update", "name": a.name, "value": value, "node": a.node, "lifetime": "reboot"})
    return 0


def crm_node(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="crm_node")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-n", "--name", action="store_true")
    g.add_argument("-q", "--quorum", action="store_true")
    g.add_argument("-p", "--partition", action="store_true")
    a = p.parse_args(argv)
    op = "node" if a.name else ("quorum" if a.quorum else "partition")
    print(request({"op": op})["value"])
    return 0


TOOLS = {"crm_attribute": crm_attribute, "crm_master": crm_master, "attrd_updater": attrd_updater,
         "crm_node": crm_node}


def main(argv: List[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TOOLS:
        print(f"usage: python -m hadaemon.io.attrd {{{','.join(TOOLS)}}} ARGS...", file=sys.stderr)
        return EX_USAGE
    tool = argv[0]
    try:
        return TOOLS[tool](argv[1:])
    except ToolError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return exc.code
    except SystemExit as exc:   # argparse
        return EX_USAGE if exc.code not in (0, None) else 0


if __name__ == "__main__":
    sys.exit(main())
