"""One entry point for every dataset format: format name -> its entry (reader, classes, stain, masks).

The CLI, the napari widget and training name a format and a path; this module opens the right reader
and hands back :class:`~napari_cosynth.sample.Sample` objects, resampled to a requested magnification
when the dataset's differs.

Each format's :class:`~.base.DatasetFormat` is declared in its reader's module, beside the reader; the
tuple below lists them, and every other list of formats (:data:`FORMATS` for the CLI's choices,
:data:`TRAINABLE_FORMATS` for training configs) is derived from it. Adding a format is one new reader
module plus one line here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import CosynthError, DatasetError
from ..sample import Sample
from . import consep, endonuke, folder, lizard, pannuke
from .base import DatasetFormat, LazyDataset, check_magnification

# The readers import their file libraries (scipy.io, tifffile, imageio) only when they read a file,
# so listing every format here costs no more than numpy.
REGISTRY: Mapping[str, DatasetFormat] = MappingProxyType({
    entry.name: entry
    for entry in (consep.DATASET_FORMAT, pannuke.DATASET_FORMAT, lizard.DATASET_FORMAT,
                  endonuke.DATASET_FORMAT, folder.DATASET_FORMAT)
})

FORMATS = tuple(REGISTRY)
# Formats whose readers give instance masks; the joint model needs masks (EndoNuke has points only).
TRAINABLE_FORMATS = tuple(name for name, entry in REGISTRY.items() if entry.has_masks)


class UnknownFormatError(CosynthError, ValueError):
    """A dataset format name this package does not know."""


def dataset_format(format: str) -> DatasetFormat:
    """The registry entry of ``format``; an unknown name is an :class:`UnknownFormatError`."""
    try:
        return REGISTRY[format]
    except (KeyError, TypeError):
        raise UnknownFormatError(
            f"unknown dataset format {format!r}; known formats: {', '.join(FORMATS)}"
        ) from None


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
    reader = dataset_format(format).reader
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
