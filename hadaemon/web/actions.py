"""ha-web's changes as data: each API action's Crm1 / Director1 method, D-Bus signature and argument
checks, and the HTTP status and form field of a refusal."""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Tuple

from hadaemon.web.responses import HttpError

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# -- argument checking -----------------------------------------------------------------------------------
def _s(name: str, limit: int = 256, required: bool = True):
    def check(v):
        if v is None:
            v = ""
        if not isinstance(v, str):
            raise HttpError(400, f"{name} must be a string", name)
        if _CTRL.search(v) or len(v) > limit:
            raise HttpError(400, f"{name} is not a valid value (control characters, or longer than {limit})", name)
        if required and not v.strip():
            raise HttpError(400, f"{name} is required", name)
        return v.strip()
    return check


def _b(name: str):
    def check(v):
        if not isinstance(v, bool):
            raise HttpError(400, f"{name} must be true or false", name)
        return v
    return check


def _dict(name: str):
    def check(v):
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise HttpError(400, f"{name} must be an object of name: value", name)
        return {_s(f"{name} name")(k): _s(k, 4096, required=False)(x) for k, x in v.items()}
    return check


def _list(name: str):
    def check(v):
        if not isinstance(v, list) or not v:
            raise HttpError(400, f"{name} must be a non-empty list of names", name)
        return [_s(name)(x) for x in v]
    return check


def _ops(name: str):
    def check(v):
        if v is None:
            return []
        if not isinstance(v, list):
            raise HttpError(400, f"{name} must be a list of operations", name)
        return [_dict(name)(x) for x in v]
    return check


# action -> (Crm1 method, signature, [(json key, checker)])
ACTIONS: Dict[str, Tuple[str, str, List[Tuple[str, Callable]]]] = {
    "move": ("MigrateResource", "ss", [("resource", _s("resource")), ("node", _s("node", required=False))]),
    "move_for": ("MigrateResourceFor", "sss", [("resource", _s("resource")), ("node", _s("node", required=False)),
                                               ("lifetime", _s("lifetime"))]),
    "ban": ("BanResource", "sss", [("resource", _s("resource")), ("node", _s("node")),
                                   ("lifetime", _s("lifetime", required=False))]),
    "clear": ("ClearResource", "ss", [("resource", _s("resource")), ("node", _s("node", required=False))]),
    "cleanup": ("CleanupResource", "ss", [("resource", _s("resource")), ("node", _s("node", required=False))]),
    "enable": ("EnableResource", "s", [("resource", _s("resource"))]),
    "disable": ("DisableResource", "s", [("resource", _s("resource"))]),
    "manage": ("SetResourceManaged", "sb", [("resource", _s("resource")), ("managed", _b("managed"))]),
    "standby": ("StandbyNode", "s", [("node", _s("node"))]),
    "online": ("OnlineNode", "s", [("node", _s("node"))]),
    "maintenance": ("SetMaintenance", "sb", [("node", _s("node", required=False)), ("on", _b("on"))]),
    "create_primitive": ("CreatePrimitive", "ssssa{ss}a{ss}aa{ss}s", [
        ("id", _s("id")), ("class", _s("class")), ("provider", _s("provider", required=False)),
        ("type", _s("type")), ("params", _dict("params")), ("meta", _dict("meta")), ("ops", _ops("ops")),
        ("group", _s("group", required=False))]),
    "update_resource": ("UpdateResource", "sa{ss}a{ss}", [("id", _s("id")), ("params", _dict("params")),
                                                         ("meta", _dict("meta"))]),
    "delete_resource": ("DeleteResource", "s", [("id", _s("id"))]),
    "create_group": ("CreateGroup", "sas", [("group", _s("group")), ("members", _list("members"))]),
    "add_to_group": ("AddToGroup", "ssss", [("group", _s("group")), ("resource", _s("resource")),
                                            ("before", _s("before", required=False)),
                                            ("after", _s("after", required=False))]),
    "remove_from_group": ("RemoveFromGroup", "ss", [("group", _s("group")), ("resource", _s("resource"))]),
    "delete_group": ("DeleteGroup", "s", [("group", _s("group"))]),
    "add_location": ("AddLocation", "ssss", [("id", _s("id", required=False)), ("resource", _s("resource")),
                                             ("node", _s("node")), ("score", _s("score"))]),
    "add_colocation": ("AddColocation", "ssss", [("id", _s("id", required=False)), ("resource", _s("resource")),
                                                 ("with", _s("with")), ("score", _s("score"))]),
    "add_order": ("AddOrder", "ssss", [("id", _s("id", required=False)), ("first", _s("first")),
                                       ("then", _s("then")), ("kind", _s("kind", required=False))]),
    "delete_constraint": ("DeleteConstraint", "s", [("id", _s("id"))]),
}

DIRECTOR_ACTIONS = {
    "drain": ("Drain", "ss", [("virtual", _s("virtual")), ("real", _s("real"))]),
    "restore": ("Restore", "ss", [("virtual", _s("virtual")), ("real", _s("real"))]),
    "reload": ("Reload", "", []),
}

_STATUS_OF_KIND = {"InvalidArgument": 400, "UnknownResource": 404, "UnknownNode": 404, "UnknownConstraint": 404,
                   "Conflict": 409, "NotReady": 409, "NoQuorum": 409, "BadConfig": 400, "UnknownVirtual": 404,
                   "UnknownReal": 404, "Unavailable": 503, "AccessDenied": 403, "Timeout": 504}


def _field_of(message: str, payload: dict) -> str:
    """The form field an error message names, when it names one (a parameter, or a top-level value)."""
    for k in (payload.get("params") or {}):
        if re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", message):
            return "params." + k
    for k in (payload.get("meta") or {}):
        if re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", message):
            return "meta." + k
    for k, v in payload.items():
        if isinstance(v, str) and v and len(v) > 1 and f"'{v}'" in message:
            return k
    return ""


def _check(spec, payload: dict) -> list:
    unknown = set(payload) - {k for k, _ in spec}
    if unknown:
        raise HttpError(400, f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    return [check(payload.get(k)) for k, check in spec]
