"""Login for ha-web: PAM through ctypes (libpam), group membership, sessions, CSRF tokens, throttling.

The session store and the throttle take the time as an argument (no clock reads) so that they are tested
without waiting.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import grp
import hmac
import os
import pwd
import secrets
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

__all__ = ["pam_authenticate", "groups_of", "Session", "Sessions", "Throttle", "PamUnavailable"]


# -- PAM -------------------------------------------------------------------------------------------------
class PamUnavailable(RuntimeError):
    pass


PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2
PAM_SUCCESS = 0


class _PamMessage(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _PamResponse(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


_CONV_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(_PamMessage)),
                              ctypes.POINTER(ctypes.POINTER(_PamResponse)), ctypes.c_void_p)


class _PamConv(ctypes.Structure):
    _fields_ = [("conv", _CONV_FUNC), ("appdata_ptr", ctypes.c_void_p)]


_libs: dict = {}


def _load():
    if "pam" not in _libs:
        name = ctypes.util.find_library("pam") or "libpam.so.0"
        try:
            pam = ctypes.CDLL(name)
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError as exc:
            raise PamUnavailable(f"cannot load libpam: {exc}") from None
        pam.pam_start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_PamConv),
                                  ctypes.POINTER(ctypes.c_void_p)]
        pam.pam_start.restype = ctypes.c_int
        pam.pam_authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_acct_mgmt.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
        pam.pam_strerror.restype = ctypes.c_char_p
        libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        libc.calloc.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        libc.strdup.restype = ctypes.c_void_p
        _libs["pam"], _libs["libc"] = pam, libc
    return _libs["pam"], _libs["libc"]


def pam_authenticate(user: str, password: str, service: str = "ha-web") -> Tuple[bool, str]:
    """(ok, reason): pam_authenticate then pam_acct_mgmt for user with password. Blocking (run it in a
    thread): PAM modules may sleep on failure."""
    pam, libc = _load()
    secret = password.encode()

    def conv(n, messages, responses, _data):
        arr = libc.calloc(n, ctypes.sizeof(_PamResponse))
        if not arr:
            return 5  # PAM_BUF_ERR
        responses[0] = ctypes.cast(arr, ctypes.POINTER(_PamResponse))
        for i in range(n):
            if messages[i].contents.msg_style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
                responses[0][i].resp = libc.strdup(secret if messages[i].contents.msg_style == PAM_PROMPT_ECHO_OFF
                                                   else user.encode())
                responses[0][i].resp_retcode = 0
        return PAM_SUCCESS

    cfunc = _CONV_FUNC(conv)
    handle = ctypes.c_void_p()
    rc = pam.pam_start(service.encode(), user.encode(), ctypes.byref(_PamConv(cfunc, None)), ctypes.byref(handle))
    if rc != PAM_SUCCESS:
        return False, f"pam_start failed ({rc})"
    try:
        rc = pam.pam_authenticate(handle, 0)
        if rc == PAM_SUCCESS:
            rc = pam.pam_acct_mgmt(handle, 0)
        reason = "" if rc == PAM_SUCCESS else (pam.pam_strerror(handle, rc) or b"").decode(errors="replace")
        return rc == PAM_SUCCESS, reason
    finally:
        pam.pam_end(handle, rc)


def groups_of(user: str) -> List[str]:
    """Names of every group user belongs to (primary and supplementary); [] for an unknown user."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return []
    names = []
    for gid in os.getgrouplist(user, pw.pw_gid):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


# -- sessions --------------------------------------------------------------------------------------------
@dataclass
class Session:
    token: str
    user: str
    can_change: bool
    csrf: str
    expires: float
    groups: List[str] = field(default_factory=list)

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), token.encode())


class Sessions:
    """Random tokens -> Session; a session ends idle_timeout seconds after its last use."""

    def __init__(self, idle_timeout: float = 3600.0, limit: int = 10000):
        self.idle_timeout = idle_timeout
        self.limit = limit
        self._by_token: Dict[str, Session] = {}

    def create(self, user: str, can_change: bool, now: float, groups: List[str] = ()) -> Session:
        self.expire(now)
        while len(self._by_token) >= self.limit:  # drop the oldest
            self._by_token.pop(min(self._by_token.values(), key=lambda s: s.expires).token)
        s = Session(secrets.token_urlsafe(32), user, can_change, secrets.token_urlsafe(32),
                    now + self.idle_timeout, list(groups))
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None, now: float) -> Session | None:
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        if s.expires <= now:
            del self._by_token[token]
            return None
        s.expires = now + self.idle_timeout
        return s

    def drop(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def expire(self, now: float) -> None:
        for tok in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[tok]

    def __len__(self) -> int:
        return len(self._by_token)


class Throttle:
    """A failed login slows the next one: after n failures in a row for a user name or a client
    address, the next attempt is refused until base * 2**(n-1) seconds (at most max_delay) have passed.
    A success clears the user's and the address's count."""

    def __init__(self, base: float = 1.0, max_delay: float = 60.0, forget_after: float = 3600.0,
                 limit: int = 100000):
        self.base, self.max_delay, self.forget_after, self.limit = base, max_delay, forget_after, limit
        self._fails: Dict[str, Tuple[int, float]] = {}

    def _delay(self, n: int) -> float:
        return 0.0 if n <= 0 else min(self.base * 2 ** (n - 1), self.max_delay)

    def wait(self, keys, now: float) -> float:
        """Seconds to wait before an attempt for these keys is heard (0: go ahead)."""
        left = 0.0
        for k in keys:
            n, last = self._fails.get(k, (0, 0.0))
            if n and now - last > self.forget_after:
                self._fails.pop(k, None)
                continue
            left = max(left, last + self._delay(n) - now)
        return max(left, 0.0)

    def failed(self, keys, now: float) -> None:
        if len(self._fails) >= self.limit:
            self._fails = {k: v for k, v in self._fails.items() if now - v[1] <= self.forget_after}
        for k in keys:
            n, _ = self._fails.get(k, (0, 0.0))
            self._fails[k] = (n + 1, now)

    def succeeded(self, keys) -> None:
        for k in keys:
            self._fails.pop(k, None)
