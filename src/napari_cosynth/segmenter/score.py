"""Scores of predicted nuclei against true ones, as the CoSyn / HoVer-Net tables report them.

Dice, AJI and PQ are averaged over images (hover_net's ``compute_stats.py`` does so); detection F1
(F_d), classification accuracy (Acc) and per-class F1 pool all nuclei of all images, with the
centroid pairing radius scaled to the magnification. Shared by ``cosynth evaluate alignment`` and
the downstream experiment, so both report exactly the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import CosynthError
from ..labels.points import centroid_table
from ..metrics.detection import DetectionCounts, radius_for
from ..metrics.instance import instance_scores
from ..sample import Sample

MEAN_KEYS = ("dice", "aji", "aji_plus", "dq", "sq", "pq")


def score_predictions(true_samples: Iterable[Sample], pred_samples: Iterable[Sample],
                      magnification: float) -> dict:
    """Score predictions against ground truth, image by image in the given order.

    Parameters
    ----------
    true_samples, pred_samples
        Samples with instance maps, paired by position; each pair must have the same size.
    magnification
        Sets the centroid pairing radius (:func:`radius_for`).

    Returns
    -------
    dict
        ``dice``, ``aji``, ``aji_plus``, ``dq``, ``sq``, ``pq`` (means over images); ``f_d``,
        ``acc``, ``f1`` (per class name), ``tp``, ``fp``, ``fn`` (pooled); ``n_images``,
        ``radius``.

    Raises
    ------
    CosynthError
        The two sequences differ in length or a pair differs in size; no images at all.
    """
    counts = DetectionCounts()
    per_image = {k: [] for k in MEAN_KEYS}
    radius = radius_for(magnification)
    vocabulary = None
    true_list, pred_list = list(true_samples), list(pred_samples)
    if len(true_list) != len(pred_list):
        raise CosynthError(f"{len(true_list)} true samples but {len(pred_list)} predictions")
    if not true_list:
        raise CosynthError("no samples to score")
    for true, pred in zip(true_list, pred_list, strict=True):
        if not (true.has_masks and pred.has_masks):
            raise CosynthError(f"{true.name}: scoring needs instance maps on both sides")
        if true.shape != pred.shape:
            raise CosynthError(f"{true.name}: the prediction is {pred.shape}, the truth {true.shape}")
        scores = instance_scores(true.instances, pred.instances)
        for k in MEAN_KEYS:
            per_image[k].append(scores[k])
        # Centroids of the instance maps on both sides: a generated pair's stored points are its input
        # layout, not what its labels show.
        counts.add(centroid_table(true.instances, true.classes),
                   centroid_table(pred.instances, pred.classes), radius)
        vocabulary = true.vocabulary
    result = {k: float(np.mean(v)) for k, v in per_image.items()}
    result.update(counts.result(vocabulary))
    result["radius"] = float(radius)
    return result
