"""System tests (nspawn containers, QEMU VMs): skip cleanly where the machine cannot run them."""
import os
import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    is_root = os.geteuid() == 0
    missing = [t for t in ("systemd-nspawn", "debootstrap", "nsenter") if shutil.which(t) is None]
    for item in items:
        if "nspawn" not in item.keywords:
            continue
        if not is_root:
            item.add_marker(pytest.mark.skip(reason="nspawn containers need root"))
        elif missing:
            item.add_marker(pytest.mark.skip(reason=f"missing {', '.join(missing)} (scripts/setup installs them)"))


@pytest.fixture(scope="session")
def rootfs():
    """The cached bookworm rootfs for nspawn containers (debootstrapped once, about a minute)."""
    import time

    from hadaemon.testing.nspawn import ensure_rootfs

    t0 = time.monotonic()
    path = ensure_rootfs()
    print(f"\nnspawn rootfs ready in {time.monotonic() - t0:.1f}s: {path}")
    return path
