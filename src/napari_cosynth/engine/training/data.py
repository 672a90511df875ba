"""Training crops for the joint model: any reader's samples as batches of tensors, in a reproducible order.

Every sample is read once, brought to the model's magnification, and its semantic and distance maps
are computed once and kept in memory (CoNSeP's training split at 20x takes about 85 MB); each crop then
only slices and transforms arrays. The distance map of the whole patch is cropped rather than
recomputed per crop, so a nucleus cut by the crop keeps the values it has in the tissue (its peak may
lie outside the crop); flips and 90-degree rotations move it with the other maps, since a per-nucleus
distance to the boundary is unchanged by them.

Every crop is a function of the run seed and a key ``(sample index, stream position)``; which keys each
step reads is decided by :mod:`.crop_stream`, so a resumed run sees exactly the crops an uninterrupted
run would.

Class balance. CoNSeP's rarest class ("other") is 2.3 % of its nuclei, and a model trained on uniform
crops almost never draws it. With ``class_balance = b``, a fraction ``b`` of the stream positions
(decided by a stream of their own, so ``b = 0`` gives exactly the crops of earlier runs) ignore the
order's sample and instead place the window around one nucleus: a class drawn uniformly from the
classes the data has, then a nucleus drawn uniformly among all nuclei of that class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...data.registry import REGISTRY
from ...errors import ConfigError, DatasetError
from ...labels.distance import distance_map
from ...labels.points import centroid_table, point_map
from ...prompts import prompt_for_points
from ...sample import Sample, Vocabulary

# Tag mixed into every crop seed so these streams never coincide with other uses of the run seed.
_CROP_STREAM = 0xC0_5E_ED
_BALANCE_STREAM = 0xBA_1A_CE


@dataclass
class _Patch:
    """One training patch with its targets, precomputed once."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8
    instances: np.ndarray  # (H, W) int32, 1..N
    classes: np.ndarray  # (N,) int64
    semantic: np.ndarray  # (H, W) uint8
    distance: np.ndarray  # (H, W) float32 in [0, 1]
    tissue: str
    magnification: float
    centres: np.ndarray  # (N, 2) int64 (row, col) of each instance's centroid; -1 where absent


def normalise_class_names(classes: Sequence[str]) -> tuple[str, ...]:
    """A config's class list as nucleus class names (a leading 'background' is accepted and dropped)."""
    names = tuple(str(c) for c in classes)
    if names and names[0] == "background":
        names = names[1:]
    return names


def check_classes(configured: Sequence[str] | None, vocabulary: Vocabulary, where: str) -> Vocabulary:
    """The vocabulary to train with: the data's, after checking ``data.classes`` against it.

    Raises
    ------
    ConfigError
        If ``configured`` names other classes, or the same classes in another order (ids would differ).
    """
    if configured is None:
        return vocabulary
    wanted = normalise_class_names(configured)
    if wanted != vocabulary.nucleus_classes:
        raise ConfigError(
            f"data.classes: {list(wanted)} does not match the classes of {where} "
            f"({list(vocabulary.nucleus_classes)}, ids 1..{vocabulary.n_classes - 1} in that order); "
            "set data.classes to that list or leave it out to take the classes from the data"
        )
    return vocabulary


class CropDataset(torch.utils.data.Dataset):
    """Random augmented crops of annotated samples, as the tensors the training loss takes.

    Parameters
    ----------
    samples : sequence of Sample
        Annotated samples (with instance maps and images), already at the model's magnification;
        e.g. ``open_dataset(...)``. Each is read once here.
    crop_size : int
        Side of the square crops.
    tokenize : callable
        ``tokenize(list_of_prompts) -> LongTensor (B, L)``, the model's text tokenizer.
    vocabulary : Vocabulary
        The classes the model is trained on; every sample must use it.
    tissue : str, optional
        Tissue named in the prompts; None takes each sample's own.
    prompt_style : str
        ``"paper"`` or ``"structured"`` (see :func:`napari_cosynth.prompts.prompt_for_points`).
    staining : str
        Staining method named by structured prompts.
    seed : int
        Run seed; crops are a function of ``(seed, key)``.
    augment : bool
        Random flips and 90-degree rotations (the crop window is random either way).
    where : str
        How to name the data in error messages (its path).

    Raises
    ------
    ConfigError
        ``data.crop_size`` is larger than an image (after resampling), or a sample uses other classes.
    DatasetError
        A sample has no instance map or no image (points-only data cannot train the joint model).

    Notes
    -----
    ``dataset[key]`` takes ``key = (sample index, stream position)`` from
    :func:`.crop_stream.batch_keys`, or a plain sample index (equivalent to ``(index, index)``). It
    returns a dict: ``image`` float32 (3, C, C) in [-1, 1], ``distance`` float32 (1, C, C) in
    [-1, 1], ``labels`` int64 (C, C), ``point_map`` int64 (C, C), ``tokens`` int64 (L,), ``index``
    int64 and ``prompt`` (str).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        crop_size: int,
        tokenize: Callable[[list[str]], torch.Tensor],
        vocabulary: Vocabulary,
        tissue: str | None = None,
        prompt_style: str = "paper",
        staining: str = "H&E",
        seed: int = 0,
        augment: bool = True,
        class_balance: float = 0.0,
        where: str = "the training data",
    ):
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 1:
            raise ConfigError(f"data.crop_size: a positive whole number of pixels, got {crop_size!r}")
        self.crop_size = crop_size
        self.tokenize = tokenize
        self.vocabulary = vocabulary
        self.tissue = tissue
        self.prompt_style = prompt_style
        self.staining = staining
        self.seed = int(seed)
        self.augment = bool(augment)
        self.where = where
        if not 0.0 <= float(class_balance) <= 1.0:
            raise ConfigError(f"data.class_balance: a fraction in [0, 1], got {class_balance!r}")
        self.class_balance = float(class_balance)
        self.patches = [self._prepare(sample) for sample in samples]
        if not self.patches:
            raise DatasetError(where, "holds no samples to train on")
        self._by_class = self._nuclei_by_class()

    def _prepare(self, sample: Sample) -> _Patch:
        if not sample.has_masks or sample.image is None:
            raise DatasetError(
                self.where,
                f"sample {sample.name} has no instance map or no image; the joint model trains on "
                "annotated images only (points-only data can condition generation, not train it)",
            )
        if sample.vocabulary != self.vocabulary:
            raise ConfigError(
                f"data.classes: sample {sample.name} of {self.where} uses classes "
                f"{list(sample.vocabulary.nucleus_classes)}, not {list(self.vocabulary.nucleus_classes)}"
            )
        h, w = sample.shape
        if self.crop_size > min(h, w):
            raise ConfigError(
                f"data.crop_size: {self.crop_size} is larger than sample {sample.name} of {self.where} "
                f"({h}x{w} pixels at {sample.magnification:g}x); choose data.crop_size <= {min(h, w)} "
                "or a higher data.magnification"
            )
        return _Patch(
            name=sample.name,
            image=np.ascontiguousarray(sample.image),
            instances=sample.instances,
            classes=sample.classes,
            semantic=sample.semantic_map().astype(np.uint8),
            distance=(sample.distance if sample.distance is not None else distance_map(sample.instances))
            .astype(np.float32),
            tissue=sample.tissue,
            magnification=float(sample.magnification),
            centres=_instance_centres(sample.instances, len(sample.classes)),
        )

    def _nuclei_by_class(self) -> list[np.ndarray]:
        """For each nucleus class present in the data: an (M, 3) array of (patch, row, col)."""
        rows = [[] for _ in range(self.vocabulary.n_classes)]
        for i, p in enumerate(self.patches):
            present = p.centres[:, 0] >= 0
            for c, (y, x) in zip(p.classes[present], p.centres[present]):
                rows[int(c)].append((i, int(y), int(x)))
        return [np.asarray(r, dtype=np.int64) for r in rows[1:] if r]

    def __len__(self) -> int:
        return len(self.patches)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.patches]

    def __getitem__(self, key) -> dict:
        if isinstance(key, (int, np.integer)):
            key = (int(key), int(key))
        index, position = (int(k) for k in key)
        rng = np.random.default_rng([self.seed, _CROP_STREAM, position])
        centre = None
        if self.class_balance > 0 and self._by_class:
            balance = np.random.default_rng([self.seed, _BALANCE_STREAM, position])
            if balance.random() < self.class_balance:
                nuclei = self._by_class[int(balance.integers(len(self._by_class)))]
                index, *centre = (int(v) for v in nuclei[int(balance.integers(len(nuclei)))])
        return self.crop(index, rng, centre)

    def crop(self, index: int, rng: np.random.Generator, centre: tuple[int, int] | None = None) -> dict:
        """One random crop of sample ``index`` with a random dihedral transform, drawn from ``rng``.

        With ``centre`` (row, col), the window is drawn among those that contain that pixel.
        """
        patch = self.patches[index]
        c = self.crop_size
        h, w = patch.instances.shape
        y0 = int(rng.integers(0, h - c + 1))
        x0 = int(rng.integers(0, w - c + 1))
        if centre is not None:
            # The same draws as a uniform window, folded onto the windows that hold the centre.
            y0, x0 = _fold(y0, centre[0], c, h), _fold(x0, centre[1], c, w)
        # Drawn even without augmentation so that switching it keeps the windows and prompts.
        k = int(rng.integers(0, 4))
        flip = bool(rng.integers(0, 2))
        if not self.augment:
            k, flip = 0, False
        window = (slice(y0, y0 + c), slice(x0, x0 + c))

        def transform(a):
            a = np.rot90(a[window], k)
            return np.ascontiguousarray(a[:, ::-1] if flip else a)

        image = transform(patch.image)
        semantic = transform(patch.semantic)
        distance = transform(patch.distance)
        instances = transform(patch.instances)
        # Centroids of what is visible: a nucleus cut by the crop gets the centre of its visible part.
        points = centroid_table(instances, patch.classes)
        tissue = self.tissue or patch.tissue
        prompt = prompt_for_points(
            points, self.vocabulary, tissue, style=self.prompt_style, staining=self.staining, rng=rng
        )
        tokens = self.tokenize([prompt])[0]
        return {
            "image": torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0),
            "distance": torch.from_numpy(distance[None] * 2.0 - 1.0),
            "labels": torch.from_numpy(semantic.astype(np.int64)),
            "point_map": torch.from_numpy(point_map(points, (c, c)).astype(np.int64)),
            "tokens": tokens.to(torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "prompt": prompt,
        }

    def summary(self) -> dict:
        """Counts for a checkpoint's record of its training data."""
        counts = np.zeros(self.vocabulary.n_classes, dtype=np.int64)
        for p in self.patches:
            counts += np.bincount(p.classes, minlength=self.vocabulary.n_classes)
        shapes = sorted({p.instances.shape for p in self.patches})
        return {
            "samples": len(self.patches),
            "nuclei": {name: int(counts[i]) for i, name in enumerate(self.vocabulary.names) if i > 0},
            "image_sizes": [list(s) for s in shapes[:5]],
            "tissues": sorted({p.tissue for p in self.patches}),
            "magnifications": sorted({p.magnification for p in self.patches}),
        }


def _fold(start: int, centre: int, size: int, extent: int) -> int:
    """Map a window start drawn from 0..extent-size onto the starts whose window holds ``centre``."""
    lo, hi = max(centre - size + 1, 0), min(centre, extent - size)
    return lo + start % (hi - lo + 1)


def _instance_centres(instances: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) rounded centroid (row, col) of instances 1..n; -1 for ids with no pixels."""
    centres = np.full((n, 2), -1, dtype=np.int64)
    if n == 0:
        return centres
    points = centroid_table(instances, np.arange(1, n + 1))
    ids = points.classes.astype(np.int64)  # the ids of the instances that have pixels
    centres[ids - 1] = np.round(points.xy[:, ::-1]).astype(np.int64)
    return centres


def staining_of(format: str) -> str:
    """The staining method of a known dataset format (H&E when unknown or not fixed by the format)."""
    entry = REGISTRY.get(format)
    return (entry.staining if entry is not None else None) or "H&E"


def open_training_data(data_config, tokenize, *, seed: int = 0) -> CropDataset:
    """Open ``data.path`` with its reader at ``data.magnification`` and wrap it as a CropDataset.

    Parameters
    ----------
    data_config : DataConfig
        Uses ``path``, ``format``, ``magnification``, ``crop_size``, ``tissue``, ``prompt_style``,
        ``classes``, ``augment`` and ``class_balance`` (``repeat`` is applied by the data order, see
        :func:`.crop_stream.order_index`).
    tokenize : callable
        The model's tokenizer (see :class:`CropDataset`).
    seed : int
        The run seed.

    Raises
    ------
    ConfigError
        Classes that do not match the data, or a crop larger than the images, naming the key.
    DatasetError
        Unreadable data.
    """
    from ...data.registry import open_dataset

    path = _data_path(data_config)
    dataset = open_dataset(path, data_config.format, magnification=data_config.magnification)
    if len(dataset) == 0:
        raise DatasetError(path, "holds no samples to train on")
    vocabulary = check_classes(data_config.classes, dataset[0].vocabulary, str(path))
    return CropDataset(
        dataset,
        crop_size=data_config.crop_size,
        tokenize=tokenize,
        vocabulary=vocabulary,
        tissue=data_config.tissue,
        prompt_style=data_config.prompt_style,
        staining=staining_of(data_config.format),
        seed=seed,
        augment=data_config.augment,
        class_balance=data_config.class_balance,
        where=str(path),
    )


def peek_vocabulary(data_config) -> Vocabulary:
    """The vocabulary training on ``data_config`` will use, read from its first sample and checked."""
    from ...data.registry import open_dataset

    path = _data_path(data_config)
    dataset = open_dataset(path, data_config.format, magnification=None)
    if len(dataset) == 0:
        raise DatasetError(path, "holds no samples to train on")
    return check_classes(data_config.classes, dataset[0].vocabulary, str(path))


def _data_path(data_config):
    if not data_config.path:
        raise ConfigError("data.path: no training data given; set it to a dataset folder")
    return data_config.path
