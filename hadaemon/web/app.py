"""ha-web's routes: login, the page shell, static files, the JSON API (reads and changes), live events.

Every change is a POST with the session cookie and the session's CSRF token in X-CSRF-Token, from a
haclient member; it becomes one call of org.hadaemon.Crm1 or Director1. Refusals come back as JSON
{"error": words, "kind": Crm1 kind, "field": the form field it is about, when known}.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
import xml.etree.ElementTree as ET
from importlib import resources
from typing import Callable, Dict, List, Tuple

from hadaemon.core.cib import parse_cib
from hadaemon.core.errors import ConfigError
from hadaemon.web import auth
from hadaemon.web.agents import Agents
from hadaemon.web.cluster import CallError, Cluster
from hadaemon.web.http import HttpError, Request, Response

__all__ = ["App", "COOKIE", "ACTIONS"]

log = logging.getLogger("hadaemon.web")

COOKIE = "hasession"
ADMIN_GROUP = "haclient"
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

STATIC = {"app.js": "application/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
PUBLIC_STATIC = {"style.css", "favicon.svg"}   # the login page's own look; no cluster data


def _static(name: str) -> bytes:
    return resources.files("hadaemon.web").joinpath("static", name).read_bytes()


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


LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hadaemon console: log in</title><link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg"></head>
<body class="login"><main><h1>hadaemon console</h1><p class="sub">{host}</p>
<form method="post" action="/login" id="login">
<label>User <input name="user" id="user" autocomplete="username" value="{user}" required autofocus></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<p class="error" id="login-error" role="alert">{error}</p>
<button type="submit" id="login-submit">Log in</button></form>
<p class="hint">Log in with a system account (for the first time: <code>passwd hacluster</code>).
Members of group haclient may change the cluster; others may look.</p></main></body></html>
"""

SHELL = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}"><meta name="user" content="{user}"><meta name="can-change" content="{can}">
<title>hadaemon console</title><link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg"></head>
<body><header><a href="#/" class="brand">hadaemon</a>
<nav id="nav"><a href="#/">Cluster</a><a href="#/create">Create</a><a href="#/constraints">Constraints</a>
<a href="#/cib">CIB</a><a href="#/director">Director</a></nav>
<span class="who" id="who">{user}{role}</span>
<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Log out</button></form></header>
<div id="missing" class="missing" role="status"></div>
<main id="page"><p>Loading…</p></main>
<footer><span id="live" class="live">connecting…</span></footer>
<script src="/static/app.js"></script></body></html>
"""


class App:
    def __init__(self, cluster: Cluster, agents: Agents | None = None, *, pam_service: str = "ha-web",
                 admin_group: str = ADMIN_GROUP, clock=time.monotonic, authenticate=None,
                 throttle: auth.Throttle | None = None, host_label: str = "",
                 sessions: auth.Sessions | None = None, wall=time.time):
        self.cluster = cluster
        self.agents = agents or Agents()
        self.pam_service = pam_service
        self.admin_group = admin_group
        self.clock = clock      # the throttle's (monotonic)
        self.wall = wall        # the sessions' (wall-clock: they are saved across restarts)
        self.sessions = sessions if sessions is not None else auth.Sessions()  # (an empty one is falsy)
        self.throttle = throttle or auth.Throttle()
        self.authenticate = authenticate or auth.pam_authenticate
        self.host_label = host_label
        self.streams: set = set()

    # -- dispatch ----------------------------------------------------------------------------------
    async def __call__(self, req: Request) -> Response:
        now = self.clock()
        path = req.path
        if path == "/login":
            if req.method == "POST":
                return await self.login(req, now)
            if req.method in ("GET", "HEAD"):
                if self.sessions.get(req.cookies.get(COOKIE), self.wall()):
                    return Response.redirect("/")
                return self.login_page()
            raise HttpError(405, "GET or POST")
        if path.startswith("/static/") and path[8:] in PUBLIC_STATIC and req.method in ("GET", "HEAD"):
            return Response(200, _static(path[8:]), STATIC[path[8:]], [("Cache-Control", "max-age=3600")])
        session = self.sessions.get(req.cookies.get(COOKIE), self.wall())
        if session is None:
            if path.startswith("/api/"):
                raise HttpError(401, "log in first (POST /login)")
            return Response.redirect("/login")
        if req.method == "POST":
            self.check_change(req, session)
            if path == "/logout":
                self.sessions.drop_session(session)
                log.info("%s logged out", session.user, extra={"EVENT": "logout", "USER": session.user})
                return Response.redirect("/login", headers=headers_cookie(""))
            if not session.can_change:
                raise HttpError(403, f"{session.user} is not in group {self.admin_group}: you may look, not change")
            if path.startswith("/api/crm/"):
                return await self.crm_action(req, session, path[len("/api/crm/"):])
            if path.startswith("/api/director/"):
                return await self.director_action(req, session, path[len("/api/director/"):])
            if path == "/api/cib":
                return await self.replace_cib(req, session)
            raise HttpError(404, f"no such action: {path}")
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, "GET or POST")
        if path == "/":
            return Response.html(SHELL.format(csrf=session.csrf, user=html.escape(session.user),
                                              can="1" if session.can_change else "0",
                                              role="" if session.can_change else " (read only)"))
        if path.startswith("/static/") and path[8:] in STATIC:
            return Response(200, _static(path[8:]), STATIC[path[8:]])
        if path == "/api/status":
            return Response.json(self.status_for(session))
        if path == "/api/events":
            return self.events(session)
        if path == "/api/cib":
            if not session.can_change:
                raise HttpError(403, f"the CIB may hold passwords: only group {self.admin_group} may read it")
            return Response(200, (await self._cib()).encode(), "application/xml; charset=utf-8")
        if path == "/api/constraints":
            return Response.json(constraints(ET.fromstring(await self._cib())))
        if path == "/api/resource":
            return Response.json(resource_detail(ET.fromstring(await self._cib()), _s("id")(req.arg("id")),
                                                 with_params=session.can_change))
        if path == "/api/agents":
            return Response.json(await self.agents.listing())
        if path == "/api/agent":
            try:
                md = await self.agents.meta_data(_s("class")(req.arg("class")), req.arg("provider"),
                                                 _s("type")(req.arg("type")))
            except (ValueError, FileNotFoundError) as exc:
                raise HttpError(404, str(exc)) from None
            except RuntimeError as exc:
                raise HttpError(502, str(exc)) from None
            return Response.json(md)
        raise HttpError(404, f"nothing at {path}")

    # -- login ---------------------------------------------------------------------------------------
    def login_page(self, error: str = "", user: str = "", status: int = 200) -> Response:
        return Response.html(LOGIN_PAGE.format(host=html.escape(self.host_label), user=html.escape(user),
                                               error=html.escape(error)), status)

    async def login(self, req: Request, now: float) -> Response:
        self.check_origin(req)  # no logging in from another site's form (login CSRF)
        form = req.form()
        user = form.get("user", "").strip()
        password = form.get("password", "")
        if not user or not password or len(user) > 64 or _CTRL.search(user) or len(password) > 1024:
            return self.login_page("Give a user name and a password.", user[:64], 400)
        keys = ["user:" + user, "addr:" + req.peer]
        wait = self.throttle.wait(keys, now)
        if wait > 0:
            resp = self.login_page(f"Too many failed logins: try again in {int(wait + 0.999)} s.", user, 429)
            resp.headers.append(("Retry-After", str(int(wait + 0.999))))
            return resp
        loop = asyncio.get_running_loop()
        ok, reason = await loop.run_in_executor(None, self.authenticate, user, password, self.pam_service)
        if not ok:
            self.throttle.failed(keys, self.clock())
            log.warning("login of %s from %s failed: %s", user, req.peer, reason,
                        extra={"EVENT": "login-failed", "USER": user})
            return self.login_page("Login failed: wrong user name or password.", user, 401)
        self.throttle.succeeded(keys)
        groups = auth.groups_of(user)
        s = self.sessions.create(user, self.admin_group in groups or user == "root", self.wall(), groups)
        if self.sessions.save_error:
            log.warning("sessions not saved: %s", self.sessions.save_error)
        log.info("%s logged in from %s (%s)", user, req.peer, "may change" if s.can_change else "read only",
                 extra={"EVENT": "login", "USER": user})
        return Response.redirect("/", headers=headers_cookie(s.token))

    @staticmethod
    def check_origin(req: Request) -> None:
        origin = req.header("origin")
        if origin and (origin == "null" or origin.split("://", 1)[-1] != req.header("host")):
            raise HttpError(403, f"cross-site request refused (Origin {origin})")

    def check_change(self, req: Request, session: auth.Session) -> None:
        self.check_origin(req)
        token = req.header("x-csrf-token")
        if not token and req.header("content-type").startswith("application/x-www-form-urlencoded"):
            token = req.form().get("csrf")
        if not session.csrf_ok(token):
            raise HttpError(403, "missing or wrong CSRF token: reload the page")

    # -- reads ---------------------------------------------------------------------------------------
    def status_for(self, session) -> dict:
        return dict(self.cluster.snapshot, user=session.user, can_change=session.can_change)

    async def _cib(self) -> str:
        try:
            return (await self.cluster.crm("GetCib"))[0]
        except CallError as exc:
            raise HttpError(_STATUS_OF_KIND.get(exc.kind, 502), exc.message) from None

    def events(self, session) -> Response:
        async def stream(writer):
            task = asyncio.current_task()
            self.streams.add(task)
            try:
                version = -1
                while True:
                    if not self.sessions.touch(session, self.wall()):
                        writer.write(b"event: logout\ndata: {}\n\n")
                        await writer.drain()
                        return
                    snap = await self.cluster.wait_change(version, 15.0) if version >= 0 else self.cluster.snapshot
                    if snap["version"] != version:
                        version = snap["version"]
                        data = json.dumps(self.status_for(session))
                        writer.write(f"event: status\nid: {version}\ndata: {data}\n\n".encode())
                    else:
                        writer.write(b": keep-alive\n\n")
                    await asyncio.wait_for(writer.drain(), 30)
            except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.CancelledError):
                return
            finally:
                self.streams.discard(task)

        return Response(200, content_type="text/event-stream", stream=stream)

    # -- changes -------------------------------------------------------------------------------------
    async def crm_action(self, req: Request, session, action: str) -> Response:
        if action not in ACTIONS:
            raise HttpError(404, f"no such action: {action}")
        payload = req.json()
        method, signature, spec = ACTIONS[action]
        args = _check(spec, payload)
        if action == "create_primitive" and args[1] == "ocf":
            try:
                problem = await self.agents.validate(args[2], args[3], args[4])
            except (ValueError, FileNotFoundError) as exc:
                return Response.json({"error": str(exc), "kind": "InvalidArgument", "field": "type"}, 400)
            except RuntimeError:
                problem = None  # meta-data unreadable here: the cluster decides
            if problem:
                return Response.json({"error": problem[1], "kind": "InvalidArgument", "field": problem[0]}, 400)
        if action == "update_resource" and args[1]:
            problem = await self.validate_edit(args[0], args[1])
            if problem:
                return Response.json({"error": problem[1], "kind": "InvalidArgument", "field": problem[0]}, 400)
        try:
            body = await self.cluster.crm(method, signature, *args)
        except CallError as exc:
            log.info("%s: %s %s refused: %s", session.user, method, args[:1], exc.message,
                     extra={"EVENT": "refused", "USER": session.user})
            return Response.json({"error": exc.message, "kind": exc.kind, "field": _field_of(exc.message, payload)},
                                 _STATUS_OF_KIND.get(exc.kind, 502))
        log.info("%s: %s %s", session.user, method, " ".join(map(str, args[:2])),
                 extra={"EVENT": "change", "USER": session.user})
        return Response.json({"ok": True, "result": body})

    async def validate_edit(self, rid: str, params: Dict[str, str]):
        """An OCF primitive's new parameters checked as a new one's are (meta-data, validate-all), with
        the parameters it keeps from the CIB: (field, message) or None. Anything else (a group, an lsb or
        systemd service, an unknown id) is left to the cluster."""
        try:
            d = resource_detail(ET.fromstring(await self._cib()), rid)
        except HttpError:
            return None
        if d["kind"] != "primitive" or d["class"] != "ocf":
            return None
        merged = {k: v for k, v in {**d["params"], **params}.items() if v != ""}  # an empty value deletes
        try:
            return await self.agents.validate(d["provider"], d["type"], merged, changed=set(params))
        except (ValueError, FileNotFoundError, RuntimeError):
            return None  # no such agent or no meta-data on this node: the cluster decides

    async def director_action(self, req: Request, session, action: str) -> Response:
        if action not in DIRECTOR_ACTIONS:
            raise HttpError(404, f"no such action: {action}")
        payload = req.json()
        method, signature, spec = DIRECTOR_ACTIONS[action]
        args = _check(spec, payload)
        try:
            body = await self.cluster.director(method, signature, *args)
        except CallError as exc:
            return Response.json({"error": exc.message, "kind": exc.kind, "field": _field_of(exc.message, payload)},
                                 _STATUS_OF_KIND.get(exc.kind, 502))
        log.info("%s: director %s %s", session.user, method, " ".join(args),
                 extra={"EVENT": "change", "USER": session.user})
        return Response.json({"ok": True, "result": body})

    async def replace_cib(self, req: Request, session) -> Response:
        payload = req.json()
        xml = payload.get("xml")
        if not isinstance(xml, str) or not xml.strip():
            raise HttpError(400, "xml: give the whole <cib> document", "xml")
        try:
            parse_cib(xml, "<new CIB>")
        except ConfigError as exc:
            return Response.json({"error": str(exc), "kind": "InvalidArgument", "field": "xml"}, 400)
        try:
            body = await self.cluster.crm("ReplaceCib", "s", xml)
        except CallError as exc:
            return Response.json({"error": exc.message, "kind": exc.kind, "field": "xml"},
                                 _STATUS_OF_KIND.get(exc.kind, 502))
        log.info("%s replaced the CIB's configuration", session.user, extra={"EVENT": "change", "USER": session.user})
        return Response.json({"ok": True, "result": body})


def headers_cookie(token: str) -> List[Tuple[str, str]]:
    if token:
        return [("Set-Cookie", f"{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")]
    return [("Set-Cookie", f"{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")]


# -- CIB readings for the pages ------------------------------------------------------------------------
def constraints(cib: ET.Element) -> list:
    out = []
    for c in cib.findall("./configuration/constraints/*"):
        out.append({"id": c.get("id", ""), "kind": c.tag.replace("rsc_", ""), "attributes": dict(c.attrib),
                    "rules": len(c.findall("rule")), "sets": len(c.findall("resource_set"))})
    return out


def _nvpairs(el: ET.Element | None, tag: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if el is None:
        return out
    for ia in el.findall(tag):
        for nv in ia.findall("nvpair"):
            out.setdefault(nv.get("name", ""), nv.get("value", ""))
    return out


def resource_detail(cib: ET.Element, rid: str, with_params: bool = True) -> dict:
    el = next((x for x in cib.find("configuration").iter() if x.tag in ("primitive", "group", "clone", "master")
               and x.get("id") == rid), None) if cib.find("configuration") is not None else None
    if el is None:
        raise HttpError(404, f"no resource '{rid}'")
    members = [m.get("id") for m in el.findall("primitive")] if el.tag == "group" else []
    ops = [dict(op.attrib) for op in el.findall("./operations/op")]
    history = []
    ids = {rid, *members}
    for ns in cib.findall("./status/node_state"):
        for lr in ns.findall("./lrm/lrm_resources/lrm_resource"):
            if lr.get("id") in ids:
                for op in lr.findall("lrm_rsc_op"):
                    history.append({"node": ns.get("uname", ns.get("id", "")), "resource": lr.get("id"),
                                    "operation": op.get("operation", ""), "interval": op.get("interval", "0"),
                                    "rc": op.get("rc-code", ""), "status": op.get("op-status", ""),
                                    "call": int(op.get("call-id", "0") or 0),
                                    "last_rc_change": int(op.get("last-rc-change", "0") or 0),
                                    "exec_time": op.get("exec-time", ""), "output": op.get("exit-reason", "")})
    history.sort(key=lambda h: (h["last_rc_change"], h["call"]), reverse=True)
    return {"id": rid, "kind": el.tag, "class": el.get("class", ""), "provider": el.get("provider", ""),
            "type": el.get("type", ""), "members": members,
            "params": _nvpairs(el, "instance_attributes") if with_params else None,
            "meta": _nvpairs(el, "meta_attributes"), "ops": ops, "history": history}
