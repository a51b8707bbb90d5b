"""Atomic file persistence: write to a temporary file in the same directory, fsync, rename."""
import os
import tempfile


def write_atomic(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """durable=False skips the fsyncs: still never torn for readers or a crash of the writer, but not
    kept through a power loss (for state under /run, which a reboot empties anyway)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        if not durable:
            return
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
