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
import time
import xml.etree.ElementTree as ET
from importlib import resources
from typing import Dict

from aiohttp import web

from hadaemon.core.cib import parse_cib
from hadaemon.core.errors import ConfigError
from hadaemon.web import auth
from hadaemon.web.actions import _CTRL, _STATUS_OF_KIND, ACTIONS, DIRECTOR_ACTIONS, _check, _field_of, _s
from hadaemon.web.agents import Agents
from hadaemon.web.cibview import constraints, resource_detail
from hadaemon.web.cluster import CallError, Cluster
from hadaemon.web.responses import (
    COOKIE,
    HttpError,
    _security_headers,
    _words_of,
    error_response,
    form_of,
    html_response,
    json_of,
    json_response,
    redirect,
    set_session_cookie,
)

__all__ = ["App", "COOKIE", "ACTIONS", "HttpError", "MAX_BODY"]

log = logging.getLogger("hadaemon.web")

ADMIN_GROUP = "haclient"
MAX_BODY = 16 * 1024 * 1024   # a request body (a CIB to replace is the largest)

STATIC = {"app.js": "application/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
# where the guard leaves the request's session for the handlers (a typed key where aiohttp has them)
SESSION = web.RequestKey("session", object) if hasattr(web, "RequestKey") else "session"
PUBLIC_STATIC = {"style.css", "favicon.svg"}   # the login page's own look; no cluster data


def _static(name: str) -> bytes:
    return resources.files("hadaemon.web").joinpath("static", name).read_bytes()


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
