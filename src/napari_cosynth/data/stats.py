"""Summary counts of a dataset (``cosynth dataset stats``): samples, nuclei per class, image sizes.

Reads every sample once, so it doubles as a check that the whole dataset is readable.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .registry import open_dataset


def dataset_stats(path: str | Path, format: str, magnification: float | None = None) -> dict[str, Any]:
    """Count a dataset's samples and nuclei.

    Parameters
    ----------
    path, format
        As for :func:`~napari_cosynth.data.registry.open_dataset`.
    magnification
        Resample to this magnification first (changes image sizes, and may drop nuclei cut to nothing).

    Returns
    -------
    dict
        ``format``, ``path``, ``n_samples``, ``n_nuclei``, ``nuclei_per_class`` {class name: count,
        every class of the vocabulary listed, in vocabulary order}, ``image_sizes`` {"HxW": count}
        (height x width in pixels; "unknown" for points-only samples without an image),
        ``magnification`` (the one value all samples share, or None if they differ),
        ``magnifications`` {value: count}, ``points_only`` (samples without masks), ``tissues``
        {tissue: count} and ``vocabulary`` (class names, background first; None if samples differ).
        JSON-serialisable.
    """
    dataset = open_dataset(path, format, magnification=magnification)
    per_class: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    magnifications: Counter[float] = Counter()
    tissues: Counter[str] = Counter()
    vocabularies: dict[tuple[str, ...], None] = {}
    n_nuclei = points_only = 0
    for sample in dataset:
        names = sample.vocabulary.names
        if names not in vocabularies:
            # A folder of pairs may mix vocabularies: classes are counted by name, all listed.
            vocabularies[names] = None
            per_class.update(dict.fromkeys(names[1:], 0))
        ids = np.asarray(sample.classes if sample.has_masks else sample.points.classes, dtype=np.int64)
        values, counts = np.unique(ids, return_counts=True)
        for class_id, count in zip(values.tolist(), counts.tolist(), strict=True):
            per_class[names[class_id]] += count
        n_nuclei += len(ids)
        points_only += not sample.has_masks
        if sample.has_masks or sample.image is not None:
            h, w = sample.shape
            sizes[f"{h}x{w}"] += 1
        else:
            sizes["unknown"] += 1
        magnifications[float(sample.magnification)] += 1
        tissues[sample.tissue] += 1
    return {
        "format": format,
        "path": str(path),
        "n_samples": len(dataset),
        "n_nuclei": n_nuclei,
        "nuclei_per_class": dict(per_class),
        "image_sizes": dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "magnification": next(iter(magnifications)) if len(magnifications) == 1 else None,
        "magnifications": {_number(m): c for m, c in sorted(magnifications.items())},
        "points_only": points_only,
        "tissues": dict(sorted(tissues.items())),
        "vocabulary": list(next(iter(vocabularies))) if len(vocabularies) == 1 else None,
    }


def _number(value: float) -> str:
    return f"{value:g}"
