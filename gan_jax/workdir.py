"""One training process per workdir, and one-line messages for a workdir the OS refuses.

The lock is an advisory flock on the workdir directory itself, so the OS drops it when the process
dies (kill -9 too) and deleting WORKDIR/.lock (which only names the holder's pid) cannot free it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path


class WorkdirBusyError(RuntimeError):
    """Another process is training into the same workdir."""


def _flock(workdir: Path) -> int:
    """An fd holding an exclusive flock on the workdir folder, or on WORKDIR/.lock where the file
    system cannot lock a folder (NFS emulates flock with write locks, which need a file open for
    writing); BlockingIOError when another process holds it."""
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:
        os.close(fd)
    fd = os.open(workdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def exclusive(workdir: str | Path):
    """Hold the workdir's lock for the duration; WorkdirBusyError if another process holds it."""
    workdir = Path(workdir)
    try:
        fd = _flock(workdir)
    except BlockingIOError:
        try:
            holder = (workdir / ".lock").read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise WorkdirBusyError(
            f"workdir {workdir} is in use by another training process (pid {holder}); "
            f"wait for it to finish or use another --workdir") from None
    try:
        (workdir / ".lock").write_text(str(os.getpid()))
        yield
    finally:
        os.close(fd)  # closing releases the lock


def os_error_message(error: OSError, workdir: str | Path) -> str:
    """One line saying which file the OS refused, why, and what to do."""
    where = error.filename or workdir
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device of {where}; free some space and rerun the same "
                f"command: training resumes from the last checkpoint")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {where} ({error.strerror}); make the workdir writable or pass "
                f"another --workdir")
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        return (f"--workdir {workdir} is not a directory ({where} or a folder above it is a file); "
                f"pass another --workdir")
    return f"{error.strerror or error} ({where}); check the --workdir and its file system"
