"""Parse Heartbeat's authkeys file and sign/verify packets with its keys (HMAC-sha256/sha1/md5, or crc)."""
from __future__ import annotations

import hmac
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from typing import Dict, List

from hadaemon.core.errors import ConfigError

METHODS = ("sha256", "sha1", "md5", "crc")
MAX_KEY_INDEX = 15          # Heartbeat's MAXAUTH is 16: indices 0..15
SHORT_KEY = 16              # characters; `openssl rand -hex 8` gives 16
_DIGEST_SIZE = {"sha256": 32, "sha1": 20, "md5": 16, "crc": 4}


@dataclass(frozen=True)
class AuthKey:
    """One numbered key line: `N METHOD SECRET`."""

    method: str
    secret: bytes = field(repr=False)

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZE[self.method]

    def digest(self, data: bytes) -> bytes:
        if self.method == "crc":
            return zlib.crc32(data).to_bytes(4, "big")
        return hmac.new(self.secret, data, self.method).digest()


@dataclass
class AuthKeys:
    """The keys of an authkeys file; `active` is the one we sign with, any listed key verifies."""

    active: int
    keys: Dict[int, AuthKey]
    warnings: List[str] = field(default_factory=list)
    path: str = "authkeys"

    @property
    def active_index(self) -> int:
        return self.active

    @property
    def active_method(self) -> str:
        return self.keys[self.active].method

    def digest_size(self, index: int) -> int | None:
        """Digest length for key `index`, or None when no such key is configured."""
        key = self.keys.get(index)
        return key.digest_size if key else None

    def sign(self, data: bytes) -> bytes:
        """Digest of `data` with the active key."""
        return self.keys[self.active].digest(data)

    def sign_with(self, index: int, data: bytes) -> bytes:
        return self.keys[index].digest(data)

    def verify(self, index: int, data: bytes, digest: bytes) -> bool:
        """True when `digest` is the digest of `data` under key `index` (constant-time compare)."""
        key = self.keys.get(index)
        if key is None or len(digest) != key.digest_size:
            return False
        return hmac.compare_digest(key.digest(data), digest)


def _index(text: str) -> int | None:
    if re.fullmatch(r"[0-9]{1,6}", text) and 0 <= int(text) <= MAX_KEY_INDEX:
        return int(text)
    return None


def parse_authkeys(text: str, path: str = "authkeys") -> AuthKeys:
    """Parse authkeys text (`auth N` plus `N METHOD [SECRET]` lines); raise ConfigError on problems."""
    keys: Dict[int, AuthKey] = {}
    key_lines: Dict[int, int] = {}
    active: int | None = None
    auth_line = 0
    warnings: List[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        head = parts[0]
        if head == "auth":
            if len(parts) == 3 and parts[2].startswith("#"):
                parts = parts[:2]
            if len(parts) != 2:
                raise ConfigError(path, lineno, "auth takes one key number: auth N")
            if auth_line:
                raise ConfigError(path, lineno, f"auth given twice (first on line {auth_line})")
            active = _index(parts[1])
            if active is None:
                raise ConfigError(path, lineno, f"auth: invalid key number '{parts[1]}' (use 0 to {MAX_KEY_INDEX})")
            auth_line = lineno
            continue
        n = _index(head)
        if n is None:
            if re.fullmatch(r"[0-9]+", head):
                raise ConfigError(path, lineno, f"invalid key number '{head}' (use 0 to {MAX_KEY_INDEX})")
            raise ConfigError(path, lineno, f"expected 'auth N' or 'N METHOD SECRET', got '{head}' "
                                            f"(methods: {', '.join(METHODS)})")
        if len(parts) < 2:
            raise ConfigError(path, lineno, f"key {n}: missing method (use {', '.join(METHODS)})")
        method = parts[1].lower()
        if method not in METHODS:
            raise ConfigError(path, lineno, f"key {n}: unknown method '{parts[1]}' (use {', '.join(METHODS)})")
        if n in keys:
            raise ConfigError(path, lineno, f"key {n} defined twice (first on line {key_lines[n]})")
        # Heartbeat reads the key with sscanf("%d%s%s"): one word; anything after it is ignored.
        words = parts[2].split(None, 1) if len(parts) > 2 else []
        secret = words[0] if words else ""
        if len(words) > 1 and not words[1].startswith("#"):
            warnings.append(f"{path}:{lineno}: warning: key {n}: only the first word is the secret (as in "
                            "Heartbeat); the rest of the line is ignored")
        if method == "crc":
            warnings.append(f"{path}:{lineno}: warning: key {n} uses crc, which authenticates NOTHING: anyone on "
                            f"the network can forge cluster packets with key {n}; use sha256")
            if secret:
                warnings.append(f"{path}:{lineno}: warning: key {n}: crc takes no secret; the text is ignored")
        elif not secret:
            raise ConfigError(path, lineno, f"key {n}: method {method} needs a secret: {n} {method} SECRET")
        elif len(secret) < SHORT_KEY:
            warnings.append(f"{path}:{lineno}: warning: key {n} is short ({len(secret)} characters); "
                            "use at least 16, e.g. from `openssl rand -hex 16`")
        keys[n] = AuthKey(method, secret.encode("utf-8"))
        key_lines[n] = lineno
    if active is None:
        raise ConfigError(path, 0, "no 'auth N' line selecting the active key")
    if active not in keys:
        raise ConfigError(path, auth_line, f"auth {active}: no key {active} defined in this file")
    return AuthKeys(active=active, keys=keys, warnings=warnings, path=path)


def check_file_mode(path: str, st_mode: int) -> None:
    """Refuse keys that group or others may read or write, as Heartbeat did."""
    if st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(path, 0, f"mode {stat.S_IMODE(st_mode):04o} lets group or others access the keys; "
                                   f"run: chmod 600 {path}")


def load_authkeys(path: str, check_mode: bool = True) -> AuthKeys:
    """Read an authkeys file, refusing group/other access when check_mode, and parse it."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except OSError as e:
        raise ConfigError(path, 0, f"cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(path, 0, "not a regular file")
    if check_mode:
        check_file_mode(path, st.st_mode)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, data[:e.start].count(b"\n") + 1, "not valid UTF-8 text") from None
    return parse_authkeys(text, path)

