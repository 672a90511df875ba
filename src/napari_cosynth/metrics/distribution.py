"""Distribution scores for label maps: class proportions and the Fréchet Segmentation Distance.

FSD (Bau et al., ICCV 2019, "Seeing what a GAN cannot generate") compares the class statistics of
two sets of segmentation maps. We use Semantic Palette's variant (Le Moing et al., CVPR 2021,
``valeoai/SemanticPalette``, ``tools/fsd/fsd_score.py``), which CoSyn reports: each label map
becomes its vector of per-class pixel proportions, a Gaussian is fitted to each set, and FSD is the
Fréchet distance between the two Gaussians.

Scale: Semantic Palette's tester computes it twice, on proportions in [0, 1] (``fsd``) and on
proportions times 100 (``fsd_count``). On [0, 1] proportions the distance cannot exceed about 4
(mean term <= 2, each trace <= 1), yet CoSyn's table lists 963.36 and 1292.05 for a baseline, so
its numbers are on the percent scale. :func:`fsd` therefore multiplies by 100 by default
(``scale=100``); pass ``scale=1`` for the unit-proportion value (smaller by a factor of 10,000).

Written with numpy/scipy rather than through torchmetrics because the core must not import torch
and the inputs are a few-dimensional vectors, not Inception features.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
from scipy import linalg

__all__ = ["class_proportions", "frechet_distance", "fsd"]

# Relative Frobenius error of sqrtm above which the eps-regularised retry is used.
_SQRTM_TOLERANCE = 1e-6


def class_proportions(semantic: np.ndarray, n_classes: int) -> np.ndarray:
    """Fraction of the pixels of one label map that belong to each class.

    Parameters
    ----------
    semantic : (H, W) integer array
        Class id per pixel, 0 = background, ids < ``n_classes``.
    n_classes : int
        K, the number of classes including background (``Vocabulary.n_classes``).

    Returns
    -------
    (K,) float64 array
        Non-negative, sums to 1; entry 0 is the background share.
    """
    sem = np.asarray(semantic)
    if sem.size == 0:
        raise ValueError("an empty label map has no class proportions")
    if not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f"a semantic map must hold integer class ids, got {sem.dtype}")
    lo, hi = int(sem.min()), int(sem.max())
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"semantic map holds class id {bad}, outside 0..{n_classes - 1} "
            f"(n_classes={n_classes} includes background)"
        )
    counts = np.bincount(sem.ravel(), minlength=n_classes)
    return counts / sem.size


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), squared form.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, computed as in
    pytorch-fid (which Semantic Palette adapts): if the matrix square root of the product is not
    finite or does not square back to the product (relative error > 1e-6; near-singular
    covariances are usual for proportions, which sum to 1), ``eps`` is added to both diagonals
    and it is recomputed; a small imaginary part from rounding is dropped, a large
    one is an error. Rounding can also push the result a hair below zero; it is clipped to 0.

    Parameters
    ----------
    mu1, mu2 : (D,) arrays
        Means.
    sigma1, sigma2 : (D, D) arrays
        Covariances.
    eps : float
        Diagonal offset used only when the plain computation fails.

    Returns
    -------
    float
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape:
        raise ValueError(f"means differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"covariances must both be {mu1.size}x{mu1.size}, got {sigma1.shape} and "
            f"{sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if covmean is None:
        offset = np.eye(mu1.size) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if covmean is None:
            raise ValueError(
                "could not take the matrix square root of the covariance product, even with "
                f"{eps} added to the diagonals; check the inputs for NaN or huge values"
            )
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                "the matrix square root of the covariance product has an imaginary part of "
                f"{np.max(np.abs(covmean.imag)):.3g}; the covariances are not valid (PSD)"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def _sqrtm(a: np.ndarray) -> np.ndarray | None:
    """scipy's sqrtm, or None when its result is not finite or does not square back to ``a``.

    Proportion covariances are singular (a class absent from a set, and proportions summing to
    1), for which scipy warns even when the root is exact to rounding; so the warning is
    silenced and the result checked directly instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(a)
    if not np.isfinite(root).all():
        return None
    scale = max(np.linalg.norm(a), np.finfo(np.float64).tiny)
    if np.linalg.norm(root @ root - a) / scale > _SQRTM_TOLERANCE:
        return None
    return root


def _stack_proportions(semantics: Iterable[np.ndarray], n_classes: int, which: str) -> np.ndarray:
    props = [class_proportions(s, n_classes) for s in semantics]
    if len(props) < 2:
        raise ValueError(
            f"FSD needs at least 2 {which} label maps to estimate a covariance, got {len(props)}"
        )
    return np.stack(props)


def fsd(
    real_semantics: Iterable[np.ndarray],
    generated_semantics: Iterable[np.ndarray],
    n_classes: int,
    scale: float = 100.0,
) -> float:
    """Fréchet Segmentation Distance between two sets of semantic maps (lower is closer).

    Parameters
    ----------
    real_semantics, generated_semantics : iterables of (H, W) integer arrays
        Class id per pixel; sizes may differ between maps (proportions are per map). At least
        two maps per set.
    n_classes : int
        K including background; the proportion vectors have K entries, background included.
    scale : float
        Proportions are multiplied by this before fitting: 100 (default) gives the percent
        scale of CoSyn's and Semantic Palette's ``fsd_count``, 1 the unit-proportion scale.

    Returns
    -------
    float
    """
    real = _stack_proportions(real_semantics, n_classes, "real") * scale
    gen = _stack_proportions(generated_semantics, n_classes, "generated") * scale
    return frechet_distance(
        real.mean(axis=0), np.cov(real, rowvar=False), gen.mean(axis=0), np.cov(gen, rowvar=False)
    )
