"""Configuration errors that name the file and line: `path:line: message`."""


class ConfigError(Exception):
    """A bad configuration, reported to people as `path:line: message`."""

    def __init__(self, path: str, line: int, message: str):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


class BadRequest(ValueError):
    """A request refused by a daemon or a pure edit; becomes a D-Bus error named by kind.

    kind is the error name's last part, e.g. UnknownResource, UnknownNode, InvalidArgument, Conflict,
    NotReady, NoQuorum, Busy, NodeDown.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message
