"""Atomic writes: a file or a folder appears whole under its final name, or not at all.

Everything the project writes for users (pairs, exports, checkpoints, reports) goes through here, so a
killed process never leaves a half-written file under a name that a reader would trust.
"""

from __future__ import annotations

import contextlib
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
        else:
            # link()/rename() of a directory onto an existing empty one would succeed silently,
            # so check again right before the rename.
            if path.exists():
                raise FileExistsError(f"{path} already exists; refusing to overwrite it")
            os.rename(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
