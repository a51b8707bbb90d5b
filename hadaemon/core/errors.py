"""Configuration errors that name the file and line: `path:line: message`."""


class ConfigError(Exception):
    """A bad configuration, reported to people as `path:line: message`."""

    def __init__(self, path: str, line: int, message: str):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
