"""npe2 reader: open a pair folder of the project's folder format as layers."""

from __future__ import annotations

from pathlib import Path


def get_reader(path):
    """Return a reader for a folder holding a pair (``meta.json`` + ``image.png``), else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if not (path.is_dir() and (path / "meta.json").is_file()):
        return None
    return _read


def _read(path):
    from ..data.folder import read_sample
    from .layers import sample_to_layers

    if isinstance(path, list):
        path = path[0]
    return sample_to_layers(read_sample(path))
