"""The CIB on disk: state_dir/cib.xml written atomically (write, fsync, rename, fsync dir), its
previous copy cib.last, and the scheduler inputs archived as pe-input/pe-input-N.xml (newest kept).

With ``background=True`` (ha-crmd) the writes go to a thread of their own: save() and archive_input()
queue the data and return at once (a save replaces a save still queued: only the newest copy is
written), so the event loop never waits for fsync (six of them per save, 20 ms each and up to 0.4 s on
a busy disk, were on the path of every failover, join and transition step). What must be on disk
before it is acknowledged waits for when_saved() (a future of the loop) or flush()."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from typing import List, Set, Tuple

from hadaemon.io.files import write_atomic

__all__ = ["CibStore", "PE_INPUTS_KEPT"]

PE_INPUTS_KEPT = 200
_PE_RE = re.compile(r"^pe-input-(\d+)\.xml$")

log = logging.getLogger("ha-crmd")


class CibStore:
    """Persistence of one node's CIB copy and of the scheduler inputs it computed (DC only)."""

    def __init__(self, state_dir: str, keep: int = PE_INPUTS_KEPT, background: bool = False):
        self.dir = state_dir
        self.background = background
        self._cond = threading.Condition()
        self._pending_cib: bytes | None = None
        self._pending_inputs: List[Tuple[str, bytes]] = []
        self._writing: Set[str] = set()
        self._queued = 0          # writes queued so far (generation)
        self._done = 0            # generation written (or failed: logged) so far
        self._waiters: List[tuple] = []   # (generation, loop, future)
        self._thread: threading.Thread | None = None
        self._closing = False
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
        """Persist the CIB atomically (no-op when unchanged); the previous copy becomes cib.last.
        In background mode the write is queued (see the module doc)."""
        data = text.encode("utf-8")
        if self.background:
            with self._cond:
                last = self._pending_cib if self._pending_cib is not None else (
                    self._last_queued or self._last_written)
                if data == last:
                    return False
                self._pending_cib = data
                self._last_queued = data
                self._enqueue_locked()
            return True
        return self._write_cib(data)

    _last_queued = b""

    def _write_cib(self, data: bytes) -> bool:
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
        if self._last_input is not None and self._last_input[0] == digest and (
                os.path.exists(self._last_input[1]) or self._queued_input(self._last_input[1])):
            return self._last_input[1]
        os.makedirs(self.pe_dir, mode=0o750, exist_ok=True)
        existing = self._existing() if self._seq is None else None
        if self._seq is None:
            self._seq = (existing[-1] + 1) if existing else 0
        n = self._seq
        self._seq += 1
        path = os.path.join(self.pe_dir, f"pe-input-{n}.xml")
        self._last_input = (digest, path)
        if self.background:
            with self._cond:
                self._pending_inputs.append((path, text.encode("utf-8")))
                self._enqueue_locked()
            return path
        write_atomic(path, text.encode("utf-8"), 0o600)
        self._prune()
        return path

    # -- the background writer --------------------------------------------------------------------------
    def _queued_input(self, path: str) -> bool:
        with self._cond:
            return path in self._writing or any(p == path for p, _ in self._pending_inputs)

    def _enqueue_locked(self) -> None:
        self._queued += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name="cib-writer", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _writer(self) -> None:
        while True:
            with self._cond:
                while self._pending_cib is None and not self._pending_inputs and not self._closing:
                    self._cond.wait()
                if self._pending_cib is None and not self._pending_inputs:
                    return
                cib, self._pending_cib = self._pending_cib, None
                inputs, self._pending_inputs = self._pending_inputs, []
                self._writing = {p for p, _ in inputs}     # taken from the queue, not yet on disk
                generation = self._queued
            try:
                if cib is not None:
                    self._write_cib(cib)
                for path, data in inputs:
                    write_atomic(path, data, 0o600)
                if inputs:
                    self._prune()
            except OSError as exc:
                log.error("cannot persist the CIB in %s: %s", self.dir, exc, extra={"EVENT": "cib-persist-failed"})
            with self._cond:
                self._writing = set()
                self._done = max(self._done, generation)
                ready = [w for w in self._waiters if w[0] <= self._done]
                self._waiters = [w for w in self._waiters if w[0] > self._done]
                self._cond.notify_all()
            for _gen, loop, fut in ready:
                loop.call_soon_threadsafe(_resolve, fut)

    def when_saved(self, loop):
        """A future of loop, done once everything queued so far is on disk (at once when not in
        background mode or nothing is queued)."""
        fut = loop.create_future()
        with self._cond:
            if not self.background or self._done >= self._queued:
                fut.set_result(None)
            else:
                self._waiters.append((self._queued, loop, fut))
        return fut

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything queued so far is on disk; False on timeout."""
        with self._cond:
            target = self._queued
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the writer thread."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _prune(self) -> None:
        existing = self._existing()
        for n in existing[:-self.keep] if len(existing) > self.keep else []:
            try:
                os.unlink(os.path.join(self.pe_dir, f"pe-input-{n}.xml"))
            except FileNotFoundError:
                pass

    def inputs(self) -> List[str]:
        return [os.path.join(self.pe_dir, f"pe-input-{n}.xml") for n in self._existing()]


def _resolve(fut) -> None:
    if not fut.done():
        fut.set_result(None)
