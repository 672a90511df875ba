"""Evaluation metrics: HoVer-Net's instance and detection scores, FSD, and folder comparison.

numpy/scipy only. Definitions, sources and edge cases: docs/metrics.md.
"""

from .compare import compare_folders
from .detection import DetectionCounts, pair_centroids, radius_for
from .distribution import class_proportions, frechet_distance, fsd
from .instance import (
    aji,
    aji_plus,
    dice,
    instance_scores,
    object_dice,
    object_dice_glas,
    pq,
)

__all__ = [
    "DetectionCounts",
    "aji",
    "aji_plus",
    "class_proportions",
    "compare_folders",
    "dice",
    "frechet_distance",
    "fsd",
    "instance_scores",
    "object_dice",
    "object_dice_glas",
    "pair_centroids",
    "pq",
    "radius_for",
]
