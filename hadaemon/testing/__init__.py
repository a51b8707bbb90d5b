"""Test harnesses: namespace clusters, private dbus-daemons, nspawn containers, QEMU VMs."""
