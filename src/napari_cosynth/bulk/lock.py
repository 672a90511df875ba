"""One run at a time per output folder: an OS lock on ``DIR/.generate-dataset.lock``.

A second ``generate-dataset`` started into a folder another one is writing would clean up the first's
half-built pairs as leftovers of a killed run and race it for the recipe. The lock is an advisory
``flock`` (``msvcrt.locking`` on Windows) held by the run's rank 0 from start-up to the end: the
operating system drops it when the process ends, however it ends, so a killed run never leaves a
stale lock. The file itself stays (deleting a lock file others may be waiting on would let two runs
hold two different files) and records the holder's pid and host for the refusal message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..errors import CosynthError

LOCK_FILE = ".generate-dataset.lock"


class FolderLock:
    """A held lock; :meth:`release` (or the end of the process) frees it."""

    def __init__(self, handle, path: Path):
        self._handle, self.path = handle, path

    def release(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.close()  # closing the file drops the lock
        self._handle = None


def lock_folder(folder: str | Path, what: str = "generate-dataset") -> FolderLock:
    """Take the folder's lock without waiting; a CosynthError naming the holder when it is taken.

    ``folder`` must exist. OSErrors (a read-only or full file system) propagate for the caller to word.
    """
    path = Path(folder) / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
    try:
        if not _try_lock(handle):
            holder = _holder(handle)
            raise CosynthError(
                f"{folder}: another {what} run ({holder}) is writing to this folder; wait for it to "
                "finish (then rerun to resume or extend it), or choose another --out"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return FolderLock(handle, path)


def _holder(handle) -> str:
    try:
        handle.seek(0)
        return handle.read().strip() or "an unknown process"
    except OSError:  # Windows refuses to read a locked region
        return "an unknown process"


def _try_lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
