"""The contract every LVS backend (IPVS, nftables) fulfils: read the kernel's table, apply diff operations."""
from __future__ import annotations

import abc
from typing import Iterable, List

from hadaemon.core.director.lvs_table import Op, Table


class BackendError(Exception):
    """An operation the kernel refused. `op` is the failing operation; the ones before it were applied."""

    def __init__(self, message: str, op: Op | None = None):
        super().__init__(message)
        self.op = op


class Backend(abc.ABC):
    """One way of programming the kernel's load-balancing table.

    The director owns the decisions (hadaemon.core.director.lvs_table.diff); a backend only reads and applies.
    Methods are synchronous and quick (one netlink round trip or one `nft -f` transaction per call); the
    daemon calls them from a worker thread.
    """

    name = "abstract"

    @classmethod
    @abc.abstractmethod
    def unavailable(cls) -> str:
        """'' when this backend can work on this kernel/host, else a one-line reason for people."""

    @abc.abstractmethod
    def read(self) -> Table:
        """The table as the kernel holds it now, as a `Table`.

        Guarantee: after `apply(ops)` returned, `read()` equals `apply_ops(previous read(), ops)` for every
        service this backend manages (services created by others are returned too, unchanged, where the
        backend can see them: IPVS shows the whole kernel table; nftables only its own table).
        Reading never modifies anything, so a director starting up can adopt the existing table.
        """

    @abc.abstractmethod
    def apply(self, ops: Iterable[Op]) -> None:
        """Apply `ops` in order.

        Guarantee: each op either takes effect or raises BackendError naming it; ops before the failing
        one stay applied (the caller re-reads and re-diffs to converge). A backend that can apply a batch
        atomically (nftables) applies all of them or none, and raises BackendError with op=None.
        """

    def clear(self, keys: Iterable[str]) -> List[Op]:
        """Remove the virtual services with these keys (cleanstop) and return the ops that were applied."""
        from hadaemon.core.director.lvs_table import diff

        current = self.read()
        mine = {k: v for k, v in current.items() if k in set(keys)}
        ops = diff(mine, {})
        self.apply(ops)
        return ops

    def close(self) -> None:
        """Release sockets; the kernel table stays as it is."""
        return None
