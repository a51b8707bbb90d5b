"""Login for ha-web: PAM through ctypes (libpam), group membership, sessions, CSRF tokens, throttling.

The session store and the throttle take the time as an argument (no clock reads) so that they are tested
without waiting.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import grp
import hashlib
import hmac
import json
import math
import os
import pwd
import secrets
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

__all__ = ["pam_authenticate", "groups_of", "Session", "Sessions", "Throttle", "PamUnavailable", "token_key"]


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
def write_atomically(path: str, doc) -> str:
    """doc as JSON in path, mode 0600: a temporary file, fsync'd, renamed over path, the directory
    fsync'd. Returns '' or what went wrong (the temporary file is removed)."""
    tmp = f"{path}.{os.getpid()}.new"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return f"{path}: {exc.strerror or exc}"
    return ""


def token_key(token: str) -> str:
    """What is kept of a session token, in memory and on disk: its SHA-256. The file of sessions gives
    nobody a cookie that works."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    token: str          # the cookie's value: known only in the process that made it ("" after a restart)
    user: str
    can_change: bool
    csrf: str
    expires: float      # wall-clock time (seconds since the epoch) it ends unless used
    groups: List[str] = field(default_factory=list)
    key: str = ""       # token_key(token)
    created: float = 0.0
    saved: float = 0.0  # `expires` as last written to the file

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), token.encode())


class Sessions:
    """Random tokens -> Session; a session ends idle_timeout seconds after its last use, max_age after
    its login, or at log-out. Times are wall-clock seconds passed in by the caller (they outlive the
    process). With path, the sessions survive a restart of ha-web: they are written there (JSON, mode
    0600, written then renamed) at every log-in and log-out and at most every save_every seconds of use,
    holding each token's SHA-256, never the token."""

    def __init__(self, idle_timeout: float = 3600.0, limit: int = 10000, max_age: float = 12 * 3600.0,
                 path: str | None = None, save_every: float = 60.0):
        self.idle_timeout, self.limit, self.max_age = idle_timeout, limit, max_age
        self.path, self.save_every = path, save_every
        self.save_error = ""
        self._by_key: Dict[str, Session] = {}

    def _deadline(self, s: Session, now: float) -> float:
        return min(now + self.idle_timeout, s.created + self.max_age)

    def create(self, user: str, can_change: bool, now: float, groups: List[str] = ()) -> Session:
        self.expire(now, save=False)
        while len(self._by_key) >= self.limit:  # drop the oldest
            self._by_key.pop(min(self._by_key.values(), key=lambda s: s.expires).key)
        token = secrets.token_urlsafe(32)
        s = Session(token, user, can_change, secrets.token_urlsafe(32), 0.0, list(groups), token_key(token), now)
        s.expires = self._deadline(s, now)
        self._by_key[s.key] = s
        self.save()
        return s

    def get(self, token: str | None, now: float) -> Session | None:
        if not token or len(token) > 256:
            return None
        s = self._by_key.get(token_key(token))
        return s if s is not None and self.touch(s, now) else None

    def touch(self, s: Session, now: float) -> bool:
        """Whether s is still a live session (same object, not expired); using it renews it."""
        if self._by_key.get(s.key) is not s:
            return False
        if s.expires <= now:
            del self._by_key[s.key]
            self.save()
            return False
        s.expires = self._deadline(s, now)
        if s.expires - s.saved >= self.save_every:
            self.save()
        return True

    def drop(self, token: str | None) -> None:
        if token and self._by_key.pop(token_key(token), None) is not None:
            self.save()

    def drop_session(self, s: Session) -> None:
        if self._by_key.get(s.key) is s:
            del self._by_key[s.key]
            self.save()

    def expire(self, now: float, save: bool = True) -> None:
        gone = [k for k, s in self._by_key.items() if s.expires <= now]
        for k in gone:
            del self._by_key[k]
        if gone and save:
            self.save()

    def __len__(self) -> int:
        return len(self._by_key)

    # -- the file ------------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write every session to path (atomically: a temporary file, fsync, rename). False (and
        save_error says why) when it could not be written; the sessions go on in memory."""
        if not self.path:
            return True
        doc = {"version": 1, "sessions": [
            {"key": s.key, "user": s.user, "can_change": s.can_change, "groups": s.groups, "csrf": s.csrf,
             "created": s.created, "expires": s.expires} for s in self._by_key.values()]}
        self.save_error = write_atomically(self.path, doc)
        if self.save_error:
            return False
        for s in self._by_key.values():
            s.saved = s.expires
        return True

    def load(self, now: float, recheck: Callable[[str], Tuple[bool, List[str]] | None] | None = None) -> str:
        """Read the sessions saved by an earlier run: those not expired come back (with their CSRF
        tokens, so open pages go on). recheck(user) gives (can_change, groups) as of now, or None when
        the account is gone (its sessions are dropped). Returns '' or what was wrong with the file (an
        unreadable file starts with no sessions; a missing one is not wrong)."""
        if not self.path:
            return ""
        try:
            with open(self.path) as f:
                doc = json.load(f)
            items = doc["sessions"]
            loaded = []
            for x in items:
                s = Session("", str(x["user"]), bool(x["can_change"]), str(x["csrf"]), float(x["expires"]),
                            [str(g) for g in x.get("groups", [])], str(x["key"]), float(x["created"]))
                if len(s.key) != 64 or not s.csrf:
                    raise ValueError(f"a session of {s.user!r} has no valid key or CSRF token")
                loaded.append(s)
        except FileNotFoundError:
            return ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{self.path}: not a sessions file ({exc}); starting without sessions"
        for s in loaded:
            s.expires = min(s.expires, s.created + self.max_age)
            if s.expires <= now:
                continue
            if recheck is not None:
                now_rights = recheck(s.user)
                if now_rights is None:
                    continue
                s.can_change, s.groups = now_rights[0], list(now_rights[1])
            s.saved = s.expires
            self._by_key[s.key] = s
        if len(self._by_key) != len(loaded):
            self.save()
        return ""


class Throttle:
    """A failed login slows the next one: after n failures in a row for a user name or a client
    address, the next attempt is refused until base * 2**(n-1) seconds (at most max_delay) have passed.
    A success clears the user's and the address's count. Times are wall-clock seconds passed in by the
    caller. With path, the counts survive a restart of ha-web (a restart, or a crash, does not reset
    them): written there (JSON, mode 0600, written then renamed) at every failure and at every success
    that cleared one, holding only the counts of the last forget_after seconds."""

    def __init__(self, base: float = 1.0, max_delay: float = 60.0, forget_after: float = 3600.0,
                 limit: int = 20000, path: str | None = None):
        self.base, self.max_delay, self.forget_after, self.limit = base, max_delay, forget_after, limit
        self.path = path
        self.save_error = ""
        self._fails: Dict[str, Tuple[int, float]] = {}

    def _delay(self, n: int) -> float:
        # the exponent capped: 2.0 ** 1024 overflows a float (after 1025 failures in a row)
        return 0.0 if n <= 0 else min(self.base * 2.0 ** min(n - 1, 64), self.max_delay)

    def wait(self, keys, now: float) -> float:
        """Seconds to wait before an attempt for these keys is heard (0: go ahead). Never more than
        max_delay, even when the clock went back since a failure."""
        left = 0.0
        for k in keys:
            n, last = self._fails.get(k, (0, 0.0))
            if n and now - last > self.forget_after:
                self._fails.pop(k, None)
                continue
            left = max(left, last + self._delay(n) - now)
        return min(max(left, 0.0), self.max_delay)

    def failed(self, keys, now: float) -> None:
        self._forget(now)
        excess = len(self._fails) + len(keys) - self.limit
        if excess > 0:  # still full: the oldest go
            for k in sorted(self._fails, key=lambda k: self._fails[k][1])[:excess]:
                del self._fails[k]
        for k in keys:
            n, _ = self._fails.get(k, (0, 0.0))
            self._fails[k] = (n + 1, now)
        self.save()

    def succeeded(self, keys) -> None:
        cleared = [k for k in keys if self._fails.pop(k, None) is not None]
        if cleared:
            self.save()

    def _forget(self, now: float) -> None:
        for k in [k for k, (_, last) in self._fails.items() if now - last > self.forget_after]:
            del self._fails[k]

    def __len__(self) -> int:
        return len(self._fails)

    # -- the file ------------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the counts to path (atomically). False (and save_error says why) when it could not be
        written; the counts go on in memory."""
        if not self.path:
            return True
        doc = {"version": 1, "fails": [{"key": k, "failures": n, "last": last}
                                       for k, (n, last) in self._fails.items()]}
        self.save_error = write_atomically(self.path, doc)
        return not self.save_error

    def load(self, now: float) -> str:
        """Read the counts an earlier run saved; those older than forget_after are dropped. Returns ''
        or what was wrong with the file (a damaged file starts with no counts; a missing one is not
        wrong)."""
        if not self.path:
            return ""
        try:
            with open(self.path) as f:
                doc = json.load(f)
            loaded = {}
            for x in doc["fails"]:
                k, n, last = str(x["key"]), int(x["failures"]), float(x["last"])
                if n < 1 or not math.isfinite(last):
                    raise ValueError(f"{k!r}: {n} failures at {last}")
                loaded[k] = (n, last)
        except FileNotFoundError:
            return ""
        except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
            return f"{self.path}: not a login throttle file ({exc}); starting without failure counts"
        self._fails = loaded
        self._forget(now)
        return ""
