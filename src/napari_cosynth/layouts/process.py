"""A marked Strauss hard-core point process fitted to a dataset's layouts, and sampled from.

CoSyn generates a patch from a point layout; the paper leaves "generative methods for creating
realistic point layouts" to future work. This module's model is the classical one for cells: a
multitype Strauss process with a hard core. For classes a and b it has

* an intensity per class (nuclei per px²), estimated as count / area over the training split;
* a hard-core distance h_ab: no two nuclei of classes a, b closer than h_ab (nuclei do not overlap),
  estimated as a low quantile (default 1 %) of the a->b nearest-neighbour distances;
* an interaction strength gamma_ab for pairs at distance h_ab <= d < R (R: one interaction radius,
  by default the median nearest-neighbour distance): gamma < 1 inhibits, gamma > 1 attracts (the
  hard core keeps gamma > 1 well defined).

Fitting gamma. Given the numbers of points, the process is an exponential family whose sufficient
statistics are the pair counts s_ab (pairs of classes a, b at h_ab <= d < R), so its maximum
likelihood estimate is where the model's expected pair counts equal the observed ones. We start from
the low-density answer (gamma = observed pairs / pairs expected under randomness, i.e. matching
Ripley's K at R) and correct it by simulation: simulate training-sized windows with the current
gammas, multiply each gamma by the square root of observed / simulated pair counts, repeat (a damped
stochastic approximation of the MLE, often called MCMC moment matching). Windows are simulated on a
torus with a margin of R and cropped, as real patches are crops of larger tissue: no edge attracts or
repels points, and both sides lose the same pairs at the crop edges.

Sampling. Point counts per class are Poisson with the requested (or an empirical training patch's)
intensities; positions start from sequential inhibition and are then moved by Metropolis-Hastings
(uniform or local proposals, hard core enforced, acceptance by the gamma terms).

Hand-written because no maintained Python library fits marked Gibbs point processes: spatstat's ppm
(pseudo-likelihood) is R only (spatstat-interface on PyPI reaches it through rpy2 and an R install),
and pointpats (PySAL) describes and simulates patterns (CSR, cluster processes) without fitting Gibbs
models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ..atomic import write_text
from ..errors import CosynthError, DatasetError
from ..jsonio import read_json
from ..sample import PointTable, Vocabulary
from .real import Layout

MODEL_FORMAT = "napari-cosynth layout model"
MODEL_VERSION = 1
_GAMMA_RANGE = (1e-3, 4.0)


@dataclass
class StraussModel:
    """A fitted multitype Strauss hard-core process (see the module docstring).

    Matrices are indexed by nucleus class id - 1 (row a, column b); ``patch_intensities`` holds one
    intensity vector per training patch, so samples can reproduce the heterogeneity of real tissue
    (epithelium-rich and stroma-rich patches) instead of one average mix.
    """

    vocabulary: Vocabulary
    magnification: float | None
    intensity: np.ndarray
    hardcore: np.ndarray
    radius: float
    gamma: np.ndarray
    patch_intensities: np.ndarray
    window: tuple[int, int]
    fit_info: dict = field(default_factory=dict)

    def __post_init__(self):
        k = self.vocabulary.n_classes - 1
        self.intensity = np.asarray(self.intensity, dtype=float).reshape(k)
        self.hardcore = np.asarray(self.hardcore, dtype=float).reshape(k, k)
        self.gamma = np.asarray(self.gamma, dtype=float).reshape(k, k)
        self.patch_intensities = np.asarray(self.patch_intensities, dtype=float).reshape(-1, k)
        self.radius = float(self.radius)
        self.window = (int(self.window[0]), int(self.window[1]))

    @property
    def density(self) -> float:
        """Mean nuclei per px² over the training split."""
        return float(self.intensity.sum())

    def to_dict(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_VERSION,
            "model": "multitype Strauss hard-core",
            "vocabulary": list(self.vocabulary.names),
            "magnification": self.magnification,
            "intensity_per_px2": self.intensity.tolist(),
            "hardcore_px": self.hardcore.tolist(),
            "interaction_radius_px": self.radius,
            "gamma": self.gamma.tolist(),
            "patch_intensities_per_px2": self.patch_intensities.tolist(),
            "window": list(self.window),
            "fit_info": self.fit_info,
        }

    @classmethod
    def from_dict(cls, data: dict) -> StraussModel:
        return cls(
            vocabulary=Vocabulary(tuple(data["vocabulary"])),
            magnification=None if data["magnification"] is None else float(data["magnification"]),
            intensity=data["intensity_per_px2"],
            hardcore=data["hardcore_px"],
            radius=data["interaction_radius_px"],
            gamma=data["gamma"],
            patch_intensities=data["patch_intensities_per_px2"],
            window=data["window"],
            fit_info=dict(data.get("fit_info", {})),
        )


# ------------------------------------------------------------------------------------------- fitting


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
            simulated.append(Layout(_simulate(lam, shape, hardcore, radius, gamma, rng, sweeps), shape))
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


def _simulate(intensity, shape, hardcore, radius, gamma, rng, sweeps) -> PointTable:
    """One layout on ``shape``: simulate on a torus padded by R, then crop (see module docstring)."""
    h, w = shape
    pad = float(radius)
    ph, pw = h + 2 * pad, w + 2 * pad
    n = rng.poisson(np.asarray(intensity) * ph * pw)
    classes = rng.permutation(np.repeat(np.arange(len(n)), n))
    log_gamma = np.log(gamma)
    hc2 = hardcore**2
    r2 = radius**2
    period = np.array([pw, ph])

    def dist2(points, p):
        # Distances on a torus: without edges, inhibition cannot push points toward the border.
        diff = np.abs(points - p)
        diff = np.minimum(diff, period - diff)
        return (diff**2).sum(axis=1)

    xy = np.zeros((len(classes), 2))
    placed = np.zeros(len(classes), dtype=bool)
    # Sequential inhibition start: a point that finds no free spot in 50 tries is left out.
    for i, c in enumerate(classes):
        for _ in range(50):
            p = rng.uniform((0, 0), (pw, ph))
            d2 = dist2(xy[placed], p)
            if not (d2 < hc2[c, classes[placed]]).any():
                xy[i], placed[i] = p, True
                break
    xy, classes = xy[placed], classes[placed]
    m = len(classes)
    for _ in range(sweeps if m > 1 else 0):
        for i in rng.permutation(m):
            if rng.random() < 0.5:
                new = rng.uniform((0, 0), (pw, ph))
            else:
                new = (xy[i] + rng.normal(0, radius, 2)) % period
            others = np.arange(m) != i
            c = classes[i]
            co = classes[others]
            d2_new = dist2(xy[others], new)
            if (d2_new < hc2[c, co]).any():
                continue
            d2_old = dist2(xy[others], xy[i])
            delta = log_gamma[c, co] @ ((d2_new < r2).astype(float) - (d2_old < r2))
            if delta >= 0 or rng.random() < np.exp(delta):
                xy[i] = new
    xy = xy - pad
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] <= h - 1)
    return PointTable(xy[inside], classes[inside] + 1)


def parse_mix(mix, vocabulary: Vocabulary) -> np.ndarray:
    """Class mix as shares per nucleus class: a dict name -> share, or a sequence of K-1 weights.

    Shares are normalised to sum to 1; classes a dict omits get 0.
    """
    k = vocabulary.n_classes - 1
    if isinstance(mix, dict):
        shares = np.zeros(k)
        for name, share in mix.items():
            try:
                shares[vocabulary.id_of(name) - 1] = float(share)
            except ValueError as error:
                raise CosynthError(f"class mix: {error}") from None
    else:
        shares = np.asarray(mix, dtype=float).reshape(-1)
        if shares.size != k:
            raise CosynthError(f"class mix needs {k} shares ({', '.join(vocabulary.nucleus_classes)}), got {shares.size}")
    if not np.isfinite(shares).all() or (shares < 0).any() or shares.sum() <= 0:
        raise CosynthError(f"class mix shares must be non-negative with a positive sum, got {shares.tolist()}")
    return shares / shares.sum()


def sample_layout(model: StraussModel, shape: tuple[int, int], *, density: float | None = None,
                  mix=None, rng=None, sweeps: int = 20) -> PointTable:
    """Draw one layout from a fitted model.

    Parameters
    ----------
    model
        A fitted :class:`StraussModel`.
    shape
        Canvas (H, W) in pixels, at the model's magnification.
    density
        Nuclei per px² (default: a training patch's).
    mix
        Class shares (see :func:`parse_mix`); default: the mix of a randomly drawn training patch,
        which keeps the patch-to-patch variation of real tissue.
    rng
        Seed or generator.
    sweeps
        Metropolis-Hastings sweeps; more mixes better, costs linearly.

    Returns
    -------
    PointTable
        Counts per class are Poisson, so the requested density and mix hold on average.
    """
    rng = np.random.default_rng(rng)
    intensity = _layout_intensity(model, shape, density, mix, rng)
    return _simulate(intensity, shape, model.hardcore, model.radius, model.gamma, rng, sweeps)


def poisson_layout(model: StraussModel, shape: tuple[int, int], *, density: float | None = None,
                   mix=None, rng=None) -> PointTable:
    """Draw one layout with the model's class intensities but no interaction (complete randomness).

    The baseline a fitted model is judged against: counts per class are chosen exactly as in
    :func:`sample_layout` (same ``density``/``mix`` rules, same padded-and-cropped window), but
    positions are independent and uniform, i.e. a multitype Poisson process (CSR).

    Parameters
    ----------
    model
        A fitted :class:`StraussModel` (only its intensities and interaction radius, the window
        margin, are used).
    shape
        Canvas (H, W) in pixels.
    density, mix
        As in :func:`sample_layout`.
    rng
        Seed or generator.

    Returns
    -------
    PointTable
    """
    rng = np.random.default_rng(rng)
    intensity = _layout_intensity(model, shape, density, mix, rng)
    k = len(intensity)
    return _simulate(intensity, shape, np.zeros((k, k)), model.radius, np.ones((k, k)), rng, 0)


def _layout_intensity(model: StraussModel, shape, density, mix, rng) -> np.ndarray:
    """Intensity per class for one layout (see :func:`sample_layout`); validates the request."""
    if density is not None and (not np.isfinite(density) or density < 0):
        raise CosynthError(f"density must be a non-negative number of nuclei per px², got {density}")
    if min(shape) < 1:
        raise CosynthError(f"layout size must be at least 1x1 pixels, got {shape[0]}x{shape[1]}")
    if mix is not None:
        return parse_mix(mix, model.vocabulary) * (model.density if density is None else density)
    intensity = model.patch_intensities[rng.integers(len(model.patch_intensities))]
    if density is not None:
        total = intensity.sum()
        intensity = intensity / total * density if total > 0 else model.intensity / model.density * density
    return intensity


def sample_layouts(model: StraussModel, n: int, shape: tuple[int, int], *, density: float | None = None,
                   mix=None, seed: int = 0, sweeps: int = 20) -> list[Layout]:
    """``n`` layouts named ``layout_00000``...; layout i depends only on ``seed`` and i."""
    if n < 0:
        raise CosynthError(f"the number of layouts must be >= 0, got {n}")
    return [
        Layout(sample_layout(model, shape, density=density, mix=mix, rng=np.random.default_rng([seed, i]),
                             sweeps=sweeps), shape, f"layout_{i:05d}")
        for i in range(n)
    ]


# ---------------------------------------------------------------------------------------------- files


def save_model(model: StraussModel, path) -> None:
    """Write the model as JSON, atomically (a reader never sees half a file)."""
    write_text(path, json.dumps(model.to_dict(), indent=2) + "\n")


def load_model(path) -> StraussModel:
    """Read a model written by :func:`save_model`; a broken file raises :class:`DatasetError`."""
    path = Path(path)
    try:
        data = read_json(path)
    except OSError as error:
        raise DatasetError(path, f"cannot read the layout model ({error.strerror or error})") from None
    except ValueError as error:
        raise DatasetError(path, f"not a JSON layout model ({error}); refit it with `cosynth layouts fit`") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise DatasetError(path, f"not a layout model: expected \"format\": \"{MODEL_FORMAT}\"; "
                                 "write one with `cosynth layouts fit`")
    if data.get("format_version") != MODEL_VERSION:
        raise DatasetError(path, f"layout model version {data.get('format_version')!r} is not "
                                 f"{MODEL_VERSION}; refit it with this version of napari-cosynth")
    try:
        model = StraussModel.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        what = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise DatasetError(path, f"broken layout model: {what}; refit it with `cosynth layouts fit`") from None
    bad = [name for name, arr in (("intensity_per_px2", model.intensity), ("hardcore_px", model.hardcore),
                                  ("gamma", model.gamma)) if not np.isfinite(arr).all() or (arr < 0).any()]
    if bad or not np.isfinite(model.radius) or model.radius <= 0:
        raise DatasetError(path, f"broken layout model: {', '.join(bad) or 'interaction_radius_px'} must be "
                                 "finite and non-negative; refit it with `cosynth layouts fit`")
    return model
