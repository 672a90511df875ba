"""Instances from generated maps: turns the model's semantic + distance output into nuclei.

The official CoSyn code holds no such step (its poster credits NuDiff, whose recovery is HoVer-Net's
gradient-based one), and our distance channel is defined differently (see
:mod:`napari_cosynth.labels.distance`), so this module is written for it: every nucleus of a
normalised distance map peaks at 1 and dips towards 0 at its boundary, so a fixed level on the
(slightly smoothed) map gives one core per nucleus, and a marker-controlled watershed on the negated
map grows the cores back out to the semantic foreground. The flood runs twice, the second time on the
map multiplied by each first-flood region's depth in pixels, because normalisation makes small
nuclei outrank large ones at a contact (see the comment in :func:`instances_from_maps`).
:func:`connected_components` is the conventional baseline that CoSyn compares against: it merges
touching nuclei.

The defaults of :class:`SeparationParams` were chosen on the CoNSeP training split only, with
``benchmarks/tune_separation.py``; ``docs/labels.md`` holds the search and its figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from ..errors import ConfigError, CosynthError
from .distance import object_edts

FOREGROUND_RULES = ("semantic", "semantic_and_distance", "semantic_or_distance")


@dataclass(frozen=True)
class SeparationParams:
    """How :func:`instances_from_maps` cuts the foreground into nuclei.

    Attributes
    ----------
    smoothing_sigma : float
        Gaussian sigma (pixels) applied to the distance map before markers are found; 0 switches
        smoothing off. Smoothing stops pixel noise in a generated map from splitting one core into
        several.
    flood_smoothed : bool
        Flood the smoothed map (True) or the raw one (False). The raw map puts boundaries exactly
        where an exact map dips; the smoothed one gives steadier boundaries on a noisy map.
    marker_threshold : float
        A marker is a connected region of the foreground where the smoothed distance exceeds this
        level (in (0, 1)). Every nucleus of a normalised map peaks at 1 and falls to ~0 at a contact,
        so one level works for small and large nuclei alike.
    min_marker_size : int
        Marker regions with fewer pixels are dropped as noise; the pixels they would have seeded are
        taken by a neighbouring marker (or, if none, become an unmarked region, see below).
    min_area : int
        Instances with fewer pixels after the watershed are removed (set to background) and the rest
        renumbered 1..N.
    foreground : str
        ``"semantic"``: the foreground is ``semantic > 0``. ``"semantic_and_distance"``: it is also
        required that the raw distance exceed ``distance_floor``, which trims halo pixels where a
        generated semantic map and distance map disagree. ``"semantic_or_distance"``: pixels where
        the raw distance exceeds ``distance_floor`` join the foreground too, so a nucleus takes the
        extent its distance map gives it where the generated semantic map draws it too small; such
        pixels only join a nucleus that the semantic map holds (markers and unmarked regions still
        need semantic pixels), so they never make a nucleus of their own.
    distance_floor : float
        The level used by the ``semantic_and_distance`` and ``semantic_or_distance`` rules.
    split_depth : float
        0 (the default) switches this off. Otherwise a marker region is split where the distance
        map, smoothed with ``split_sigma``, holds two or more peaks that each rise at least this
        far above the saddle between them (regional h-maxima), provided every part keeps
        ``min_marker_size`` pixels. Touching nuclei of a generated map often share a saddle above
        ``marker_threshold`` and would otherwise merge into one marker.
    split_sigma : float
        Gaussian sigma (pixels) of the map the peaks for ``split_depth`` are found on.

    Notes
    -----
    A foreground region that contains no marker at all still becomes one instance (if it reaches
    ``min_area``): the semantic map says a nucleus is there even when the distance map is too weak.
    """

    smoothing_sigma: float = 1.0
    flood_smoothed: bool = False
    marker_threshold: float = 0.4
    min_marker_size: int = 9
    min_area: int = 5
    foreground: str = "semantic"
    distance_floor: float = 0.0
    split_depth: float = 0.0
    split_sigma: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.smoothing_sigma) and self.smoothing_sigma >= 0):
            raise ConfigError(f"smoothing_sigma must be >= 0 pixels, got {self.smoothing_sigma}")
        if not 0 < self.marker_threshold < 1:
            raise ConfigError(
                f"marker_threshold must lie strictly between 0 and 1 (the distance map's range), "
                f"got {self.marker_threshold}"
            )
        for name in ("min_marker_size", "min_area"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a whole number of pixels >= 1, got {value}")
        if not isinstance(self.flood_smoothed, (bool, np.bool_)):
            raise ConfigError(f"flood_smoothed must be True or False, got {self.flood_smoothed!r}")
        if self.foreground not in FOREGROUND_RULES:
            raise ConfigError(
                f"foreground must be one of {', '.join(FOREGROUND_RULES)}, got {self.foreground!r}"
            )
        if not 0 <= self.distance_floor < 1:
            raise ConfigError(f"distance_floor must lie in [0, 1), got {self.distance_floor}")
        if not 0 <= self.split_depth < 1:
            raise ConfigError(f"split_depth must lie in [0, 1) (0 = no splitting), got {self.split_depth}")
        if not (np.isfinite(self.split_sigma) and self.split_sigma >= 0):
            raise ConfigError(f"split_sigma must be >= 0 pixels, got {self.split_sigma}")

    @classmethod
    def for_magnification(cls, magnification: float) -> SeparationParams:
        """The parameters tuned on CoNSeP train at the nearest tuned magnification, rescaled.

        Nuclei at 20x have a quarter of their 40x area, so the 40x defaults (smoothing, marker and
        object sizes) remove or merge many of them. Each preset was chosen on the training split at
        its magnification (docs/labels.md); other magnifications scale the nearest preset's sigma
        linearly and its areas quadratically.
        """
        if not (np.isfinite(magnification) and magnification > 0):
            raise ConfigError(f"magnification must be a positive number, got {magnification}")
        base_mag = min(_PRESETS, key=lambda m: abs(np.log(magnification / m)))
        base = _PRESETS[base_mag]
        f = magnification / base_mag
        if f == 1:
            return base
        return replace(
            base,
            smoothing_sigma=base.smoothing_sigma * f,
            min_marker_size=max(1, round(base.min_marker_size * f * f)),
            min_area=max(1, round(base.min_area * f * f)),
        )


    @classmethod
    def for_generated(cls, magnification: float) -> SeparationParams:
        """:meth:`for_magnification`, with the extent of each nucleus taken from the generated
        distance map too (``semantic_or_distance`` above :data:`GENERATED_DISTANCE_FLOOR`).

        The bundled model draws its semantic nuclei smaller than real ones (14.1 % of the pixels
        against 16.4 % on 32 CoNSeP training layouts) while its distance map holds their extent;
        real maps are unchanged by the rule (their distance is 0 wherever the semantic map is).
        """
        return replace(cls.for_magnification(magnification), foreground="semantic_or_distance",
                       distance_floor=GENERATED_DISTANCE_FLOOR)


# Chosen on 32 pairs the bundled model drew from CoNSeP *training* layouts at 20x, with
# benchmarks/tune_foreground.py (docs/labels.md): nuclei pixel share -0.1 % against the real maps
# (-13.9 % with the semantic map alone), detection F_d unchanged (0.857).
GENERATED_DISTANCE_FLOOR = 0.05

# Chosen on CoNSeP train only: 40x by benchmarks/tune_separation.py, 20x by the same search on the
# split resampled to 20x (docs/labels.md has both tables).
_PRESETS = {
    40.0: SeparationParams(),
    20.0: SeparationParams(smoothing_sigma=0.5, marker_threshold=0.6, min_marker_size=2, min_area=2),
}


def instances_from_maps(
    semantic: np.ndarray,
    distance: np.ndarray,
    params: SeparationParams = SeparationParams(),
) -> tuple[np.ndarray, np.ndarray]:
    """Nuclei from a semantic map and a normalised distance map (marker-controlled watershed).

    Parameters
    ----------
    semantic : np.ndarray
        (H, W) integer class map, 0 = background, classes 1..K-1.
    distance : np.ndarray
        (H, W) float distance map, nominally in [0, 1] (see :func:`~.distance.distance_map`); values
        outside are clipped, so a generated map that overshoots is accepted.
    params : SeparationParams
        Marker level, smoothing, size limits and foreground rule.

    Returns
    -------
    instances : np.ndarray
        (H, W) int32, nuclei numbered 1..N.
    classes : np.ndarray
        (N,) int64, the class of instance ``i + 1``: the most frequent non-zero class of ``semantic``
        over its pixels (ties go to the lower class id; :func:`vote_classes`).

    Raises
    ------
    ValueError
        If the maps are not 2-D, differ in shape, the semantic map is not integer or negative, or
        the distance map holds NaN.
    """
    sem = _check_semantic(semantic)
    dist = np.asarray(distance)
    if dist.shape != sem.shape:
        raise ValueError(
            f"the distance map is {'x'.join(map(str, dist.shape))} but the semantic map is "
            f"{'x'.join(map(str, sem.shape))}; both must come from the same patch"
        )
    if not np.issubdtype(dist.dtype, np.number) or np.isnan(dist).any():
        raise ValueError(f"the distance map must be numeric without NaN, got {dist.dtype}")
    dist = np.clip(dist.astype(np.float32), 0.0, 1.0)

    nucleus = sem > 0
    foreground = nucleus.copy()
    if params.foreground == "semantic_and_distance":
        foreground &= dist > params.distance_floor
    elif params.foreground == "semantic_or_distance":
        foreground |= dist > params.distance_floor
    smooth = ndi.gaussian_filter(dist, params.smoothing_sigma) if params.smoothing_sigma else dist

    markers, _ = ndi.label(foreground & nucleus & (smooth > params.marker_threshold))
    if params.min_marker_size > 1:
        markers = _remove_small(markers, params.min_marker_size)
    if params.split_depth > 0:
        if params.split_sigma == params.smoothing_sigma:
            peaks_map = smooth
        else:
            peaks_map = ndi.gaussian_filter(dist, params.split_sigma) if params.split_sigma else dist
        markers = _split_markers(markers, peaks_map, params.split_depth, params.min_marker_size)
    surface = smooth if params.flood_smoothed else dist
    labels = watershed(-surface, markers, mask=foreground)
    if labels.any():
        # Second flood on the map scaled back to pixels: each region's values times its depth.
        # On the normalised map a small nucleus's rim (1/3 for a depth of 3) outranks the rim of a
        # large neighbour (1/15), so the first flood lets the small one take a one-pixel sliver of
        # the large one along their contact; in pixels the large one's interior floods first.
        depth = np.ones(int(labels.max()) + 1, dtype=np.float32)
        for label, _, _, edt in object_edts(labels):
            depth[label] = edt.max()
        labels = watershed(-surface * depth[labels], markers, mask=foreground)
    # Foreground regions that hold no marker are left at 0 by the watershed; keep them whole.
    unmarked, n_unmarked = ndi.label(foreground & nucleus & (labels == 0))
    if n_unmarked:
        labels = np.where(unmarked > 0, unmarked + labels.max(), labels)
    return _finish(labels, sem, params.min_area)


def one_class_per_nucleus(
    instances: np.ndarray, classes: np.ndarray, semantic: np.ndarray
) -> tuple[np.ndarray, int]:
    """The semantic map redrawn from the instances, each nucleus in its voted class.

    A generated semantic map often gives one nucleus pixels of two classes (a rim of another class,
    a split down the middle), which no annotator would draw and which a segmenter trained on the pair
    would learn. :func:`instances_from_maps` already votes each nucleus's class (:func:`vote_classes`);
    this paints the vote back so that the semantic map, the instances and their classes agree.
    Foreground pixels that no instance kept (fragments below ``min_area``) become background.

    Returns
    -------
    semantic : np.ndarray
        (H, W) uint8.
    mixed : int
        How many nuclei carried pixels of more than one nucleus class in ``semantic`` before the vote.
    """
    sem = _check_semantic(semantic)
    n = len(classes)
    mixed = int(((class_votes(instances, sem, n)[1:, 1:] > 0).sum(axis=1) > 1).sum()) if n else 0
    lut = np.concatenate([[0], np.asarray(classes, dtype=np.int64)]).astype(np.uint8)
    return lut[instances], mixed


def connected_components(semantic: np.ndarray, min_size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The conventional baseline: one instance per 4-connected region of ``semantic > 0``.

    Touching nuclei merge into one instance; that is what the distance-based separation is compared
    against. Regions smaller than ``min_size`` pixels are removed (the default is
    ``SeparationParams().min_area``, so both recoveries drop the same specks). Returns the same
    ``(instances, classes)`` pair as :func:`instances_from_maps`, classes by majority vote.
    """
    if int(min_size) != min_size or min_size < 1:
        raise ConfigError(f"min_size must be a whole number of pixels >= 1, got {min_size}")
    sem = _check_semantic(semantic)
    labels, _ = ndi.label(sem > 0)
    return _finish(labels, sem, int(min_size))


def _check_semantic(semantic) -> np.ndarray:
    sem = np.asarray(semantic)
    if sem.ndim != 2 or not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(
            f"the semantic map must be a 2-D integer class map, got {sem.dtype} {sem.shape}"
        )
    if sem.size and sem.min() < 0:
        raise ValueError(f"class ids must be >= 0 (0 = background), found {int(sem.min())}")
    return sem


def _split_markers(markers: np.ndarray, peaks_map: np.ndarray, depth: float,
                   min_size: int) -> np.ndarray:
    """Cut each marker region along the valleys between its h-maxima (``SeparationParams.split_depth``).

    A region keeps its label when it holds fewer than two peaks or when a part would fall below
    ``min_size`` pixels; split parts get new labels after the existing ones.
    """
    peaks = h_maxima(peaks_map.astype(np.float64), depth).astype(bool)
    out = markers.copy()
    next_label = int(markers.max()) + 1
    for label, box in enumerate(ndi.find_objects(markers), start=1):
        if box is None:
            continue
        region = markers[box] == label
        seeds, n = ndi.label(peaks[box] & region)
        if n < 2:
            continue
        parts = watershed(-peaks_map[box], seeds, mask=region)
        if np.bincount(parts[region], minlength=n + 1)[1:].min() < min_size:
            continue
        view = out[box]
        for k in range(2, n + 1):
            view[parts == k] = next_label
            next_label += 1
    return out


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return np.where(keep[labels], labels, 0)


def _finish(labels: np.ndarray, sem: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop regions below ``min_area``, renumber 1..N, and vote each region's class."""
    labels = _remove_small(labels, min_area)
    labels = relabel_sequential(labels)[0].astype(np.int32, copy=False)
    # Every region holds nucleus pixels (markers and unmarked regions are cut from them), so each votes.
    return labels, vote_classes(labels, sem)


def vote_classes(instances: np.ndarray, semantic: np.ndarray, fallback: dict | None = None) -> np.ndarray:
    """The class of each instance 1..N: the most frequent nucleus class of ``semantic`` under it.

    Background pixels do not vote and ties go to the lower class id. An instance lying wholly on
    background (one drawn by hand) takes ``fallback[id]`` (e.g. the class an instance layer's
    features record for it); without one it is a :class:`CosynthError` naming the instance.

    Parameters
    ----------
    instances : np.ndarray
        (H, W) integer map, nuclei numbered 1..N (an id without pixels needs a fallback too).
    semantic : np.ndarray
        (H, W) integer class map of the same shape, 0 = background.
    fallback : dict, optional
        {instance id: class id} for instances without a nucleus pixel under them.

    Returns
    -------
    np.ndarray
        (N,) int64, the class of instance ``i + 1``.
    """
    n = int(np.asarray(instances).max(initial=0))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    votes = class_votes(instances, np.asarray(semantic).astype(np.int64), n)[1:, 1:]
    classes = np.zeros(n, dtype=np.int64)
    voted = votes.sum(axis=1) > 0
    classes[voted] = np.argmax(votes[voted], axis=1) + 1
    for i in np.flatnonzero(~voted):
        if fallback and int(fallback.get(i + 1, 0)) > 0:
            classes[i] = int(fallback[i + 1])
        else:
            raise CosynthError(
                f"instance {i + 1} lies where the semantic map is background, so its class is "
                "unknown; paint its class into the semantic map or recompute the instances"
            )
    return classes


def class_votes(labels: np.ndarray, sem: np.ndarray, n: int) -> np.ndarray:
    """(n + 1, K) pixel counts of each semantic class (columns) inside each instance 0..n (rows)."""
    k = int(sem.max()) + 1
    inside = labels > 0
    return np.bincount(labels[inside].astype(np.int64) * k + sem[inside],
                       minlength=(n + 1) * k).reshape(n + 1, k)
