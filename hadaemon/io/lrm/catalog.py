"""What agents this node has: resource classes, agents, providers and meta-data (crm_resource --list-*).

A part of hadaemon.io.lrm.LocalResourceManager (its base class); meta-data runs the agent through
hadaemon.io.lrm.runner.AgentRunner.
"""
from __future__ import annotations

import os
from typing import List

from hadaemon.core.errors import BadRequest
from hadaemon.core.lrm import results as R
from hadaemon.core.lrm.metadata import lsb_metadata, systemd_metadata
from hadaemon.core.lrm.ops import OpRequest, ResourceSpec, agent_path, check_spec, systemd_unit_name

META_DATA_TIMEOUT_MS = 30000


class AgentCatalog:
    """The listing and meta-data half of LocalResourceManager (its attributes: ocf_root, lsb_dir,
    stonith_dir, use_systemd, _systemd)."""

    async def list_agents(self, cls: str | None = None, provider: str | None = None) -> List[str]:
        """The agents of a class (cls None: of every class this node runs, like `crm_resource
        --list-agents` without a standard); BadRequest for an unknown class."""
        if cls is None:
            names: set = set()
            for c in self.classes():
                names.update(await self.list_agents(c))
            return sorted(names)
        if cls == "ocf":
            providers = [provider] if provider else await self.list_providers()
            out: List[str] = []
            for p in providers:
                out.extend(_executables(os.path.join(self.ocf_root, "resource.d", p)))
            return sorted(out) if not provider else out
        if cls == "lsb":
            return _executables(self.lsb_dir)
        if cls == "stonith":
            return [n for n in _executables(self.stonith_dir) if n.startswith("fence_")]
        if cls == "systemd":
            if not self.systemd_class:
                return []
            client = await self._systemd_client()
            return await client.list_services()
        if cls == "service":
            names = set(_executables(self.lsb_dir))
            if self.systemd_class:
                names.update(await self.list_agents("systemd"))
            return sorted(names)
        raise BadRequest("InvalidArgument", f"unknown resource class {cls!r}")

    async def list_providers(self, agent: str | None = None) -> List[str]:
        """The OCF providers (with agent: those that have an agent of that name)."""
        base = os.path.join(self.ocf_root, "resource.d")
        try:
            found = sorted(n for n in os.listdir(base) if not n.startswith(".") and os.path.isdir(os.path.join(base, n)))
        except OSError:
            return []
        if agent is not None:
            found = [p for p in found if agent in _executables(os.path.join(base, p))]
        return found

    def classes(self) -> List[str]:
        """The resource classes this node can run (like `crm_resource --list-standards`)."""
        return ["ocf", "lsb", "service", "stonith"] + (["systemd"] if self.systemd_class else [])

    @property
    def systemd_class(self) -> bool:
        """Whether the systemd class is available (systemd runs here, or a client was given)."""
        return self.use_systemd or self._systemd is not None

    async def meta_data(self, cls: str, provider: str | None, type: str) -> str:
        """The agent's meta-data XML; BadRequest(InvalidArgument) for an unknown class / agent."""
        rsc = ResourceSpec(f"meta-data:{type}", cls, provider, type, {})
        bad = check_spec(rsc)
        if bad is not None:
            raise BadRequest("InvalidArgument", bad[2])
        if cls == "service":
            cls = await self._service_class(type)
            rsc = ResourceSpec(rsc.id, cls, None, type, {})
        if cls == "lsb":
            path = agent_path(rsc, self.ocf_root, self.lsb_dir)
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return lsb_metadata(type, f.read())
            except OSError as e:
                raise BadRequest("InvalidArgument", f"lsb agent {type}: {e.strerror}") from None
        if cls == "systemd":
            if not self.systemd_class:
                raise BadRequest("InvalidArgument", "systemd is not available on this node")
            client = await self._systemd_client()
            unit = systemd_unit_name(type)
            info = await client.unit_info(unit)
            if info is None:
                raise BadRequest("InvalidArgument", f"systemd unit {unit} not found")
            return systemd_metadata(unit, info.get("Description", ""))
        op = OpRequest("meta-data", timeout_ms=META_DATA_TIMEOUT_MS)
        res = await self._run_agent(rsc, op)
        if res.status != "done" or res.rc != R.OCF_SUCCESS:
            raise BadRequest("InvalidArgument",
                             f"{cls}:{provider or ''}:{type} meta-data failed: {R.rc_description(res.rc)} "
                             f"({res.status}) {res.exit_reason}".rstrip())
        return res.output


def _executables(directory: str) -> List[str]:
    """Executable regular files in a directory (names not starting with '.'), sorted."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out = []
    for n in names:
        if n.startswith("."):
            continue
        p = os.path.join(directory, n)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            out.append(n)
    return sorted(out)
