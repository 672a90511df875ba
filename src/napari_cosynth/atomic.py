"""Atomic writes: a file or a folder appears whole under its final name, or not at all.

Everything the project writes for users (pairs, exports, checkpoints, reports) goes through here, so a
killed process never leaves a half-written file under a name that a reader would trust.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Works for a file or a folder written at the yielded path. With ``overwrite=False`` an existing
    ``path`` is never replaced: :class:`FileExistsError` is raised and the temporary copy removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"nothing was written to {target}")
        if overwrite:
            os.replace(target, path)
        elif target.is_dir() or not _link_exclusively(target, path):
            # rename() of a directory onto an existing empty one would succeed silently, so check
            # again right before the rename.
            if path.exists():
                raise FileExistsError(f"{path} already exists; refusing to overwrite it")
            os.rename(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _link_exclusively(target: Path, path: Path) -> bool:
    """Give the file ``target`` the name ``path`` unless ``path`` exists: one atomic step.

    rename() would replace a file another process created after our check; link() fails instead
    (an exclusive create of the finished file). False where the file system has no hard links.
    """
    try:
        os.link(target, path)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
                         errno.ENOSYS):
            return False
        raise
    return True


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; with ``overwrite=False`` an exclusive create."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def replace_folder(new: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Rename the complete folder ``new`` to ``folder``, replacing an earlier ``folder``.

    A rename cannot replace a non-empty folder, so the earlier one is first moved aside into a hidden
    temporary folder beside it, and deleted once the new one is in place: a reader sees the old
    folder or the new one, never a mix (for an instant, neither).
    """
    new, folder = Path(new), Path(folder)
    aside = None
    if folder.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        os.rename(folder, aside / folder.name)
    os.rename(new, folder)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
