"""Fitting the marked Strauss hard-core process of :mod:`.process` to a dataset's layouts.

Fitting gamma. Given the numbers of points, the process is an exponential family whose sufficient
statistics are the pair counts s_ab (pairs of classes a, b at h_ab <= d < R), so its maximum
likelihood estimate is where the model's expected pair counts equal the observed ones. We start from
the low-density answer (gamma = observed pairs / pairs expected under randomness, i.e. matching
Ripley's K at R) and correct it by simulation: simulate training-sized windows with the current
gammas, multiply each gamma by the square root of observed / simulated pair counts, repeat (a damped
stochastic approximation of the MLE, often called MCMC moment matching). Windows are simulated on a
torus with a margin of R and cropped, as real patches are crops of larger tissue: no edge attracts or
repels points, and both sides lose the same pairs at the crop edges.

Kept apart from the model and its sampler (:mod:`.process`) because fitting needs the realism
measures and is only run by ``cosynth layouts fit`` and the downstream experiment.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..errors import CosynthError
from ..sample import Vocabulary
from .process import StraussModel, simulate
from .real import Layout

_GAMMA_RANGE = (1e-3, 4.0)


def fit_strauss(layouts: list[Layout], vocabulary: Vocabulary, *, magnification: float | None = None,
                radius: float | None = None, hardcore_quantile: float = 0.01, iterations: int = 4,
                calibration_windows: int = 48, sweeps: int = 20, rng=0) -> StraussModel:
    """Fit a multitype Strauss hard-core process to real layouts.

    Parameters
    ----------
    layouts
        Training layouts (e.g. :func:`~napari_cosynth.layouts.real.layouts_from_dataset`).
    vocabulary
        Their class vocabulary.
    magnification
        Recorded in the model, so layouts are sampled at the scale they were fitted at.
    radius
        Interaction radius R in pixels; default the median nearest-neighbour distance.
    hardcore_quantile
        Quantile of the a->b nearest-neighbour distances taken as the hard-core distance h_ab.
    iterations
        Simulation rounds correcting gamma toward matching pair counts (0: low-density estimate only).
    calibration_windows
        Training-sized windows simulated per round.
    sweeps
        Metropolis-Hastings sweeps per simulated window.
    rng
        Seed or generator (the fit is deterministic for a fixed seed).

    Returns
    -------
    StraussModel
    """
    from .realism import nn_distances

    if not layouts:
        raise CosynthError("fitting a layout model needs at least one layout")
    if not 0 <= hardcore_quantile < 0.5:
        raise CosynthError(f"hardcore_quantile must lie in [0, 0.5), got {hardcore_quantile}")
    rng = np.random.default_rng(rng)
    k = vocabulary.n_classes - 1
    for layout in layouts:
        vocabulary.check_ids(layout.points.classes, f"{layout.name}: point classes")
    areas = np.array([layout.area for layout in layouts])
    counts = np.array([[np.sum(lay.points.classes == c) for c in range(1, k + 1)] for lay in layouts], float)
    n_points = int(counts.sum())
    if n_points < 2:
        raise CosynthError(f"the layouts hold {n_points} point(s); fitting needs at least 2")
    intensity = counts.sum(axis=0) / areas.sum()

    pooled_nn = nn_distances(layouts)
    if radius is None:
        radius = float(np.median(pooled_nn)) if len(pooled_nn) else 10.0
    if radius <= 0:
        raise CosynthError(f"the interaction radius must be > 0 pixels, got {radius}")
    fallback = float(np.quantile(pooled_nn, hardcore_quantile)) if len(pooled_nn) else 0.0
    # h_ab from the distances of nuclei whose nearest neighbour (of any class) is of the other class:
    # the a->b NN distance alone would be inflated where classes live apart (epithelium vs stroma).
    nn_d, nn_pair = _nearest_with_classes(layouts)
    hardcore = np.full((k, k), fallback)
    for a in range(k):
        for b in range(a, k):
            d = nn_d[((nn_pair[:, 0] == a) & (nn_pair[:, 1] == b)) | ((nn_pair[:, 0] == b) & (nn_pair[:, 1] == a))]
            # Too few distances for a quantile (a rare class): keep the pooled value.
            if len(d) >= 20:
                hardcore[a, b] = hardcore[b, a] = float(np.quantile(d, hardcore_quantile))
    hardcore = np.minimum(hardcore, 0.95 * radius)

    observed, normaliser = _pair_counts(layouts, hardcore, radius, k)
    expected_csr = normaliser * np.pi * (radius**2 - hardcore**2)
    gamma = np.clip((observed + 1.0) / (expected_csr + 1.0), *_GAMMA_RANGE)

    shape = max({lay.shape for lay in layouts}, key=lambda s: sum(lay.shape == s for lay in layouts))
    same_shape = [i for i, lay in enumerate(layouts) if lay.shape == shape]
    history = []
    for _ in range(iterations):
        chosen = rng.choice(same_shape, size=min(calibration_windows, len(same_shape)), replace=False)
        simulated = []
        for idx in chosen:
            lam = counts[idx] / layouts[idx].area
            simulated.append(Layout(simulate(lam, shape, hardcore, radius, gamma, rng, sweeps), shape))
        sim_pairs, sim_norm = _pair_counts(simulated, hardcore, radius, k)
        # Observed pairs rescaled to the simulated windows' numbers of points (K-function scaling).
        target = np.divide(observed, normaliser, out=np.zeros_like(observed), where=normaliser > 0) * sim_norm
        ratio = (target + 1.0) / (sim_pairs + 1.0)
        # Half steps in log gamma: simulated pair counts are noisy, full steps oscillate.
        gamma = np.clip(gamma * np.sqrt(ratio), *_GAMMA_RANGE)
        informative = observed >= 20
        history.append(float(np.abs(np.log(ratio[informative])).max()) if informative.any() else 0.0)

    return StraussModel(
        vocabulary=vocabulary,
        magnification=magnification,
        intensity=intensity,
        hardcore=hardcore,
        radius=radius,
        gamma=gamma,
        patch_intensities=counts / areas[:, None],
        window=shape,
        fit_info={
            "n_layouts": len(layouts),
            "n_points": n_points,
            "hardcore_quantile": hardcore_quantile,
            "iterations": iterations,
            "calibration_windows": calibration_windows,
            # Per round, the worst |log(observed / simulated pairs)| over class pairs with >= 20
            # observed pairs: how far the fit is from matching pair counts.
            "max_abs_log_pair_ratio_per_round": history,
        },
    )


def _nearest_with_classes(layouts: list[Layout]):
    """Pooled NN distances with (own class - 1, neighbour's class - 1) per point."""
    dists, pairs = [], []
    for layout in layouts:
        xy, cls = layout.points.xy, layout.points.classes - 1
        if len(xy) < 2:
            continue
        d, j = cKDTree(xy).query(xy, k=2)
        dists.append(d[:, 1])
        pairs.append(np.stack([cls, cls[j[:, 1]]], axis=1))
    if not dists:
        return np.zeros(0), np.zeros((0, 2), dtype=int)
    return np.concatenate(dists), np.concatenate(pairs)


def _pair_counts(layouts: list[Layout], hardcore, radius, k):
    """Unordered pairs of classes (a, b) at h_ab <= d < R, and sum of n_a n_b / |W| (K normaliser)."""
    pairs = np.zeros((k, k))
    norm = np.zeros((k, k))
    for layout in layouts:
        xy, cls = layout.points.xy, layout.points.classes - 1
        n = np.bincount(cls, minlength=k).astype(float)
        outer = np.outer(n, n)
        np.fill_diagonal(outer, n * (n - 1) / 2.0)
        norm += outer / layout.area
        if len(xy) < 2:
            continue
        ij = cKDTree(xy).query_pairs(radius, output_type="ndarray")
        if len(ij) == 0:
            continue
        ca, cb = cls[ij[:, 0]], cls[ij[:, 1]]
        d = np.linalg.norm(xy[ij[:, 0]] - xy[ij[:, 1]], axis=1)
        keep = (d >= hardcore[ca, cb]) & (d < radius)
        np.add.at(pairs, (ca[keep], cb[keep]), 1.0)
    # Fold (a, b) and (b, a) together: the statistic is symmetric.
    upper = pairs + pairs.T - np.diag(np.diag(pairs))
    return upper, norm


# ------------------------------------------------------------------------------------------ sampling
