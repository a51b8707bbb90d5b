"""Node attributes for resource agents: what Pacemaker's attrd and CIB manager answer to
`crm_attribute`, `crm_master` (promotion scores), `attrd_updater` and `crm_node`.

ha-crmd listens on an abstract UNIX socket (per network namespace, so per node; the name is in
`HADAEMON_ATTRD_SOCKET` and includes the node name) and accepts requests from root only
(SO_PEERCRED). One JSON object per line each way:

  {"op": "update", "name": N, "value": V, "lifetime": "reboot"|"forever", "node": ""}
  {"op": "delete", "name": N, "lifetime": ..., "node": ""}
  {"op": "query", "name": N, "lifetime": ..., "node": ""}   -> {"ok": true, "value": V or null}
  {"op": "node"} -> {"ok": true, "value": local node name}; {"op": "quorum"}; {"op": "partition"}

`reboot` attributes are the node's transient attributes (status section, gone when the node
leaves; sent to the DC like pingd); `forever` ones are configuration (nodes section), changed through
the same acknowledged CIB modification as hactl's. The tools themselves are hadaemon.io.attrd,
installed as small scripts in STATE_DIR/sbin; agents find them through HA_SBIN_DIR (ocf-shellfuncs,
e.g. ocf:pacemaker:Stateful's `${HA_SBIN_DIR}/crm_attribute --promotion`) and PATH (ping's
`attrd_updater`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import sys
from pathlib import Path

from hadaemon.core.crm import status as S
from hadaemon.core.errors import BadRequest

__all__ = ["AttrdServer", "socket_name", "install_tools", "TOOLS"]

log = logging.getLogger("ha-crmd")

TOOLS = ("crm_attribute", "crm_master", "attrd_updater", "crm_node")
MAX_REQUEST = 64 * 1024


def socket_name(node: str) -> str:
    """The abstract socket name (without the leading NUL)."""
    return f"hadaemon-attrd-{node}"


def install_tools(directory: Path, python: str | None = None) -> Path:
    """Write the tool scripts into directory (only when their content changed); returns it."""
    python = python or sys.executable
    directory.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        path = directory / tool
        text = f'#!/bin/sh\nexec "{python}" -m hadaemon.io.attrd {tool} "$@"\n'
        try:
            if path.read_text() == text and os.access(path, os.X_OK):
                continue
        except OSError:
            pass
        tmp = directory / f".{tool}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    return directory


class AttrdServer:
    def __init__(self, node):
        self.node = node
        self.name = socket_name(node.local_node)
        self.server = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind("\0" + self.name)
        except OSError as exc:
            sock.close()
            log.error("node attributes for agents unavailable: cannot bind @%s: %s", self.name, exc,
                      extra={"EVENT": "attrd-failed"})
            return
        sock.listen(16)
        sock.setblocking(False)
        self.server = await asyncio.start_unix_server(self._client, sock=sock)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != 0:
                await self._answer(writer, {"ok": False, "error": "permission denied: root only"})
                return
            line = await asyncio.wait_for(reader.readline(), 10.0)
            if not line or len(line) > MAX_REQUEST:
                return
            try:
                req = json.loads(line.decode())
                if not isinstance(req, dict):
                    raise ValueError("not an object")
                answer = await self.handle(req)
            except (ValueError, UnicodeDecodeError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            except BadRequest as exc:
                answer = {"ok": False, "error": str(exc), "kind": exc.kind}
            await self._answer(writer, answer)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _answer(writer, answer: dict) -> None:
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()

    async def handle(self, req: dict) -> dict:
        node = self.node
        op = req.get("op")
        if op == "node":
            return {"ok": True, "value": node.local_node}
        if op == "quorum":
            return {"ok": True, "value": "1" if node.has_quorum else "0"}
        if op == "partition":
            return {"ok": True, "value": " ".join(sorted(node.members))}
        name = req.get("name")
        if not isinstance(name, str) or not name or not name.isprintable() or len(name) > 256:
            raise BadRequest("InvalidArgument", f"invalid attribute name {name!r}")
        target = req.get("node") or node.local_node
        lifetime = req.get("lifetime") or "reboot"
        if lifetime not in ("reboot", "forever"):
            raise BadRequest("InvalidArgument", f"lifetime must be reboot or forever, not {lifetime!r}")
        if op == "query":
            return {"ok": True, "value": self._query(target, name, lifetime)}
        if op not in ("update", "delete"):
            raise BadRequest("InvalidArgument", f"unknown operation {op!r}")
        value = None
        if op == "update":
            value = req.get("value")
            if not isinstance(value, str) or len(value) > 4096:
                raise BadRequest("InvalidArgument", "the value must be a string")
        if lifetime == "forever":
            from hadaemon.core.cib import edit

            if op == "delete" and self._query(target, name, lifetime) is None:
                return {"ok": True}
            await node.modify_cib(lambda cib: edit.set_node_attribute(cib, target, name, value),
                                  f"attribute {name} of {target}")
            return {"ok": True}
        if target == node.local_node:
            if node.attrs.get(name) != value:
                log.info("attribute %s=%s", name, value if value is not None else "(deleted)",
                         extra={"NODE": target, "EVENT": "attribute"})
            node.set_attribute(name, value)
            return {"ok": True}
        if node.dc_role is not None:
            node.dc_role.set_attribute(target, name, value)
            return {"ok": True}
        raise BadRequest("NotReady", f"a transient attribute of {target} can only be set on {target} or the DC")

    def _query(self, target: str, name: str, lifetime: str):
        node = self.node
        if lifetime == "reboot":
            if target == node.local_node and name in node.attrs:
                return node.attrs[name]
            return S.get_attribute(node.cib, target, name) if _has_state(node.cib, target) else None
        for n in node.cib.iter("node"):
            if (n.get("uname") or n.get("id")) == target:
                for nv in n.iter("nvpair"):
                    if nv.get("name") == name:
                        return nv.get("value")
        return None


def _has_state(cib, uname: str) -> bool:
    status = cib.find("status")
    return status is not None and any(ns.get("uname") == uname for ns in status.findall("node_state"))
