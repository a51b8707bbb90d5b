"""ha-web's refusals and responses: HttpError, the JSON / HTML / redirect / error responses, the session
cookie, the security headers, and the request bodies read as a form or as a JSON object."""
from __future__ import annotations

import json
from typing import Dict

from aiohttp import web

COOKIE = "hasession"


class HttpError(Exception):
    """A refusal: status, words and the form field it is about ('' when none)."""

    def __init__(self, status: int, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field



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

