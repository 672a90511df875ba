"""Point layouts taken from real annotations, and two ways to perturb them.

A layout is a point table on a canvas of known size. The simplest realistic layouts are the ones a
dataset split already holds; :func:`layouts_from_dataset` reads them through the project's dataset
readers. Two perturbations make more of them: :func:`jitter` moves every centroid a little, and
:func:`rebalance` turns a share of common-class nuclei into a rare class, the label-side re-balancing
DiffMix applies before synthesising images, so a generator conditioned on the result produces more
rare-class examples at realistic positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CosynthError, DatasetError
from ..sample import PointTable, Vocabulary


@dataclass
class Layout:
    """A point table on an (H, W) canvas, with a name for the file it is written to."""

    points: PointTable
    shape: tuple[int, int]
    name: str = "layout"

    def __post_init__(self):
        self.shape = (int(self.shape[0]), int(self.shape[1]))

    @property
    def area(self) -> float:
        return float(self.shape[0] * self.shape[1])


def layouts_from_dataset(path, format: str, *, magnification: float | None = None
                         ) -> tuple[list[Layout], Vocabulary]:
    """The point table and canvas size of every sample of a dataset split.

    Parameters
    ----------
    path, format
        A dataset folder and its format name (see :mod:`napari_cosynth.data.registry`).
    magnification
        Resample every sample to this magnification first (e.g. 20 for CoNSeP at 40x).

    Returns
    -------
    (list of Layout, Vocabulary)
        One layout per sample, in the reader's order, and the dataset's class vocabulary.

    Raises
    ------
    DatasetError
        The folder holds no samples, or a points-only sample has no image to give its size.
    """
    from ..data.registry import read_dataset

    layouts, vocabulary = [], None
    for sample in read_dataset(path, format, magnification=magnification):
        try:
            shape = sample.shape
        except ValueError as error:
            raise DatasetError(path, f"{error}; layouts need the canvas size") from None
        layouts.append(Layout(sample.point_table(), shape, sample.name))
        vocabulary = sample.vocabulary
    if not layouts:
        raise DatasetError(path, f"no samples found in this {format} dataset")
    return layouts, vocabulary


def jitter(points: PointTable, shape: tuple[int, int], sigma: float, rng=None) -> PointTable:
    """Move every point by isotropic Gaussian noise of ``sigma`` pixels, clipped onto the canvas.

    Classes and the number of points are unchanged.
    """
    if sigma < 0:
        raise CosynthError(f"jitter sigma must be >= 0 pixels, got {sigma}")
    rng = np.random.default_rng(rng)
    h, w = shape
    xy = points.xy + rng.normal(0.0, sigma, size=points.xy.shape)
    xy[:, 0] = np.clip(xy[:, 0], 0, w - 1)
    xy[:, 1] = np.clip(xy[:, 1], 0, h - 1)
    return PointTable(xy, points.classes.copy())


def rebalance(points: PointTable, share: float, *, source: list[int] | None = None,
              target: int | None = None, vocabulary: Vocabulary | None = None, rng=None) -> PointTable:
    """Relabel a share of common-class nuclei as a rare class (DiffMix-style label re-balancing).

    Parameters
    ----------
    points
        The layout to perturb; positions and the number of points are kept.
    share
        Fraction (0..1) of the ``source`` nuclei that become ``target``.
    source
        Class ids to take nuclei from. Default: every class holding more than its equal share of
        the table's nuclei (the common classes).
    target
        Class id to turn them into. Default: the least frequent class of ``vocabulary``
        (needed then), ties to the lower id.
    rng
        Seed or generator choosing which nuclei change.

    Returns
    -------
    PointTable
        A new table; in each source class ``round(share * n)`` of its n nuclei now carry ``target``.
    """
    if not 0.0 <= share <= 1.0:
        raise CosynthError(f"re-balancing share must lie in 0..1, got {share}")
    rng = np.random.default_rng(rng)
    classes = points.classes.copy()
    if target is None:
        if vocabulary is None:
            raise CosynthError("rebalance needs a target class id or the vocabulary to choose the rarest")
        counts = np.array([(classes == c).sum() for c in range(1, vocabulary.n_classes)])
        target = int(np.argmin(counts)) + 1
    if source is None:
        present, counts = np.unique(classes, return_counts=True)
        source = [int(c) for c, n in zip(present, counts) if n > len(classes) / max(len(present), 1)]
    source = [int(c) for c in source if int(c) != int(target)]
    # Each source class gives the same share, so the mix among common classes is kept.
    for cls in source:
        candidates = np.flatnonzero(points.classes == cls)
        n_change = round(share * len(candidates))
        if n_change:
            classes[rng.choice(candidates, size=n_change, replace=False)] = int(target)
    return PointTable(points.xy.copy(), classes)
