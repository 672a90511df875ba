"""How realistic a set of point layouts is: second-order statistics compared with held-out real ones.

Two standard summaries of a point pattern, per class, across class pairs and pooled over classes:

* nearest-neighbour (NN) distances, from each point of class *a* to the nearest other point of class
  *b*, pooled over layouts; two sets are compared by the two-sample Kolmogorov-Smirnov statistic.
  Real and generated layouts are compared on canvases of the same size, so the border bias of raw NN
  distances (points near an edge miss neighbours beyond it) is the same on both sides.
* Ripley's K and its variance-stabilised form L(r) = sqrt(K(r) / pi), pooled over layouts with the
  translation edge correction (each pair weighted by |W| / ((W - |dx|)(H - |dy|))), so the estimate
  does not depend on the canvas size. Under complete spatial randomness L(r) = r; L below r at small
  r means inhibition (nuclei do not overlap), above r means clustering. Two sets are compared by the
  sup and the mean of |L_real(r) - L_gen(r)| over a grid of radii.

Hand-written rather than taken from pointpats (PySAL): it has Ripley functions for single unmarked
patterns but neither cross-type K nor pooling over many small windows, which is what comparing sets of
marked layouts needs; both take a few lines with scipy's KD-tree.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import ks_2samp

from ..sample import Vocabulary
from .real import Layout


def _select(layout: Layout, cls: int | None) -> np.ndarray:
    if cls is None:
        return layout.points.xy
    return layout.points.xy[layout.points.classes == cls]


def nn_distances(layouts: list[Layout], from_class: int | None = None,
                 to_class: int | None = None) -> np.ndarray:
    """Distance from each point of ``from_class`` to the nearest other point of ``to_class``.

    ``None`` means any class. Pooled over ``layouts``; a layout without a possible neighbour adds
    nothing.
    """
    out = []
    for layout in layouts:
        a, b = _select(layout, from_class), _select(layout, to_class)
        same = from_class == to_class
        if len(a) == 0 or len(b) < (2 if same else 1):
            continue
        d, _ = cKDTree(b).query(a, k=2 if same else 1)
        # Within one class the nearest hit is the point itself (distance 0): take the second.
        out.append(d[:, 1] if same else d)
    return np.concatenate(out) if out else np.zeros(0)


def ripley_k(layouts: list[Layout], radii, class_i: int | None = None,
             class_j: int | None = None) -> np.ndarray:
    """Pooled, translation-corrected Ripley's K (or cross-K from ``class_i`` to ``class_j``).

    Parameters
    ----------
    layouts
        Layouts pooled into one estimate: summed weighted pair counts over summed ``n_i n_j / |W|``.
    radii
        Increasing radii in pixels; keep them below a quarter of the smallest canvas side.
    class_i, class_j
        Class ids; ``None`` means every point.

    Returns
    -------
    np.ndarray
        K(r) for each radius; NaN everywhere when no layout holds a pair.
    """
    radii = np.asarray(radii, dtype=float)
    r_max = float(radii.max(initial=0.0))
    weighted = np.zeros(len(radii))
    normaliser = 0.0
    for layout in layouts:
        a, b = _select(layout, class_i), _select(layout, class_j)
        same = class_i == class_j
        n_pairs = len(a) * (len(b) - 1) if same else len(a) * len(b)
        if n_pairs <= 0:
            continue
        h, w = layout.shape
        normaliser += n_pairs / layout.area
        pairs = cKDTree(a).sparse_distance_matrix(cKDTree(b), r_max, output_type="coo_matrix")
        i, j, d = pairs.row, pairs.col, pairs.data
        if same:
            # Ordered pairs of distinct points; coincident points (d == 0) are dropped by scipy.
            keep = i != j
            i, j, d = i[keep], j[keep], d[keep]
        dx = np.abs(a[i, 0] - b[j, 0])
        dy = np.abs(a[i, 1] - b[j, 1])
        weight = layout.area / np.maximum((w - dx) * (h - dy), 1e-9)
        order = np.argsort(d)
        cumulative = np.concatenate([[0.0], np.cumsum(weight[order])])
        weighted += cumulative[np.searchsorted(d[order], radii, side="right")]
    if normaliser == 0:
        return np.full(len(radii), np.nan)
    return weighted / normaliser


def ripley_l(layouts: list[Layout], radii, class_i: int | None = None,
             class_j: int | None = None) -> np.ndarray:
    """L(r) = sqrt(K(r) / pi); equals r for a Poisson (CSR) pattern."""
    return np.sqrt(ripley_k(layouts, radii, class_i, class_j) / np.pi)


def default_radii(layouts: list[Layout], n: int = 40) -> np.ndarray:
    """``n`` radii from 0.5 px to a quarter of the smallest canvas side."""
    side = min(min(layout.shape) for layout in layouts)
    return np.linspace(0.5, side / 4.0, n)


def _summary_pair(real, generated, radii, i, j) -> dict:
    nn_r, nn_g = nn_distances(real, i, j), nn_distances(generated, i, j)
    l_r, l_g = ripley_l(real, radii, i, j), ripley_l(generated, radii, i, j)
    diff = np.abs(l_r - l_g)
    ok = np.isfinite(diff)
    result = {
        "nn_ks": float(ks_2samp(nn_r, nn_g).statistic) if len(nn_r) and len(nn_g) else None,
        "nn_median_real": float(np.median(nn_r)) if len(nn_r) else None,
        "nn_median_generated": float(np.median(nn_g)) if len(nn_g) else None,
        "L_sup_diff": float(diff[ok].max()) if ok.any() else None,
        "L_mean_abs_diff": float(diff[ok].mean()) if ok.any() else None,
    }
    return result


def _density(layouts: list[Layout], cls: int | None) -> float:
    area = sum(layout.area for layout in layouts)
    return float(sum(len(_select(layout, cls)) for layout in layouts) / area) if area else 0.0


def compare_layouts(real: list[Layout], generated: list[Layout], vocabulary: Vocabulary,
                    radii=None) -> dict:
    """Realism summary of ``generated`` against ``real`` layouts (0 everywhere for identical sets).

    Returns
    -------
    dict
        ``pooled`` (all points, classes ignored), ``per_class`` (each class to itself) and
        ``cross_class`` (``"a->b"`` for each ordered pair of distinct classes), each with ``nn_ks``
        (KS statistic between NN distance distributions), ``L_sup_diff`` and ``L_mean_abs_diff``
        (pixels), the median NN distances, and densities per 10,000 px². Values are ``None`` where
        a side has no points of that kind.
    """
    if not real or not generated:
        raise ValueError("compare_layouts needs at least one real and one generated layout")
    radii = default_radii(real) if radii is None else np.asarray(radii, dtype=float)
    result = {
        "n_real": len(real),
        "n_generated": len(generated),
        "radii_px": [float(radii[0]), float(radii[-1])],
        "pooled": _summary_pair(real, generated, radii, None, None),
        "per_class": {},
        "cross_class": {},
    }
    result["pooled"]["density_real_per_1e4px"] = 1e4 * _density(real, None)
    result["pooled"]["density_generated_per_1e4px"] = 1e4 * _density(generated, None)
    names = vocabulary.names
    for i in range(1, vocabulary.n_classes):
        entry = _summary_pair(real, generated, radii, i, i)
        entry["density_real_per_1e4px"] = 1e4 * _density(real, i)
        entry["density_generated_per_1e4px"] = 1e4 * _density(generated, i)
        result["per_class"][names[i]] = entry
        for j in range(1, vocabulary.n_classes):
            if j != i:
                result["cross_class"][f"{names[i]}->{names[j]}"] = _summary_pair(real, generated, radii, i, j)
    return result
