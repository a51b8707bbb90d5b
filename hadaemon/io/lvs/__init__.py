"""LVS backends (kernel IPVS over netlink, nftables DNAT) and the choice between them."""
from __future__ import annotations

import logging

from hadaemon.io.lvs.base import Backend, BackendError

__all__ = ["make_backend"]

log = logging.getLogger("ha-ldirectord")


def make_backend(name: str) -> Backend:
    """The backend by name; 'auto' picks IPVS when the kernel has it, else nftables."""
    from hadaemon.io.lvs.nft import NftBackend

    if name in ("ipvs", "auto"):
        from hadaemon.io.lvs.ipvs import IPVSBackend

        reason = IPVSBackend.unavailable()
        if not reason:
            return IPVSBackend()
        if name == "ipvs":
            raise BackendError(reason + "; use --backend nft on kernels without IPVS")
        log.info("%s: using the nftables backend", reason)
    reason = NftBackend.unavailable()
    if reason:
        raise BackendError(reason)
    return NftBackend()
