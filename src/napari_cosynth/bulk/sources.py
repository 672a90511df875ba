"""Where a bulk run's point layouts come from: a dataset's point tables, a hard-core process, or a
fitted layout model.

Each source maps (pair index, pair seed) to a point table on the run's canvas, deterministically, so
that any process can draw pair i's layout on its own. Sources are opened from the ``--layouts``
argument with :func:`open_source`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CosynthError
from ..sample import PointTable, Vocabulary


class LayoutSource:
    """Base class: ``layout(index, seed) -> PointTable`` on ``shape``; ``describe()`` for the manifest."""

    def layout(self, index: int, seed: int) -> PointTable:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


class DatasetLayouts(LayoutSource):
    """Pair i takes the points of sample ``i mod len(dataset)``, at the model's magnification.

    A sample larger than the canvas contributes a canvas-sized window at a position drawn from the
    pair's seed (so cycling through a small split still gives varied layouts); a smaller one keeps
    its points in the top-left corner. Classes must be ids of the model's vocabulary. With
    ``samples`` (names) only those samples are cycled through, in that order: a subset of a split
    without copying its files.
    """

    def __init__(self, path, format: str, shape, magnification: float, vocabulary: Vocabulary,
                 samples=None):
        from ..data.registry import open_dataset

        self.path, self.format = str(path), format
        self.shape = tuple(shape)
        self.vocabulary = vocabulary
        self.dataset = open_dataset(path, format, magnification=magnification)
        if len(self.dataset) == 0:
            raise CosynthError(f"{path}: the {format} dataset holds no samples to take layouts from")
        if samples is not None and not len(samples):
            raise CosynthError(f"{path}: the list of samples to take layouts from is empty")
        self.samples = None if samples is None else [str(s) for s in samples]
        self.indices = range(len(self.dataset)) if samples is None else self.dataset.indices_of(samples)
        self._checked_vocabulary = False

    def layout(self, index: int, seed: int) -> PointTable:
        sample = self.dataset[self.indices[index % len(self.indices)]]
        if not self._checked_vocabulary:
            if sample.vocabulary.names != self.vocabulary.names:
                raise CosynthError(
                    f"{self.path}: its classes ({', '.join(sample.vocabulary.nucleus_classes)}) are not "
                    f"the model's ({', '.join(self.vocabulary.nucleus_classes)}); take layouts from a "
                    "dataset with the model's classes"
                )
            self._checked_vocabulary = True
        return window(sample.point_table(), sample.shape, self.shape, np.random.default_rng(seed))

    def describe(self) -> dict:
        described = {"kind": "dataset", "path": self.path, "format": self.format,
                     "samples": len(self.indices)}
        if self.samples is not None:
            described["subset"] = self.samples  # part of the recipe: another subset, other pairs
        return described


def window(points: PointTable, source_shape, shape, rng: np.random.Generator) -> PointTable:
    """The points inside a ``shape`` window of a ``source_shape`` canvas, shifted to the window.

    The window's offset is drawn from ``rng`` along each axis where the source is larger.
    """
    (sh, sw), (h, w) = source_shape, shape
    top = int(rng.integers(0, sh - h + 1)) if sh > h else 0
    left = int(rng.integers(0, sw - w + 1)) if sw > w else 0
    xy = points.xy - (left, top)
    moved = PointTable(xy, points.classes)
    keep = ~moved.outside((h, w))
    return PointTable(xy[keep], points.classes[keep])


class HardcoreLayouts(LayoutSource):
    """A hard-core layout with the density and class mix of the model's training data."""

    def __init__(self, card, shape):
        self.summary = card.training_data
        self.vocabulary, self.shape, self.magnification = card.vocabulary, tuple(shape), card.magnification

    def layout(self, index: int, seed: int) -> PointTable:
        from ..layouts.hardcore import layout_like_training_data

        return layout_like_training_data(self.summary, self.vocabulary, self.shape, self.magnification,
                                         rng=np.random.default_rng(seed))

    def describe(self) -> dict:
        return {"kind": "hardcore", "training_data": bool(self.summary)}


class FittedLayouts(LayoutSource):
    """Layouts sampled from a layout model fitted by ``cosynth layouts fit`` (a JSON file).

    The model must have the generating model's classes and, if it records one, its magnification
    (a layout's spacing is in pixels, so one fitted at 40x would crowd a 20x canvas).
    """

    def __init__(self, path, vocabulary: Vocabulary, shape, magnification: float):
        try:
            from ..layouts import process
        except ImportError:
            raise CosynthError(
                "generated layouts (--layouts generated:FITTED.json) are not available in this "
                "version of napari-cosynth; use a dataset's point tables or 'hardcore'"
            ) from None
        self.path, self.shape = Path(path), tuple(shape)
        if not self.path.is_file():
            raise CosynthError(f"{self.path}: no such fitted layout model (write one with cosynth layouts fit)")
        self._process = process
        self.model = process.load_model(self.path)
        if self.model.vocabulary.names != vocabulary.names:
            raise CosynthError(
                f"{self.path}: the layout model's classes ({', '.join(self.model.vocabulary.nucleus_classes)}) "
                f"are not the generating model's ({', '.join(vocabulary.nucleus_classes)}); fit it on a "
                "dataset with the same classes"
            )
        fitted_at = self.model.magnification
        if fitted_at is not None and abs(float(fitted_at) - float(magnification)) > 1e-6 * magnification:
            raise CosynthError(
                f"{self.path}: the layout model was fitted at {fitted_at:g}x but the generating model "
                f"works at {magnification:g}x; fit it at {magnification:g}x (cosynth layouts fit --mag)"
            )

    def layout(self, index: int, seed: int) -> PointTable:
        return self._process.sample_layout(self.model, self.shape, rng=np.random.default_rng(seed))

    def describe(self) -> dict:
        return {"kind": "generated", "path": str(self.path), "model": "multitype Strauss hard-core"}


def open_source(spec: str, format: str | None, *, card, shape) -> LayoutSource:
    """The layout source that a ``--layouts`` argument names.

    Parameters
    ----------
    spec
        ``hardcore``, ``generated:FITTED.json`` or a dataset path (then ``format`` is required).
    format
        Dataset format for a path (see ``napari_cosynth.data.registry.FORMATS``).
    card, shape
        The generating model's card (classes, magnification, training data) and the canvas (H, W).
    """
    vocabulary, magnification = card.vocabulary, card.magnification
    if spec == "hardcore":
        return HardcoreLayouts(card, shape)
    if spec.startswith("generated:"):
        return FittedLayouts(spec[len("generated:"):], vocabulary, shape, magnification)
    if format is None:
        raise CosynthError(
            f"--layouts {spec}: a dataset path needs --format (consep, pannuke, lizard, endonuke, folder)"
        )
    return DatasetLayouts(spec, format, shape, magnification, vocabulary)
