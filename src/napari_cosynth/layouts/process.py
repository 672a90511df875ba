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

Fitting the model to real layouts: :mod:`.strauss_fit`.

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

from ..atomic import write_text
from ..errors import CosynthError, DatasetError
from ..jsonio import read_json
from ..sample import PointTable, Vocabulary
from .real import Layout

MODEL_FORMAT = "napari-cosynth layout model"
MODEL_VERSION = 1


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


def simulate(intensity, shape, hardcore, radius, gamma, rng, sweeps) -> PointTable:
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
    return simulate(intensity, shape, model.hardcore, model.radius, model.gamma, rng, sweeps)


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
    return simulate(intensity, shape, np.zeros((k, k)), model.radius, np.ones((k, k)), rng, 0)


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
