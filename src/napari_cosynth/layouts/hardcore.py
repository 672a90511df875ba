"""A marked hard-core point process: a plausible layout when the user gives no points.

Nuclei do not overlap, so a layout is a set of centroids kept at least a nucleus diameter apart with a
class drawn per point. Sequential inhibition (random candidates, each kept if it is far enough from
those kept so far) is the textbook way to draw such a pattern; no maintained Python library offers a
marked version with per-class spacing, and it takes a few lines with scipy's numpy. Its intensity
and class mix come from a model's training data, so ``cosynth generate`` without ``--points`` draws
layouts with the nucleus density and class proportions the model was trained on.
"""

from __future__ import annotations

import numpy as np

from ..errors import CosynthError
from ..sample import PointTable, Vocabulary


def hardcore_layout(shape: tuple[int, int], n_points: int, class_probs, min_distance: float,
                    rng: np.random.Generator | int | None = None) -> PointTable:
    """Up to ``n_points`` centroids at least ``min_distance`` apart, classes drawn from ``class_probs``.

    ``class_probs`` has one entry per nucleus class (ids 1..K-1). Fewer points come back when the
    canvas cannot hold ``n_points`` at that spacing (the process saturates), never points closer
    than ``min_distance``.
    """
    rng = np.random.default_rng(rng)
    h, w = shape
    probs = np.asarray(class_probs, dtype=float)
    if probs.ndim != 1 or probs.size == 0 or (probs < 0).any() or probs.sum() <= 0:
        raise CosynthError(f"class_probs must be non-negative weights per nucleus class, got {class_probs}")
    if n_points < 0 or min_distance < 0:
        raise CosynthError("n_points and min_distance must be >= 0")
    kept = np.zeros((n_points, 2))
    n_kept = 0
    min_d2 = float(min_distance) ** 2
    # Candidates come in batches; 30 rejected batches in a row means the canvas is saturated.
    misses = 0
    while n_kept < n_points and misses < 30:
        candidates = rng.uniform((0, 0), (w - 1, h - 1), size=(4 * n_points + 8, 2))
        added = 0
        for c in candidates:
            if n_kept and ((kept[:n_kept] - c) ** 2).sum(axis=1).min() < min_d2:
                continue
            kept[n_kept] = c
            n_kept += 1
            added += 1
            if n_kept == n_points:
                break
        misses = 0 if added else misses + 1
    xy = kept[:n_kept]
    classes = rng.choice(np.arange(1, probs.size + 1), size=len(xy), p=probs / probs.sum())
    return PointTable(xy, classes)


def layout_like_training_data(summary: dict | None, vocabulary: Vocabulary, shape: tuple[int, int],
                              magnification: float, rng=None) -> PointTable:
    """A hard-core layout with the nucleus density and class mix of a model's training data.

    ``summary`` is the training-data record a checkpoint carries (``samples``, ``nuclei`` per class,
    ``image_sizes``). Without one, CoNSeP's figures at 20x are used (about one nucleus per 230 px²).
    The spacing is a typical nucleus diameter, 12 px at 40x scaled with magnification.
    """
    counts = np.ones(vocabulary.n_classes - 1)
    density = 1 / 230 * (magnification / 20.0) ** -2
    if summary and summary.get("nuclei") and summary.get("samples") and summary.get("image_sizes"):
        counts = np.array([summary["nuclei"].get(name, 0) for name in vocabulary.nucleus_classes], float)
        h0, w0 = summary["image_sizes"][0]
        density = counts.sum() / (summary["samples"] * h0 * w0)
    n = round(density * shape[0] * shape[1])
    return hardcore_layout(shape, n, counts, min_distance=6.0 * magnification / 20.0, rng=rng)
