"""Load ldirectord.cf from disk: the file read and the system's name, service and file lookups for the pure parser."""

from __future__ import annotations

import os
import socket

from hadaemon.core.director.config import DirectorConfig, Resolver, numeric_host, parse_config
from hadaemon.core.errors import ConfigError

__all__ = ["load_config", "system_resolver"]


def system_resolver() -> Resolver:
    """A Resolver doing real lookups (blocking: call it at load time, not in the event loop)."""

    def host(name: str, family: int) -> str | None:
        num = numeric_host(name, family)
        if num is not None:
            return num
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        try:
            infos = socket.getaddrinfo(name, 0, af)
        except (OSError, UnicodeError):
            return None
        return infos[0][4][0] if infos else None

    def service(name: str, protocol: str) -> int | None:
        try:
            return socket.getservbyname(name, protocol) if protocol else socket.getservbyname(name)
        except OSError:
            return None

    def append_error(path: str) -> str | None:
        try:
            with open(path, "a"):
                return None
        except OSError as e:
            return e.strerror or str(e)

    return Resolver(host, service, socket.gethostname(), append_error, os.path.isdir)


def load_config(path: str, resolver: Resolver | None = None) -> DirectorConfig:
    """Read and parse an ldirectord.cf; raise ConfigError(path, line, message) when bad."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(path, 0, f"can not open file {path}: {e.strerror}") from None
    text = data.decode("utf-8", errors="surrogateescape")
    return parse_config(text, path, resolver if resolver is not None else system_resolver())
