"""Realism of generated images, measured offline: a classifier two-sample test and segmenter-feature FD/KID.

Inception FID needs downloaded weights and random-feature FID does not tell blurry tissue from real
(docs/evaluation.md). This measurement uses two things available offline:

- a classifier two-sample test (:mod:`.c2st`) on crops, once on colour and once on per-crop
  standardised luminance (texture and shape only; no stain cue);
- Fréchet distance and KID (torchmetrics, on precomputed features) in the feature space of the
  library's segmenter, a network trained on real nuclei only: its encoder's pooled features respond
  to nuclear shape, chromatin texture and the tissue around the nuclei.

Each figure is reported beside the same figure between two real sets, so that a reader sees the
scale: random halves of the real set (the floor: same tiles, same stain) and, with ``baseline``,
the real set against another set of real tiles (what tile-to-tile variation alone gives).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import CosynthError
from .c2st import C2STSettings, c2st, colour, luminance

__all__ = ["ImageSet", "crop_grid", "feature_distances", "load_image_set", "realism_report",
           "segmenter_features", "tile_of"]

CROP = 64
MAX_CROPS_PER_IMAGE = 16


@dataclass
class ImageSet:
    """Crops of one set of images: ``crops`` (N, CROP, CROP, 3) uint8, ``image`` (N,) index of the
    source image of each crop, ``groups`` (one per image: its tile or its own name), ``names``."""

    source: str
    names: list
    groups: list
    crops: np.ndarray
    image: np.ndarray
    magnification: float

    def subset(self, images) -> ImageSet:
        keep = np.isin(self.image, images)
        remap = {int(old): new for new, old in enumerate(images)}
        return ImageSet(self.source, [self.names[i] for i in images], [self.groups[i] for i in images],
                        self.crops[keep], np.array([remap[int(i)] for i in self.image[keep]], np.int64),
                        self.magnification)


def tile_of(name: str, pattern: re.Pattern | None) -> str:
    """The group of an image: its tile (``pattern``'s groups joined, or its whole match), else its name.

    Raises
    ------
    CosynthError
        ``pattern`` is given and does not match ``name``.
    """
    if pattern is None:
        return name
    m = pattern.search(name)
    if m is None:
        raise CosynthError(
            f"--tile-pattern {pattern.pattern!r} does not match the image name {name!r}; give a "
            "pattern that finds the source tile in every name, e.g. '(t(?:rain|est)_\\d+)_' for CoNSeP"
        )
    return "_".join(g for g in m.groups() if g is not None) or m.group(0)


def crop_grid(image: np.ndarray, size: int, limit: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Non-overlapping ``size`` crops on a grid centred in ``image``; at most ``limit`` (seeded pick)."""
    h, w = image.shape[:2]
    ny, nx = h // size, w // size
    y0, x0 = (h - ny * size) // 2, (w - nx * size) // 2
    corners = [(y0 + i * size, x0 + j * size) for i in range(ny) for j in range(nx)]
    if len(corners) > limit:
        corners = [corners[k] for k in np.sort(rng.choice(len(corners), limit, replace=False))]
    return [image[y:y + size, x:x + size] for y, x in corners]


def _samples(path, format: str, flag: str, magnification: float | None) -> Iterator:
    from ..data.registry import open_dataset

    try:
        dataset = open_dataset(path, format, magnification=magnification)
    except CosynthError as exc:
        raise CosynthError(f"{flag} {path}: {exc}") from None
    if len(dataset) < 2:
        raise CosynthError(f"{flag} {path}: needs at least 2 images, found {len(dataset)} ({format} format)")
    yield from dataset


def load_image_set(path, format: str, flag: str, *, magnification: float | None,
                   pattern: re.Pattern | None, seed: int, crop: int = CROP) -> ImageSet:
    """Read a dataset's images (resampled to ``magnification``) and cut them into crops."""
    rng = np.random.default_rng(seed)
    names, groups, crops, owner, mags = [], [], [], [], set()
    for sample in _samples(path, format, flag, magnification):
        if sample.image is None:
            raise CosynthError(f"{flag} {path}: sample {sample.name} has no image; realism compares images")
        h, w = sample.image.shape[:2]
        if min(h, w) < crop:
            raise CosynthError(
                f"{flag} {path}: sample {sample.name} is {h}x{w}, smaller than the {crop}x{crop} crops "
                "compared; give a lower --mag or larger images"
            )
        cut = crop_grid(sample.image, crop, MAX_CROPS_PER_IMAGE, rng)
        owner += [len(names)] * len(cut)
        crops += cut
        names.append(sample.name)
        groups.append(tile_of(sample.name, pattern))
        mags.add(float(sample.magnification))
    if len(mags) > 1:
        raise CosynthError(f"{flag} {path}: images at several magnifications {sorted(mags)}; give --mag")
    return ImageSet(str(path), names, groups, np.stack(crops), np.array(owner, np.int64), mags.pop())


def _balance(a: ImageSet, b: ImageSet, rng: np.random.Generator, notes: list) -> tuple[ImageSet, ImageSet]:
    """Subsample the set with more images to as many as the other has (chance stays 0.5)."""
    if len(a.names) == len(b.names):
        return a, b
    big, small = (a, b) if len(a.names) > len(b.names) else (b, a)
    keep = np.sort(rng.choice(len(big.names), len(small.names), replace=False))
    notes.append(f"{big.source}: {len(keep)} of its {len(big.names)} images drawn at random (seeded) "
                 "to match the other set")
    big = big.subset(keep)
    return (big, small) if a is big else (small, big)


def _c2st_both(a: ImageSet, b: ImageSet, settings: C2STSettings, seed: int) -> dict:
    crops = np.concatenate([a.crops, b.crops])
    y = np.concatenate([np.zeros(len(a.crops), np.int64), np.ones(len(b.crops), np.int64)])
    # A group is an image or a tile; the same tile name in both sets is one group (generated pairs
    # named after their source patch are held out with it).
    groups = np.array([a.groups[i] for i in a.image] + [b.groups[i] for i in b.image])
    return {
        "colour": c2st(colour(crops), y, groups, settings, seed),
        "luminance": c2st(luminance(crops), y, groups, settings, seed),
    }


def segmenter_features(segmenter, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """Pooled encoder features (N, C) float64 of uint8 crops, from a loaded segmenter."""
    import torch

    from ..segmenter.model import to_tensor

    with torch.no_grad():
        return np.concatenate([
            segmenter.pooled_features(to_tensor(crops[s:s + batch])).double().numpy()
            for s in range(0, len(crops), batch)
        ])


def _identity(n: int):
    """A feature 'extractor' that returns its input, so torchmetrics works on precomputed features."""
    from torch import nn

    class Identity(nn.Identity):
        num_features = n

    return Identity()


def feature_distances(fa: np.ndarray, fb: np.ndarray, seed: int = 0, subsets: int = 100) -> dict:
    """Fréchet distance and KID (mean, sd over subsets) between two (N, C) feature arrays.

    Both come from torchmetrics (``FrechetInceptionDistance`` / ``KernelInceptionDistance`` fed with
    the features themselves); KID is the mean (and sd) over ``subsets`` random subsets of half the
    smaller set's size (at most 1000 rows), drawn with ``seed``.
    """
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if min(len(fa), len(fb)) < 2:
        raise CosynthError("Fréchet distance needs at least 2 crops in each set")
    ta, tb = torch.from_numpy(np.asarray(fa, np.float64)), torch.from_numpy(np.asarray(fb, np.float64))
    fd = FrechetInceptionDistance(feature=_identity(ta.shape[1]))
    fd.update(ta, real=True)
    fd.update(tb, real=False)
    # Subsets of half the smaller set, so that they differ and their spread means something.
    kid = KernelInceptionDistance(feature=_identity(ta.shape[1]), subsets=subsets,
                                  subset_size=max(2, min(len(ta), len(tb), 2000) // 2))
    kid.update(ta, real=True)
    kid.update(tb, real=False)
    torch.manual_seed(seed)
    kid_mean, kid_sd = kid.compute()
    # The eigenvalue form of the trace term can round a hair below zero for identical sets.
    return {"fd": max(float(fd.compute()), 0.0), "kid": float(kid_mean), "kid_sd": float(kid_sd),
            "n_crops": [len(fa), len(fb)]}


def _halves(s: ImageSet, rng: np.random.Generator) -> tuple[ImageSet, ImageSet]:
    order = rng.permutation(len(s.names))
    half = len(order) // 2
    return s.subset(np.sort(order[:half])), s.subset(np.sort(order[half:2 * half]))


def realism_report(real, real_format: str, fake, fake_format: str = "folder", *,
                   baseline=None, baseline_format: str | None = None, magnification: float | None = None,
                   tile_pattern: str | None = None, segmenter=None, seed: int = 0,
                   settings: C2STSettings | None = None) -> dict:
    """Two-sample accuracy (colour, luminance) and segmenter-feature FD/KID of ``fake`` against ``real``.

    Parameters
    ----------
    real, fake : path-like
        Datasets read with the named formats (any reader; generated pairs in the folder format).
    baseline : path-like, optional
        Another set of real images (e.g. other tiles); compared with ``real`` the same way.
    magnification : float, optional
        Resample every set to it; default: the segmenter's magnification, else as read.
    tile_pattern : str, optional
        Regular expression finding an image's source tile in its name; folds then hold out whole
        tiles. None: folds hold out whole images.
    segmenter : path-like, optional
        A trained segmenter folder or run (``cosynth segmenter train``); without it FD/KID are
        left out.
    seed : int
        Seeds crop picks, subsampling, halves, folds and training.

    Returns
    -------
    dict
        ``comparisons`` maps ``generated_vs_real``, ``real_halves`` and (with a baseline)
        ``baseline_vs_real`` to ``{"c2st": {"colour": .., "luminance": ..}, "features": {fd, kid..}}``
        plus the settings, the sets' sizes and ``notes``.
    """
    settings = settings or C2STSettings()
    notes: list[str] = []
    try:
        pattern = re.compile(tile_pattern) if tile_pattern else None
    except re.error as exc:
        raise CosynthError(f"--tile-pattern {tile_pattern!r} is not a regular expression ({exc})") from None
    model = meta = None
    if segmenter is not None:
        from ..segmenter.model import load_segmenter

        model, meta = load_segmenter(segmenter)
        if magnification is None:
            magnification = meta["magnification"]
        elif float(magnification) != float(meta["magnification"]):
            notes.append(f"the segmenter was trained at {meta['magnification']:g}x but the sets are "
                         f"compared at {magnification:g}x; its features may suit them less")
    load = {"magnification": magnification, "pattern": pattern, "seed": seed}
    sets = {"real": load_image_set(real, real_format, "--real", **load),
            "fake": load_image_set(fake, fake_format, "--fake", **load)}
    if baseline is not None:
        sets["baseline"] = load_image_set(baseline, baseline_format or real_format, "--baseline", **load)
    mags = {k: s.magnification for k, s in sets.items()}
    if len(set(mags.values())) > 1:
        raise CosynthError(f"the sets are at different magnifications ({mags}); give --mag to resample them")

    rng = np.random.default_rng(seed)
    pairs = {"generated_vs_real": _balance(sets["real"], sets["fake"], rng, notes),
             "real_halves": _halves(sets["real"], rng)}
    if baseline is not None:
        pairs["baseline_vs_real"] = _balance(sets["real"], sets["baseline"], rng, notes)
    comparisons = {}
    for key, (a, b) in pairs.items():
        entry = {"n_images": [len(a.names), len(b.names)], "c2st": _c2st_both(a, b, settings, seed)}
        if model is not None:
            entry["features"] = feature_distances(segmenter_features(model, a.crops),
                                                  segmenter_features(model, b.crops), seed)
        comparisons[key] = entry
    if model is None:
        notes.append("Fréchet distance and KID need --segmenter (a segmenter trained on real data)")
    return {
        "measurement": "realism",
        "real": str(real), "fake": str(fake), "baseline": None if baseline is None else str(baseline),
        "magnification": mags["real"],
        "crop": CROP,
        "groups": f"tiles ({tile_pattern})" if pattern else "images",
        "seed": seed,
        "c2st_settings": settings.to_dict(),
        "segmenter": None if meta is None else meta["path"],
        "features": None if meta is None else (
            f"segmenter encoder ({meta['config'].encoder}), deepest stage, mean-pooled"),
        "n_images": {k: len(s.names) for k, s in sets.items()},
        "comparisons": comparisons,
        "notes": notes,
    }
