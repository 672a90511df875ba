"""Dataset readers (CoNSeP, PanNuke, Lizard, EndoNuke) and the project's own pair folder format.

Every reader returns :class:`~napari_cosynth.sample.Sample` objects; see docs/formats.md for the
layouts each one expects and what it does with their quirks.
"""

from .base import DatasetFormat
from .folder import count_pairs, read_sample, write_sample
from .registry import (
    FORMATS,
    REGISTRY,
    TRAINABLE_FORMATS,
    UnknownFormatError,
    count_samples,
    dataset_format,
    open_dataset,
    read_dataset,
)
from .stats import dataset_stats

__all__ = [
    "FORMATS",
    "REGISTRY",
    "TRAINABLE_FORMATS",
    "DatasetFormat",
    "UnknownFormatError",
    "count_pairs",
    "count_samples",
    "dataset_format",
    "dataset_stats",
    "open_dataset",
    "read_dataset",
    "read_sample",
    "write_sample",
]
