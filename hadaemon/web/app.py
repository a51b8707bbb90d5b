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

from aiohttp import web

from hadaemon.core.cib import parse_cib
from hadaemon.core.errors import ConfigError
from hadaemon.web import auth
from hadaemon.web.agents import Agents
from hadaemon.web.cluster import CallError, Cluster

__all__ = ["App", "COOKIE", "ACTIONS", "HttpError", "MAX_BODY"]

log = logging.getLogger("hadaemon.web")

COOKIE = "hasession"
ADMIN_GROUP = "haclient"
MAX_BODY = 16 * 1024 * 1024   # a request body (a CIB to replace is the largest)
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

STATIC = {"app.js": "application/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
# where the guard leaves the request's session for the handlers (a typed key where aiohttp has them)
SESSION = web.RequestKey("session", object) if hasattr(web, "RequestKey") else "session"
PUBLIC_STATIC = {"style.css", "favicon.svg"}   # the login page's own look; no cluster data


class HttpError(Exception):
    """A refusal: status, words and the form field it is about ('' when none)."""

    def __init__(self, status: int, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


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
    """The console's handlers and its two middlewares (errors, and the session / CSRF / rights guard);
    application() puts them on an aiohttp web.Application."""

    def __init__(self, cluster: Cluster, agents: Agents | None = None, *, pam_service: str = "ha-web",
                 admin_group: str = ADMIN_GROUP, authenticate=None,
                 throttle: auth.Throttle | None = None, host_label: str = "",
                 sessions: auth.Sessions | None = None, wall=time.time):
        self.cluster = cluster
        self.agents = agents or Agents()
        self.pam_service = pam_service
        self.admin_group = admin_group
        self.wall = wall        # sessions and throttle (wall-clock: both are saved across restarts)
        self.sessions = sessions if sessions is not None else auth.Sessions()  # (an empty one is falsy)
        self.throttle = throttle if throttle is not None else auth.Throttle()
        self.authenticate = authenticate or auth.pam_authenticate
        self.host_label = host_label
        self.streams: set = set()   # the tasks serving /api/events (cancelled at shutdown)

    def application(self) -> web.Application:
        """The routes. Bodies are limited to MAX_BODY bytes (413 beyond); every response carries the
        security headers."""
        a = web.Application(client_max_size=MAX_BODY, middlewares=[self.errors, self.guard])
        r = a.router
        r.add_get("/login", self.login_page_get)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/static/{name}", self.static)
        r.add_get("/", self.shell)
        r.add_get("/api/status", self.status)
        r.add_get("/api/events", self.events)
        r.add_get("/api/cib", self.get_cib)
        r.add_post("/api/cib", self.replace_cib)
        r.add_get("/api/constraints", self.get_constraints)
        r.add_get("/api/resource", self.get_resource)
        r.add_get("/api/agents", self.get_agents)
        r.add_get("/api/agent", self.get_agent)
        r.add_post("/api/crm/{action}", self.crm_action)
        r.add_post("/api/director/{action}", self.director_action)
        a.on_response_prepare.append(_security_headers)
        a.on_shutdown.append(self.end_streams)
        return a

    # -- middlewares ---------------------------------------------------------------------------------
    @web.middleware
    async def errors(self, request: web.Request, handler):
        """Refusals in words: JSON {"error", "field"} under /api/, plain text elsewhere; aiohttp's own
        (404, 405, 413 ...) too; a handler's bug is logged and answered 500, the server goes on."""
        try:
            return await handler(request)
        except HttpError as exc:
            return error_response(request, exc.status, exc.message, exc.field)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(request, exc.status, _words_of(request, exc),
                                  headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # noqa: BLE001 - one request's bug must not end the server
            log.exception("request %s %s failed", request.method, request.path)
            return error_response(request, 500, "internal error (logged)")

    @web.middleware
    async def guard(self, request: web.Request, handler):
        """Nothing but the login page (and its style sheet and icon) before login; every change (any
        method but GET and HEAD) needs the session's CSRF token, a same-site Origin and, but for
        log-out, group haclient."""
        path = request.path
        if path == "/login" or (path.startswith("/static/") and path[8:] in PUBLIC_STATIC):
            return await handler(request)
        session = self.sessions.get(request.cookies.get(COOKIE), self.wall())
        if session is None:
            if path.startswith("/api/"):
                raise HttpError(401, "log in first (POST /login)")
            return redirect("/login")
        request[SESSION] = session
        if request.method not in ("GET", "HEAD"):
            await self.check_change(request, session)
            if path != "/logout" and not session.can_change:
                raise HttpError(403, f"{session.user} is not in group {self.admin_group}: you may look, not change")
        return await handler(request)

    @staticmethod
    def check_origin(request: web.Request) -> None:
        origin = request.headers.get("Origin", "")
        if origin and (origin == "null" or origin.split("://", 1)[-1] != request.headers.get("Host", "")):
            raise HttpError(403, f"cross-site request refused (Origin {origin})")

    async def check_change(self, request: web.Request, session: auth.Session) -> None:
        self.check_origin(request)
        token = request.headers.get("X-CSRF-Token", "")
        if not token and request.content_type == "application/x-www-form-urlencoded":
            token = (await form_of(request)).get("csrf", "")
        if not session.csrf_ok(token):
            raise HttpError(403, "missing or wrong CSRF token: reload the page")

    # -- login ---------------------------------------------------------------------------------------
    def login_page(self, error: str = "", user: str = "", status: int = 200) -> web.Response:
        return html_response(LOGIN_PAGE.format(host=html.escape(self.host_label), user=html.escape(user),
                                               error=html.escape(error)), status)

    async def login_page_get(self, request: web.Request) -> web.Response:
        if self.sessions.get(request.cookies.get(COOKIE), self.wall()):
            return redirect("/")
        return self.login_page()

    async def login(self, request: web.Request) -> web.Response:
        self.check_origin(request)  # no logging in from another site's form (login CSRF)
        form = await form_of(request)
        user = form.get("user", "").strip()
        password = form.get("password", "")
        if not user or not password or len(user) > 64 or _CTRL.search(user) or len(password) > 1024:
            return self.login_page("Give a user name and a password.", user[:64], 400)
        peer = request.remote or ""
        keys = ["user:" + user, "addr:" + peer]
        wait = self.throttle.wait(keys, self.wall())
        if wait > 0:
            resp = self.login_page(f"Too many failed logins: try again in {int(wait + 0.999)} s.", user, 429)
            resp.headers["Retry-After"] = str(int(wait + 0.999))
            return resp
        loop = asyncio.get_running_loop()
        ok, reason = await loop.run_in_executor(None, self.authenticate, user, password, self.pam_service)
        if not ok:
            self.throttle.failed(keys, self.wall())
            if self.throttle.save_error:
                log.warning("login failures not saved: %s", self.throttle.save_error)
            log.warning("login of %s from %s failed: %s", user, peer, reason,
                        extra={"EVENT": "login-failed", "USER": user})
            return self.login_page("Login failed: wrong user name or password.", user, 401)
        self.throttle.succeeded(keys)
        groups = auth.groups_of(user)
        s = self.sessions.create(user, self.admin_group in groups or user == "root", self.wall(), groups)
        if self.sessions.save_error:
            log.warning("sessions not saved: %s", self.sessions.save_error)
        log.info("%s logged in from %s (%s)", user, peer, "may change" if s.can_change else "read only",
                 extra={"EVENT": "login", "USER": user})
        resp = redirect("/")
        set_session_cookie(resp, s.token)
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        self.sessions.drop_session(session)
        log.info("%s logged out", session.user, extra={"EVENT": "logout", "USER": session.user})
        resp = redirect("/login")
        set_session_cookie(resp, "")
        return resp

    # -- reads ---------------------------------------------------------------------------------------
    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise HttpError(404, f"nothing at {request.path}")
        headers = {"Content-Type": STATIC[name]}
        if name in PUBLIC_STATIC:
            headers["Cache-Control"] = "max-age=3600"
        return web.Response(body=_static(name), headers=headers)

    async def shell(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        return html_response(SHELL.format(csrf=session.csrf, user=html.escape(session.user),
                                          can="1" if session.can_change else "0",
                                          role="" if session.can_change else " (read only)"))

    def status_for(self, session) -> dict:
        return dict(self.cluster.snapshot, user=session.user, can_change=session.can_change)

    async def status(self, request: web.Request) -> web.Response:
        return json_response(self.status_for(request[SESSION]))

    async def _cib(self) -> str:
        try:
            return (await self.cluster.crm("GetCib"))[0]
        except CallError as exc:
            raise HttpError(_STATUS_OF_KIND.get(exc.kind, 502), exc.message) from None

    async def get_cib(self, request: web.Request) -> web.Response:
        if not request[SESSION].can_change:
            raise HttpError(403, f"the CIB may hold passwords: only group {self.admin_group} may read it")
        return web.Response(body=(await self._cib()).encode(),
                            headers={"Content-Type": "application/xml; charset=utf-8"})

    async def get_constraints(self, request: web.Request) -> web.Response:
        return json_response(constraints(ET.fromstring(await self._cib())))

    async def get_resource(self, request: web.Request) -> web.Response:
        rid = _s("id")(request.query.get("id", ""))
        return json_response(resource_detail(ET.fromstring(await self._cib()), rid,
                                             with_params=request[SESSION].can_change))

    async def get_agents(self, request: web.Request) -> web.Response:
        return json_response(await self.agents.listing())

    async def get_agent(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            md = await self.agents.meta_data(_s("class")(q.get("class", "")), q.get("provider", ""),
                                             _s("type")(q.get("type", "")))
        except (ValueError, FileNotFoundError) as exc:
            raise HttpError(404, str(exc)) from None
        except RuntimeError as exc:
            raise HttpError(502, str(exc)) from None
        return json_response(md)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: `event: status` with /api/status's JSON at once and on every change
        (a comment every 15 s otherwise), `event: logout` when the session has ended."""
        session = request[SESSION]
        task = asyncio.current_task()
        self.streams.add(task)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        try:
            await resp.prepare(request)
            version = -1
            while True:
                if not self.sessions.touch(session, self.wall()):
                    await asyncio.wait_for(resp.write(b"event: logout\ndata: {}\n\n"), 30)
                    break
                snap = await self.cluster.wait_change(version, 15.0) if version >= 0 else self.cluster.snapshot
                if snap["version"] != version:
                    version = snap["version"]
                    data = json.dumps(self.status_for(session))
                    chunk = f"event: status\nid: {version}\ndata: {data}\n\n".encode()
                else:
                    chunk = b": keep-alive\n\n"
                await asyncio.wait_for(resp.write(chunk), 30)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass  # the page went away (or stopped reading)
        finally:
            self.streams.discard(task)
        return resp

    async def end_streams(self, _app=None) -> None:
        """At shutdown: the event streams end (they would otherwise hold the server open)."""
        for task in list(self.streams):
            task.cancel()

    # -- changes -------------------------------------------------------------------------------------
    async def crm_action(self, request: web.Request) -> web.Response:
        session, action = request[SESSION], request.match_info["action"]
        if action not in ACTIONS:
            raise HttpError(404, f"no such action: {action}")
        payload = await json_of(request)
        method, signature, spec = ACTIONS[action]
        args = _check(spec, payload)
        if action == "create_primitive" and args[1] == "ocf":
            try:
                problem = await self.agents.validate(args[2], args[3], args[4])
            except (ValueError, FileNotFoundError) as exc:
                return json_response({"error": str(exc), "kind": "InvalidArgument", "field": "type"}, 400)
            except RuntimeError:
                problem = None  # meta-data unreadable here: the cluster decides
            if problem:
                return json_response({"error": problem[1], "kind": "InvalidArgument", "field": problem[0]}, 400)
        if action == "update_resource" and args[1]:
            problem = await self.validate_edit(args[0], args[1])
            if problem:
                return json_response({"error": problem[1], "kind": "InvalidArgument", "field": problem[0]}, 400)
        try:
            body = await self.cluster.crm(method, signature, *args)
        except CallError as exc:
            log.info("%s: %s %s refused: %s", session.user, method, args[:1], exc.message,
                     extra={"EVENT": "refused", "USER": session.user})
            return json_response({"error": exc.message, "kind": exc.kind, "field": _field_of(exc.message, payload)},
                                 _STATUS_OF_KIND.get(exc.kind, 502))
        log.info("%s: %s %s", session.user, method, " ".join(map(str, args[:2])),
                 extra={"EVENT": "change", "USER": session.user})
        return json_response({"ok": True, "result": body})

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

    async def director_action(self, request: web.Request) -> web.Response:
        session, action = request[SESSION], request.match_info["action"]
        if action not in DIRECTOR_ACTIONS:
            raise HttpError(404, f"no such action: {action}")
        payload = await json_of(request)
        method, signature, spec = DIRECTOR_ACTIONS[action]
        args = _check(spec, payload)
        try:
            body = await self.cluster.director(method, signature, *args)
        except CallError as exc:
            return json_response({"error": exc.message, "kind": exc.kind, "field": _field_of(exc.message, payload)},
                                 _STATUS_OF_KIND.get(exc.kind, 502))
        log.info("%s: director %s %s", session.user, method, " ".join(args),
                 extra={"EVENT": "change", "USER": session.user})
        return json_response({"ok": True, "result": body})

    async def replace_cib(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        payload = await json_of(request)
        xml = payload.get("xml")
        if not isinstance(xml, str) or not xml.strip():
            raise HttpError(400, "xml: give the whole <cib> document", "xml")
        try:
            parse_cib(xml, "<new CIB>")
        except ConfigError as exc:
            return json_response({"error": str(exc), "kind": "InvalidArgument", "field": "xml"}, 400)
        try:
            body = await self.cluster.crm("ReplaceCib", "s", xml)
        except CallError as exc:
            return json_response({"error": exc.message, "kind": exc.kind, "field": "xml"},
                                 _STATUS_OF_KIND.get(exc.kind, 502))
        log.info("%s replaced the CIB's configuration", session.user, extra={"EVENT": "change", "USER": session.user})
        return json_response({"ok": True, "result": body})


# -- responses and request bodies ------------------------------------------------------------------------
def json_response(value, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(value).encode(),
                        headers={"Content-Type": "application/json"})


def html_response(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=text.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def error_response(request: web.Request, status: int, message: str, field: str = "", headers=None) -> web.Response:
    if request.path.startswith("/api/"):
        resp = json_response({"error": message, "field": field}, status)
    else:
        resp = web.Response(status=status, body=(message + "\n").encode(),
                            headers={"Content-Type": "text/plain; charset=utf-8"})
    resp.headers.update(headers or {})
    return resp


def _words_of(request: web.Request, exc: web.HTTPException) -> str:
    """aiohttp's refusal in words: its own text when it says more than the status line."""
    if exc.status == 404:
        return f"nothing at {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed here (allowed: {exc.headers.get('Allow', '')})"
    text = (exc.text or "").strip()
    return text if text and not text.startswith(f"{exc.status}:") else exc.reason


def set_session_cookie(resp: web.StreamResponse, token: str) -> None:
    """The session cookie: Secure (TLS only), HttpOnly (no script reads it), SameSite=Strict; an empty
    token ends it in the browser."""
    if token:
        resp.set_cookie(COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict")
    else:
        resp.set_cookie(COOKIE, "", path="/", secure=True, httponly=True, samesite="Strict", max_age=0)


async def form_of(request: web.Request) -> Dict[str, str]:
    """A url-encoded form's fields (the first value of each); 400 when it is not UTF-8."""
    try:
        fields = await request.post()
    except UnicodeDecodeError:
        raise HttpError(400, "the form is not UTF-8") from None
    except ValueError as exc:
        raise HttpError(400, f"the form cannot be read: {exc}") from None
    out: Dict[str, str] = {}
    for k, v in fields.items():
        if isinstance(v, str):  # (a file of a multipart form is no field of ours)
            out.setdefault(k, v)
    return out


async def json_of(request: web.Request) -> dict:
    """The body as a JSON object: 415 when it is not sent as JSON, 400 when it is not a JSON object,
    413 (from aiohttp) beyond MAX_BODY."""
    if request.content_type != "application/json":
        raise HttpError(415, "send JSON (Content-Type: application/json)")
    body = await request.read()
    try:
        value = json.loads(body.decode("utf-8") or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "the body must be a JSON object")
    return value


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make a form POST's Origin "null"
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "Strict-Transport-Security": "max-age=31536000",
    "Server": "ha-web",
}


async def _security_headers(request: web.Request, resp: web.StreamResponse) -> None:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    resp.headers.setdefault("Cache-Control", "no-store")


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
