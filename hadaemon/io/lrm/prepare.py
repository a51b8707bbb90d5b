"""Preparing an in-process agent's start or stop ahead (a handoff: the new node's start while the old
one stops, the old node's last stop while the rest of its chain runs).

`prepare(lrm, rsc, op)` runs the agent module's `prepare(action, params, env)` in the LRM's thread
pool with the environment `LocalResourceManager` gives the same operation, so that the operation run
later through `lrm.execute(rsc, op)` finds the work done (hadaemon.agents.ipaddr2: placement and
checks; for a start the announcement's socket and frames: the start then only adds the address and
announces it, the stop only removes it). Nothing is changed on the node by preparing; `discard`
drops what was prepared for an operation that will not run (a chain stopped before it). `arm` has a
prepared start wait in a thread for a trigger, so that a handoff's release only sets an event.
"""
from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import threading

from hadaemon.core.lrm.ops import BUILTIN_AGENTS, OpRequest, ResourceSpec, ocf_environment

__all__ = ["prepare", "discard", "arm"]

log = logging.getLogger("hadaemon.lrm")


def _agent_call(lrm, rsc: ResourceSpec, op: OpRequest):
    """(agent module, params, env) as LocalResourceManager._run_agent / _run_builtin give them, or None
    when the operation does not run in-process or the agent prepares nothing."""
    from hadaemon.agents.ocf import params_from_env
    from hadaemon.io.lrm import IN_PROCESS_SUBSTITUTES, SUBSTITUTE_DEFAULTS, _base_env

    if not getattr(lrm, "in_process_agents", False) or rsc.cls != "ocf" or op.name not in ("start", "stop") \
            or op.interval_ms:
        return None
    env = ocf_environment(rsc, op, lrm.ocf_root, _base_env())
    module = BUILTIN_AGENTS.get((rsc.provider, rsc.type))
    if module is None and (rsc.provider, rsc.type) in IN_PROCESS_SUBSTITUTES:
        module = IN_PROCESS_SUBSTITUTES[(rsc.provider, rsc.type)]
        env = dict(env, HADAEMON_IPADDR2_STOP_ANY="1")   # as LocalResourceManager._run_agent
        for name, value in SUBSTITUTE_DEFAULTS.get((rsc.provider, rsc.type), {}).items():
            env.setdefault(f"OCF_RESKEY_{name}", value)
    if module is None:
        return None
    agent = importlib.import_module(module)
    if not hasattr(agent, "prepare"):
        return None
    params = params_from_env(env)
    handles = getattr(agent, "handles", None)
    if handles is not None and not handles(op.name, params, env):
        return None
    return agent, params, dict(env, HADAEMON_IN_PROCESS="1")


async def prepare(lrm, rsc: ResourceSpec, op: OpRequest, removed=None, release=None, wait=None) -> bool:
    """True when the agent prepared the operation (only starts and stops of in-process agents that
    have a prepare(); anything else: False, the operation runs as always). removed: for a stop,
    called from the agent's thread once the resource is gone (IPaddr2: the address removed), before
    the operation returns; release(mac): the frame that tells so; wait: what the stop waits for first
    (see the agent's prepare)."""
    call = _agent_call(lrm, rsc, op)
    if call is None:
        return False
    agent, params, env = call
    try:
        return bool(await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(agent.prepare, op.name, params, env, removed=removed, release=release,
                                    wait=wait)))
    except Exception:  # noqa: BLE001 - preparing is an optimisation; the operation does everything itself
        log.exception("preparing %s %s failed", rsc.id, op.name, extra={"RESOURCE": rsc.id})
        return False


def discard(lrm, rsc: ResourceSpec, op: OpRequest) -> None:
    """Drop what prepare() left for an operation that will not run."""
    call = _agent_call(lrm, rsc, op)
    if call is not None and hasattr(call[0], "discard"):
        call[0].discard(op.name, call[1], call[2])


def arm(lrm, rsc: ResourceSpec, op: OpRequest, timeout: float, listen=None, on_go=None):
    """For a prepared start: a thread waits (up to timeout) to make its change; the
    returned (trigger, cancel) (cheap, from the event loop): trigger() lets it go at once, without
    the operation's way through the loop and the LRM (True: it goes or went); cancel() stops it if it
    has not gone (False: it went, the operation must run). listen, on_go: see the agent's
    armed_start. None when the agent cannot (the operation does it all)."""
    call = _agent_call(lrm, rsc, op)
    if call is None or not hasattr(call[0], "armed_start"):
        return None
    agent, params, env = call
    # a thread of its own, not the LRM's pool: it waits for up to the whole timeout, and must be
    # waiting (not queued behind the pool's work) when the word comes
    threading.Thread(target=agent.armed_start, args=(op.name, params, env, timeout),
                     kwargs=dict(listen=listen, on_go=on_go), name=f"armed-{rsc.id}", daemon=True).start()
    return (functools.partial(agent.trigger, op.name, params, env),
            functools.partial(agent.cancel_armed, op.name, params, env))
