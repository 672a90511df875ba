"""Training crops for the segmenter: whole datasets held in memory, random crops with augmentation.

The segmenter trains on small datasets (CoNSeP train at 20x is 27 images of 500 x 500; synthetic
sets of a few thousand 128 x 128 pairs), so every image with its class and distance targets is read
once and kept as uint8 / float32 arrays; each step then cuts random crops, which costs microseconds
where reading PNGs and recomputing distance maps per step would dominate a CPU run.

All randomness comes from one ``numpy.random.Generator`` owned by the trainer, whose state is stored
in the checkpoint, so a resumed run draws exactly the crops a straight run would have drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..sample import Vocabulary


@dataclass
class Pool:
    """Images and targets of one dataset, ready to crop.

    Attributes
    ----------
    images : list of (H, W, 3) uint8
    semantic : list of (H, W) uint8 class maps
    distance : list of (H, W) float32 maps in [0, 1]
    vocabulary : Vocabulary
    magnification : float
    source : str
        Where the samples came from (for messages and the run record).
    """

    images: list
    semantic: list
    distance: list
    vocabulary: Vocabulary
    magnification: float
    source: str

    def __len__(self) -> int:
        return len(self.images)


def load_pool(path: str | Path, format: str, magnification: float | None = None,
              samples: Sequence[str] | None = None) -> Pool:
    """Read every sample of a dataset (or the named ones) with its semantic and distance targets.

    Parameters
    ----------
    path, format
        The dataset (any format :func:`napari_cosynth.data.registry.open_dataset` reads).
    magnification
        Resample to this magnification first (None: keep the dataset's own).
    samples
        Names of the samples to read (a subset of the split, read in place, nothing copied);
        None reads them all.

    Raises
    ------
    DatasetError
        The dataset is empty, has points-only samples or samples without an image, or mixes
        vocabularies or magnifications.
    """
    from ..data.registry import open_dataset

    dataset = open_dataset(path, format, magnification=magnification)
    if len(dataset) == 0:
        raise DatasetError(path, f"holds no {format} samples to train on")
    if samples is not None and not len(samples):
        raise DatasetError(path, "the list of samples to train on is empty; name at least one")
    indices = range(len(dataset)) if samples is None else dataset.indices_of(samples)
    images, semantic, distance = [], [], []
    vocabulary = mag = None
    for sample in (dataset[i] for i in indices):
        if not sample.has_masks or sample.image is None:
            raise DatasetError(
                path,
                f"sample {sample.name} has no instance masks or no image; the segmenter trains on "
                "annotated images only (points-only datasets such as EndoNuke cannot be used)",
            )
        if vocabulary is None:
            vocabulary, mag = sample.vocabulary, float(sample.magnification)
        elif sample.vocabulary != vocabulary or float(sample.magnification) != mag:
            raise DatasetError(
                path,
                f"sample {sample.name} has vocabulary {sample.vocabulary.names} at "
                f"{sample.magnification}x, the first had {vocabulary.names} at {mag}x; give --mag to "
                "resample, and train on one vocabulary",
            )
        images.append(sample.image)
        semantic.append(sample.semantic_map().astype(np.uint8))
        distance.append(sample.distance_map().astype(np.float32))
    return Pool(images, semantic, distance, vocabulary, mag, str(path))


def check_compatible(real: Pool, extra: Pool) -> None:
    """An extra dataset must name the same classes, in the same order, at the same magnification."""
    if extra.vocabulary != real.vocabulary:
        raise DatasetError(
            extra.source,
            f"its classes {list(extra.vocabulary.nucleus_classes)} differ from the training data's "
            f"{list(real.vocabulary.nucleus_classes)}; extra data must use the same vocabulary",
        )
    if extra.magnification != real.magnification:
        raise DatasetError(
            extra.source,
            f"is at {extra.magnification}x but the training data is at {real.magnification}x; give "
            "--mag so that both are resampled to one magnification",
        )


class CropSampler:
    """Draws augmented training batches from a real pool and optional extra pools.

    Parameters
    ----------
    real : Pool
    extras : list of Pool
        Mixed in: each crop comes from the extras with probability ``extra_ratio`` (an extra pool
        chosen uniformly, then an image uniformly), otherwise from ``real``.
    crop_size : int
    extra_ratio : float
    colour_augment : bool
        Add colour jitter to the flips and right-angle rotations every crop receives.
    """

    def __init__(self, real: Pool, extras: list[Pool], crop_size: int, extra_ratio: float,
                 colour_augment: bool):
        self.real = real
        self.extras = [e for e in extras if len(e)]
        self.crop = int(crop_size)
        self.extra_ratio = float(extra_ratio) if self.extras else 0.0
        self.colour_augment = bool(colour_augment)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``size`` crops: images (B, C, C, 3) float32 in [0, 1], classes (B, C, C) int64,
        distance (B, C, C) float32."""
        c = self.crop
        images = np.empty((size, c, c, 3), np.float32)
        semantic = np.empty((size, c, c), np.int64)
        distance = np.empty((size, c, c), np.float32)
        for b in range(size):
            pool = self.real
            if self.extra_ratio and rng.random() < self.extra_ratio:
                pool = self.extras[int(rng.integers(len(self.extras)))]
            i = int(rng.integers(len(pool)))
            img, sem, dist = _crop(pool.images[i], pool.semantic[i], pool.distance[i], c, rng)
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            img, sem, dist = (_orient(a, k, flip) for a in (img, sem, dist))
            img = img.astype(np.float32) / 255.0
            if self.colour_augment:
                img = colour_jitter(img, rng)
            images[b], semantic[b], distance[b] = img, sem, dist
        return images, semantic, distance


def _crop(image, semantic, distance, c, rng):
    h, w = semantic.shape
    if h < c or w < c:
        # A patch smaller than the crop is padded with background (black image, class 0).
        ph, pw = max(0, c - h), max(0, c - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        semantic = np.pad(semantic, ((0, ph), (0, pw)))
        distance = np.pad(distance, ((0, ph), (0, pw)))
        h, w = semantic.shape
    y, x = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
    return image[y:y + c, x:x + c], semantic[y:y + c, x:x + c], distance[y:y + c, x:x + c]


def _orient(a, k, flip):
    a = np.rot90(a, k, axes=(0, 1))
    return a[:, ::-1] if flip else a


def colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Conventional colour augmentation of a (H, W, 3) float image in [0, 1].

    Brightness shift (+-0.1), contrast (x0.8-1.2 about the mean), saturation (x0.8-1.2 against the
    grey level) and a per-channel gain (x0.9-1.1) that imitates stain variation; clipped to [0, 1].
    """
    out = image + rng.uniform(-0.1, 0.1)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.8, 1.2) + mean
    grey = out.mean(axis=2, keepdims=True)
    out = (out - grey) * rng.uniform(0.8, 1.2) + grey
    out = out * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
