"""hadaemon: a high-availability cluster stack (Heartbeat architecture, systemd + D-Bus)."""

__version__ = "0.1.0"
