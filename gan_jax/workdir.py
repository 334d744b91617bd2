"""One training process per workdir: an advisory lock the OS drops when the process dies (kill -9 too)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class WorkdirBusyError(RuntimeError):
    """Another process is training into the same workdir."""


@contextlib.contextmanager
def exclusive(workdir: str | Path):
    """Hold WORKDIR/.lock for the duration; WorkdirBusyError if another process holds it."""
    path = Path(workdir) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise WorkdirBusyError(
                f"workdir {Path(workdir)} is in use by another training process (pid {holder}); "
                f"wait for it to finish or use another --workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
