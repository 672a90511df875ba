"""One entry point for every dataset format: format name -> reader.

The CLI, the napari widget and training name a format and a path; this module opens the right reader
and hands back :class:`~napari_cosynth.sample.Sample` objects, resampled to a requested magnification
when the dataset's differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import CosynthError, DatasetError
from ..sample import Sample
from .base import LazyDataset, check_magnification

FORMATS = ("consep", "pannuke", "lizard", "endonuke", "folder")
# Formats whose readers give instance masks; the joint model needs masks (EndoNuke has points only).
TRAINABLE_FORMATS = ("consep", "pannuke", "lizard", "folder")


class UnknownFormatError(CosynthError, ValueError):
    """A dataset format name this package does not know."""


def _reader(format: str):
    # Imported on demand: each reader pulls in its own file libraries.
    if format == "consep":
        from .consep import ConsepDataset as reader
    elif format == "pannuke":
        from .pannuke import PannukeDataset as reader
    elif format == "lizard":
        from .lizard import LizardDataset as reader
    elif format == "endonuke":
        from .endonuke import EndonukeDataset as reader
    elif format == "folder":
        from .folder import FolderDataset as reader
    else:
        raise UnknownFormatError(f"unknown dataset format {format!r}; known formats: {', '.join(FORMATS)}")
    return reader


def open_dataset(path: str | Path, format: str, *, magnification: float | None = None) -> LazyDataset:
    """Open a dataset for random access.

    Parameters
    ----------
    path
        The dataset folder (see docs/formats.md for what each format expects).
    format
        One of :data:`FORMATS`.
    magnification
        If given, every sample at another magnification is resampled to it.

    Returns
    -------
    LazyDataset
        Supports ``len(ds)``, ``ds[i] -> Sample`` (read from disk on each access), iteration and
        ``ds.names`` (one unique name per sample).

    Raises
    ------
    UnknownFormatError
        ``format`` is not one of :data:`FORMATS`.
    DatasetError
        The folder does not hold a dataset of that format, or a file in it is broken.
    """
    reader = _reader(format)
    check_magnification(magnification)
    if not Path(path).exists():
        raise DatasetError(path, "no such file or folder")
    return reader(path, magnification=magnification)


def read_dataset(path: str | Path, format: str, *, magnification: float | None = None) -> Iterator[Sample]:
    """Iterate over a dataset's samples, reading one at a time.

    The dataset is opened (and its layout checked) when this is called; each sample is read when the
    iterator reaches it, so memory holds one sample at a time. Parameters as :func:`open_dataset`.
    """
    dataset = open_dataset(path, format, magnification=magnification)
    return iter(dataset)


def count_samples(path: str | Path, format: str) -> int:
    """How many samples the dataset holds (files are listed, not read)."""
    return len(open_dataset(path, format))
