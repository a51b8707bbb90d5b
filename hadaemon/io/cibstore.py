"""The CIB on disk: state_dir/cib.xml written atomically (write, fsync, rename, fsync dir), its
previous copy cib.last, and the scheduler inputs archived as pe-input/pe-input-N.xml (newest kept)."""
from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import List

from hadaemon.io.files import write_atomic

__all__ = ["CibStore", "PE_INPUTS_KEPT"]

PE_INPUTS_KEPT = 200
_PE_RE = re.compile(r"^pe-input-(\d+)\.xml$")

log = logging.getLogger("ha-crmd")


class CibStore:
    """Persistence of one node's CIB copy and of the scheduler inputs it computed (DC only)."""

    def __init__(self, state_dir: str, keep: int = PE_INPUTS_KEPT):
        self.dir = state_dir
        self.path = os.path.join(state_dir, "cib.xml")
        self.sig_path = os.path.join(state_dir, "cib.xml.sig")
        self.last_path = os.path.join(state_dir, "cib.last")
        self.pe_dir = os.path.join(state_dir, "pe-input")
        self.keep = keep
        self._seq: int | None = None
        self._last_written = b""
        self._last_input: tuple | None = None

    def check(self) -> None:
        """Make sure the state directory exists and is writable (raises OSError)."""
        os.makedirs(self.dir, mode=0o750, exist_ok=True)
        probe = os.path.join(self.dir, ".probe")
        with open(probe, "wb"):
            pass
        os.unlink(probe)

    def load(self) -> str | None:
        """The saved CIB text, or None when there is none. A copy whose checksum does not match its
        .sig (a torn write from an older version, an edit by hand) is still returned, with a warning."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            with open(self.sig_path) as f:
                sig = f.read().strip()
            if sig and sig != hashlib.sha256(data).hexdigest():
                log.warning("%s does not match %s (edited by hand?); using it anyway", self.path, self.sig_path,
                            extra={"EVENT": "cib-checksum"})
        except FileNotFoundError:
            pass
        self._last_written = data
        return data.decode("utf-8")

    def save(self, text: str) -> bool:
        """Persist the CIB atomically (no-op when unchanged); the previous copy becomes cib.last."""
        data = text.encode("utf-8")
        if data == self._last_written:
            return False
        if self._last_written:
            write_atomic(self.last_path, self._last_written, 0o600)
        write_atomic(self.path, data, 0o600)
        write_atomic(self.sig_path, (hashlib.sha256(data).hexdigest() + "\n").encode(), 0o600)
        self._last_written = data
        return True

    # -- wait_for_all, across a restart of ha-crmd alone ------------------------------------------------
    def load_seen_all(self) -> int:
        """The ha-heartbeat generation during which every configured node was seen together (0: none).
        While that ha-heartbeat still runs, a restarted ha-crmd keeps wait_for_all satisfied, as
        corosync's votequorum does for the life of corosync."""
        try:
            with open(os.path.join(self.dir, "quorum-seen-all")) as f:
                return int(f.read().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return 0

    def save_seen_all(self, generation: int) -> None:
        write_atomic(os.path.join(self.dir, "quorum-seen-all"), f"{int(generation)}\n".encode(), 0o600)

    # -- scheduler inputs ---------------------------------------------------------------------------
    def _existing(self) -> List[int]:
        try:
            names = os.listdir(self.pe_dir)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_PE_RE.match, names) if m)

    def archive_input(self, text: str) -> str:
        """Save one scheduler input as pe-input-N.xml (N increasing across restarts); keep the newest.
        An input identical to the one archived just before is not saved again (its path is returned)."""
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        if self._last_input is not None and self._last_input[0] == digest and os.path.exists(self._last_input[1]):
            return self._last_input[1]
        os.makedirs(self.pe_dir, mode=0o750, exist_ok=True)
        existing = self._existing() if self._seq is None else None
        if self._seq is None:
            self._seq = (existing[-1] + 1) if existing else 0
        n = self._seq
        self._seq += 1
        path = os.path.join(self.pe_dir, f"pe-input-{n}.xml")
        write_atomic(path, text.encode("utf-8"), 0o600)
        self._last_input = (digest, path)
        self._prune()
        return path

    def _prune(self) -> None:
        existing = self._existing()
        for n in existing[:-self.keep] if len(existing) > self.keep else []:
            try:
                os.unlink(os.path.join(self.pe_dir, f"pe-input-{n}.xml"))
            except FileNotFoundError:
                pass

    def inputs(self) -> List[str]:
        return [os.path.join(self.pe_dir, f"pe-input-{n}.xml") for n in self._existing()]
