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


@contextlib.contextmanager
def exclusive(workdir: str | Path):
    """Hold the workdir's lock for the duration; WorkdirBusyError if another process holds it."""
    pid_file = Path(workdir) / ".lock"
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = pid_file.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise WorkdirBusyError(
                f"workdir {Path(workdir)} is in use by another training process (pid {holder}); "
                f"wait for it to finish or use another --workdir") from None
        pid_file.write_text(str(os.getpid()))
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
