"""Bring a sample to another magnification, so datasets scanned at 20x and 40x can be mixed.

Everything in a sample is resampled on one pixel grid (the usual pixel-centre mapping, as in
``skimage.transform.resize``): the image is area-averaged when shrinking (so fine texture does not
alias) and bilinear when enlarging; label maps are nearest-neighbour so ids and classes stay exact.
The nearest-neighbour lookup is written out here rather than taken from ``resize(order=0)`` because
it indexes the integer maps directly (no float round trip for large ids) and guarantees that the
instance and semantic maps read exactly the same source pixels.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import downscale_local_mean, resize

from ..errors import ConfigError
from ..sample import PointTable, Sample
from .distance import distance_map


def resample_sample(sample: Sample, magnification: float) -> Sample:
    """The same sample at another magnification (e.g. 40x -> 20x halves each side).

    Parameters
    ----------
    sample : Sample
        Any sample: with masks, generated (semantic and distance maps filled in), or points-only.
    magnification : float
        Target objective magnification; the scale factor is ``magnification / sample.magnification``.

    Returns
    -------
    Sample
        Output size ``round(H * factor) x round(W * factor)``. Image: area average when shrinking
        (``downscale_local_mean`` for an integer factor that divides the size, else an anti-aliased
        ``resize``), bilinear when enlarging. Instances and semantic map: nearest neighbour; nuclei
        that vanish leave the table and the rest are renumbered 1..N in their old order. Distance map
        (if present): recomputed from the resampled instances, since it is defined by them. Points:
        scaled to the new grid. Every other field is kept; ``magnification`` is set.

    Raises
    ------
    ConfigError
        If either magnification is not a positive number, or the result would be empty.
    """
    source = float(sample.magnification)
    target = float(magnification)
    checks = (("target magnification", target), (f"{sample.name}: magnification", source))
    for name, value in checks:
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number such as 20 or 40, got {value}")
    factor = target / source
    if factor == 1.0:
        return sample.with_()

    if sample.instances is None and sample.image is None:
        # A points-only sample without an image has no pixel grid: only the points move.
        return sample.with_(points=resample_points(sample.points, factor), magnification=target)
    h, w = sample.shape
    nh, nw = round(h * factor), round(w * factor)
    if nh < 1 or nw < 1:
        raise ConfigError(
            f"{sample.name}: {h}x{w} at {source:g}x would be {nh}x{nw} at {target:g}x; "
            f"choose a magnification closer to {source:g}"
        )
    from ..limits import check_pixels

    check_pixels(nh, nw, f"{sample.name}: {h}x{w} at {source:g}x resampled to {target:g}x")
    grid = np.ix_(_nearest_index(h, nh), _nearest_index(w, nw))
    changes: dict = {"magnification": target}
    if sample.image is not None:
        changes["image"] = _resample_image(sample.image, nh, nw)
    if sample.points is not None:
        changes["points"] = _scale_points(sample.points, nh / h, nw / w, (nh, nw))
    if sample.semantic is not None:
        changes["semantic"] = sample.semantic[grid]
    if sample.instances is not None:
        inst, kept = _renumber(sample.instances[grid])
        changes["instances"] = inst
        changes["classes"] = sample.classes[kept - 1]
        if sample.distance is not None:
            changes["distance"] = distance_map(inst)
    elif sample.distance is not None:
        changes["distance"] = resize(
            sample.distance, (nh, nw), order=1, anti_aliasing=nh < h, preserve_range=True
        ).astype(np.float32)
    return sample.with_(**changes)


def resample_points(points: PointTable, factor: float) -> PointTable:
    """Points moved to a grid scaled by ``factor``, with the pixel-centre mapping of the images.

    A point at pixel centre ``x`` goes to ``(x + 0.5) * factor - 0.5``, which is where the resampled
    image shows the same spot (plain ``x * factor`` would drift by up to half a pixel). Coordinates
    that would fall below 0 (at most half a pixel, when shrinking) are clipped to 0 so the point stays
    on the canvas.
    """
    if not (np.isfinite(factor) and factor > 0):
        raise ConfigError(f"the scale factor must be a positive number, got {factor}")
    xy = np.maximum((points.xy + 0.5) * factor - 0.5, 0.0)
    return PointTable(xy, points.classes.copy())


def _scale_points(points: PointTable, sy: float, sx: float, shape: tuple[int, int]) -> PointTable:
    """Per-axis version used when the output size is known (rounding makes sy, sx differ slightly)."""
    scale = np.array([sx, sy])
    xy = (points.xy + 0.5) * scale - 0.5
    xy = np.clip(xy, 0.0, np.array([shape[1] - 1, shape[0] - 1], dtype=np.float64))
    return PointTable(xy, points.classes.copy())


def _renumber(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids still present renumbered 1..N in their old order; also returns the old ids kept."""
    kept = np.flatnonzero(np.bincount(instances.ravel()))
    kept = kept[kept > 0]
    lut = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.int32)
    lut[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return lut[instances], kept


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel: the input pixel containing the output pixel's centre."""
    centres = (np.arange(n_out) + 0.5) * (n_in / n_out)
    return np.minimum(np.floor(centres).astype(np.intp), n_in - 1)


def _resample_image(image: np.ndarray, nh: int, nw: int) -> np.ndarray:
    h, w = image.shape[:2]
    img = image.astype(np.float64)
    ky, kx = h / nh, w / nw
    if ky == kx and ky > 1 and ky == int(ky) and h % int(ky) == 0 and w % int(kx) == 0:
        out = downscale_local_mean(img, (int(ky), int(kx), 1))
    else:
        shrinking = nh < h or nw < w
        out = resize(img, (nh, nw), order=1, anti_aliasing=shrinking, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
