"""What hadaemon reads in a CIB: the resource classes and the elements it refuses (one table for loader and verify)."""
from __future__ import annotations

# The resource classes (standards) the LRM runs.
RESOURCE_CLASSES = ("ocf", "lsb", "systemd", "service", "stonith")
# Older classes Pacemaker's scheduler still reads in a CIB: the policy engine schedules them (so scheduler
# inputs that use them load), `hactl verify` reports them as unknown since no node can run them.
LEGACY_CLASSES = ("heartbeat", "upstart", "nagios")

# Elements the scheduler does not support yet, with what they are (a plural noun phrase): refused with a
# message naming them, never silently ignored.
UNSUPPORTED = {
    "bundle": "bundles",
}
