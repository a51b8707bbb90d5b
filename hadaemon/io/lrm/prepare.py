"""Preparing an in-process agent's start ahead (a handoff's new node, while the old one stops).

`prepare(lrm, rsc, op)` runs the agent module's `prepare(action, params, env)` in the LRM's thread
pool with the environment `LocalResourceManager` gives the same operation, so that the start run
later through `lrm.execute(rsc, op)` finds the work done (hadaemon.agents.ipaddr2: placement,
announcement socket and frames; the start then only adds the address and announces it). Nothing is
changed on the node by preparing: a start that never comes leaves only an open socket, closed when
the next prepare or start of that address replaces it or finds it stale.
"""
from __future__ import annotations

import asyncio
import importlib
import logging

from hadaemon.core.lrm.ops import BUILTIN_AGENTS, OpRequest, ResourceSpec, ocf_environment

__all__ = ["prepare"]

log = logging.getLogger("hadaemon.lrm")


async def prepare(lrm, rsc: ResourceSpec, op: OpRequest) -> bool:
    """True when the agent prepared the operation (only starts of in-process agents that have a
    prepare(); anything else: False, the operation runs as always)."""
    from hadaemon.agents.ocf import params_from_env
    from hadaemon.io.lrm import IN_PROCESS_SUBSTITUTES, SUBSTITUTE_DEFAULTS, _base_env

    if not getattr(lrm, "in_process_agents", False) or rsc.cls != "ocf" or op.name != "start" or op.interval_ms:
        return False
    env = ocf_environment(rsc, op, lrm.ocf_root, _base_env())
    module = BUILTIN_AGENTS.get((rsc.provider, rsc.type))
    if module is None and (rsc.provider, rsc.type) in IN_PROCESS_SUBSTITUTES:
        module = IN_PROCESS_SUBSTITUTES[(rsc.provider, rsc.type)]
        env = dict(env, HADAEMON_IPADDR2_STOP_ANY="1")   # as LocalResourceManager._run_agent
        for name, value in SUBSTITUTE_DEFAULTS.get((rsc.provider, rsc.type), {}).items():
            env.setdefault(f"OCF_RESKEY_{name}", value)
    if module is None:
        return False
    agent = importlib.import_module(module)
    if not hasattr(agent, "prepare"):
        return False
    params = params_from_env(env)
    handles = getattr(agent, "handles", None)
    if handles is not None and not handles(op.name, params, env):
        return False
    env = dict(env, HADAEMON_IN_PROCESS="1")
    try:
        return bool(await asyncio.get_running_loop().run_in_executor(None, agent.prepare, op.name, params, env))
    except Exception:  # noqa: BLE001 - preparing is an optimisation; the start does everything itself
        log.exception("preparing %s %s failed", rsc.id, op.name, extra={"RESOURCE": rsc.id})
        return False
