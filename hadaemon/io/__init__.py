"""Thin I/O shells: sockets, netlink, subprocesses, systemd, journald, storage."""
