"""A tiny synthetic folder-format dataset for the segmenter tests: dark discs on a pink background.

Nuclei are drawn with a colour per class so that the tiny network can learn both the masks and the
classes from a few dozen steps; the images are 48 x 48 at 20x with CoNSeP's vocabulary.
"""

from __future__ import annotations

import numpy as np

from napari_cosynth.data.folder import write_sample
from napari_cosynth.sample import Sample
from napari_cosynth.vocabularies import CONSEP

CLASS_COLOURS = {1: (70, 20, 90), 2: (30, 30, 150), 3: (120, 40, 60), 4: (60, 80, 40)}


def disc_sample(seed: int, size: int = 48, n: int = 6, name: str | None = None) -> Sample:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    instances = np.zeros((size, size), np.int32)
    classes = []
    image = np.empty((size, size, 3), np.float64)
    image[:] = (235, 180, 210)
    for _ in range(n * 4):
        if len(classes) == n:
            break
        r = rng.uniform(3, 5)
        cy, cx = rng.uniform(r, size - r, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if (instances[disc] > 0).any():
            continue
        classes.append(int(rng.integers(1, 5)))
        instances[disc] = len(classes)
        image[disc] = CLASS_COLOURS[classes[-1]]
    image += rng.normal(0, 6, image.shape)
    return Sample(
        image=np.clip(image, 0, 255).astype(np.uint8), instances=instances, classes=np.array(classes),
        vocabulary=CONSEP, tissue="colon", magnification=20.0, name=name or f"disc-{seed}",
    )


def write_disc_dataset(root, seeds=(0, 1, 2), size: int = 48):
    for seed in seeds:
        write_sample(disc_sample(seed, size), root)
    return root
