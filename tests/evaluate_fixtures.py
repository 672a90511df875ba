"""Tiny folder-format datasets for the evaluation tests (CoNSeP classes, 20x like tiny_checkpoint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_fixtures import disk_instances, grid_centres
from napari_cosynth.data.folder import write_sample
from napari_cosynth.sample import Sample
from napari_cosynth.vocabularies import CONSEP


def write_tiny_folder(root: Path, n: int = 3, shapes=None, points_only: bool = False, seed: int = 0) -> Path:
    """``n`` samples with a few disk nuclei of mixed classes on random images; returns ``root``."""
    rng = np.random.default_rng(seed)
    shapes = shapes or [(32, 32)] * n
    for k, shape in enumerate(shapes):
        count = 3 + k
        instances = disk_instances(shape, grid_centres(shape, count))
        classes = (np.arange(count) + k) % 4 + 1
        image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
        sample = Sample(image, instances, classes, CONSEP, tissue="colon", magnification=20.0,
                        name=f"s{k}")
        if points_only:
            sample = Sample(image, None, np.zeros(0), CONSEP, tissue="colon", magnification=20.0,
                            name=f"s{k}", points=sample.point_table())
        write_sample(sample, root)
    return root
