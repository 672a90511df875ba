"""What the downstream experiment runs: its settings, the nested training subsets, and plan.json checks.

Kept apart from :mod:`.downstream` (which trains, generates and scores) because these parts decide
*which* runs are comparable: every arm and seed of a fraction must see the same training samples, a
smaller fraction's samples must lie inside a larger one's, and a rerun into the same folder must not
change any setting that moves the numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.diffusion.sampler_names import DEFAULT_SAMPLER, recorded_spacing
from ..errors import CosynthError
from ..jsonio import read_json
from ..segmenter.config import SegmenterConfig

ARMS = ("real", "augment", "synthetic")
LAYOUT_KINDS = ("real", "generated")
PLAN_FILE = "plan.json"
# Plan settings that decide a run's numbers: a rerun into the same folder with any of them changed would
# mix incomparable runs in one table. Fractions, seeds and arms may change (more seeds, another fraction).
FIXED_SETTINGS = ("train", "test", "format", "test_format", "magnification", "subset_seed", "tile_pattern",
                  "layouts", "jitter", "synthetic_pairs", "synthetic_seed", "sampler", "sampler_steps",
                  "sampler_spacing", "guidance", "fit_iterations", "steps", "segmenter", "model_id", "canvas")
# Segmenter settings the experiment sets per run and arm, so the plan does not record them.
PER_RUN_SEGMENTER = ("seed", "steps", "colour_augment")
# Fields of the segmenter config that change when checkpoints are written and losses logged, not the
# weights a run ends with (a resumed run ends bit-identical to an uninterrupted one).
_BOOKKEEPING = ("checkpoint_every", "log_every")


def comparable(key: str, value):
    """``value`` of plan setting ``key`` as compared between runs: the segmenter config without its
    bookkeeping fields, so that a config that only checkpoints more or less often can resume or
    merge with folders it ran before, and with the defaults of settings added since filled in."""
    if key == "segmenter" and isinstance(value, dict):
        # Settings added since a plan was recorded take their defaults (the behaviour it ran with).
        return {k: v for k, v in SegmenterConfig.completed(value).items()
                if k not in PER_RUN_SEGMENTER + _BOOKKEEPING}
    return value


# Settings that a rerun without --model (real and augment arms only) leaves open: the earlier run's stand.
_FROM_MODEL = ("magnification", "model_id", "canvas")
# Settings that decide only the synthetic pairs: they bind a rerun only where pairs were drawn already
# (a folder of real-only runs may take the synthetic arm with any sampler).
_PAIRS_ONLY = ("layouts", "jitter", "synthetic_pairs", "synthetic_seed", "sampler", "sampler_steps",
               "sampler_spacing", "guidance", "fit_iterations", "model_id", "canvas")
SYNTHETIC_DIR = "synthetic-pairs"


@dataclass(frozen=True)
class DownstreamPlan:
    """What the experiment trains and scores (see docs/downstream.md for each setting).

    Attributes
    ----------
    train, test, format, test_format
        The real training split and the test split (``test_format`` defaults to ``format``).
    magnification
        Resample real data to this magnification (None: the joint model's, else the data's own).
    fractions, seeds, arms
        Shares of the training split in (0, 1], segmenter seeds, arms of :data:`ARMS`.
    subset_seed, tile_pattern
        The subset of a fraction: tiles in a fixed random order drawn with ``subset_seed``, the first
        ``round(fraction * tiles)`` of them (at least 1). A tile is a sample, or with ``tile_pattern``
        (a regular expression on sample names, its first group the tile) all samples cut from one tile.
    layouts, jitter, synthetic_pairs, synthetic_seed
        Synthetic pairs per fraction: from the subset's own point tables (``real``, each centroid moved
        by ``jitter`` px of Gaussian noise) or from a layout model fitted on the subset
        (``generated``); ``synthetic_pairs`` of them (None: as many as the subset has samples),
        bulk base seed ``synthetic_seed``.
    sampler, sampler_steps, sampler_spacing, guidance, fit_iterations
        Joint-model sampler settings (:meth:`sampler_settings`); simulation rounds of the layout
        model fit.
    segmenter_steps
        Optimisation steps of every run (None: the segmenter config's ``steps``).
    """

    train: str
    test: str
    format: str
    test_format: str | None = None
    magnification: float | None = None
    fractions: tuple[float, ...] = (1.0, 0.25, 0.1)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    subset_seed: int = 0
    tile_pattern: str | None = None
    layouts: str = "real"
    jitter: float = 0.0
    synthetic_pairs: int | None = None
    synthetic_seed: int = 0
    sampler: str = DEFAULT_SAMPLER
    sampler_steps: int | None = None
    sampler_spacing: str | None = None
    guidance: float = 2.0
    fit_iterations: int = 4
    segmenter_steps: int | None = None

    def __post_init__(self):
        fractions = tuple(float(f) for f in self.fractions)
        bad = [f for f in fractions if not (0.0 < f <= 1.0)]
        if not fractions or bad:
            raise CosynthError(f"fractions must lie in (0, 1], e.g. 1 0.25 0.1; got {list(self.fractions)}")
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise CosynthError(f"seeds must be whole numbers >= 0, got {list(self.seeds)}")
        unknown = [a for a in self.arms if a not in ARMS]
        if not self.arms or unknown:
            raise CosynthError(f"unknown arm {unknown[0] if unknown else None!r}; choose from {', '.join(ARMS)}")
        for name, values in (("fractions", fractions), ("seeds", seeds), ("arms", tuple(self.arms))):
            if len(set(values)) != len(values):
                raise CosynthError(f"{name} lists a value twice: {list(values)}")
        if self.layouts not in LAYOUT_KINDS:
            raise CosynthError(f"--layouts must be one of {', '.join(LAYOUT_KINDS)}, got {self.layouts!r}")
        if self.jitter < 0:
            raise CosynthError(f"--jitter must be >= 0 pixels, got {self.jitter}")
        if self.synthetic_pairs is not None and self.synthetic_pairs < 1:
            raise CosynthError(f"--synthetic-pairs must be at least 1, got {self.synthetic_pairs}")
        if self.segmenter_steps is not None and self.segmenter_steps < 1:
            raise CosynthError(f"--segmenter-steps must be at least 1, got {self.segmenter_steps}")
        if self.subset_seed < 0 or self.synthetic_seed < 0 or self.fit_iterations < 0:
            raise CosynthError("--subset-seed, --synthetic-seed and --fit-iterations must be >= 0")
        object.__setattr__(self, "fractions", fractions)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "test_format", self.test_format or self.format)
        self.sampler_settings()  # a bad sampler setting is refused before any run

    def sampler_settings(self):
        """The joint model's sampler settings for the synthetic pairs."""
        from ..engine.pipeline.settings import SamplerSettings

        return SamplerSettings(self.sampler, self.sampler_steps, self.guidance, spacing=self.sampler_spacing)


# ------------------------------------------------------------------------------------------ subsets


def subset_size(fraction: float, n_tiles: int) -> int:
    """Tiles in the subset of ``fraction``: ``round(fraction * n_tiles)`` (halves up), at least 1."""
    return max(1, min(n_tiles, math.floor(fraction * n_tiles + 0.5)))


def group_tiles(names: Sequence[str], tile_pattern: str | None = None) -> dict[str, list[str]]:
    """Sample names by tile, in order of first appearance.

    Without a pattern every sample is its own tile; with one, a sample's tile is the first group of
    ``re.search(tile_pattern, name)`` (the whole match if the pattern has no group).
    """
    if tile_pattern is None:
        return {n: [n] for n in names}
    try:
        pattern = re.compile(tile_pattern)
    except re.error as err:
        raise CosynthError(f"--tile-pattern {tile_pattern!r} is not a regular expression ({err})") from None
    tiles: dict[str, list[str]] = {}
    for name in names:
        match = pattern.search(name)
        if match is None:
            raise CosynthError(
                f"sample {name!r} does not match --tile-pattern {tile_pattern!r}; give a pattern every "
                r"sample name matches (CoNSeP patches: '^train_(\d+)_') or leave it out"
            )
        tiles.setdefault(match.group(1) if pattern.groups else match.group(0), []).append(name)
    return tiles


def choose_subsets(names: Sequence[str], fractions: Sequence[float], *, seed: int = 0,
                   tile_pattern: str | None = None) -> dict[float, list[str]]:
    """The training samples of each fraction: whole tiles, nested, the same for every arm and seed.

    Parameters
    ----------
    names
        Sample names of the training split, in the reader's order.
    fractions
        Shares in (0, 1].
    seed
        Seed of the one random order of the tiles; a fraction takes its first
        :func:`subset_size` tiles, so a smaller fraction's tiles are inside a larger one's.
    tile_pattern
        See :func:`group_tiles`.

    Returns
    -------
    dict
        fraction -> sample names, in the reader's order.
    """
    if not names:
        raise CosynthError("the training split holds no samples to choose a subset from")
    tiles = group_tiles(names, tile_pattern)
    keys = list(tiles)
    order = np.random.default_rng(seed).permutation(len(keys))
    subsets = {}
    for fraction in fractions:
        chosen = {keys[i] for i in order[: subset_size(fraction, len(keys))]}
        subsets[float(fraction)] = [n for k in keys if k in chosen for n in tiles[k]]
    return subsets


def fraction_dir(fraction: float) -> str:
    """Folder of a fraction's runs: ``fraction-1``, ``fraction-0.25``."""
    return f"fraction-{fraction:g}"


def run_dir(fraction: float, arm: str, seed: int) -> str:
    """Folder of one segmenter run, relative to the experiment folder."""
    return f"{fraction_dir(fraction)}/{arm}-seed-{seed}"


# --------------------------------------------------------------------------------------- plan.json


def checked_plan(out: Path, record: dict) -> dict:
    """Check a new plan record against the one an earlier run left in ``out``.

    Parameters
    ----------
    out
        The experiment folder.
    record
        The plan record of this run (settings and ``subsets``, as stored in ``plan.json``).

    Returns
    -------
    dict
        The record to store: ``record``, where this run names no model and no magnification taking
        the earlier run's magnification, model id and canvas, and with the subsets of fractions that
        only the earlier runs named.

    Raises
    ------
    CosynthError
        A setting that moves the numbers differs, or a fraction's subset changed.
    """
    path = out / PLAN_FILE
    if not path.is_file():
        return record
    try:
        before = read_json(path)
    except (OSError, ValueError) as err:
        raise CosynthError(f"{path}: unreadable ({err}); remove it only if the folder holds no runs") from None
    record = dict(record, **{k: before.get(k) for k in _FROM_MODEL if record.get(k) is None})
    if "sampler" in before:
        before = dict(before, sampler_spacing=recorded_spacing(before, "sampler_spacing"))
    fixed = FIXED_SETTINGS
    if "synthetic" not in record.get("arms", ()):
        # This run draws no pairs: the plan keeps describing the pairs the folder may hold.
        record = dict(record, **{k: before.get(k) for k in _PAIRS_ONLY if k in before})
    elif not any((out / fraction_dir(s["fraction"]) / SYNTHETIC_DIR).exists()
                 for s in before.get("subsets", [])):
        fixed = tuple(k for k in FIXED_SETTINGS if k not in _PAIRS_ONLY)
    changes = "; ".join(f"{k} was {before.get(k)!r}, now {record.get(k)!r}"
                        for k in fixed
                        if comparable(k, before.get(k)) != comparable(k, record.get(k)))
    if changes:
        raise CosynthError(f"{out}: the earlier runs here used other settings ({changes}); runs with other "
                           "settings are not comparable: use the same settings or another --out folder")
    earlier = {s["fraction"]: s["names"] for s in before.get("subsets", [])}
    for s in record["subsets"]:
        if s["fraction"] in earlier and earlier[s["fraction"]] != s["names"]:
            raise CosynthError(f"{out}: the subset of fraction {s['fraction']:g} differs from the earlier "
                               "run's (has the training folder changed?); use another --out folder")
    # A rerun with fewer fractions keeps the record of the others, whose runs stay in the folder.
    now = {s["fraction"] for s in record["subsets"]}
    kept = [s for s in before.get("subsets", []) if s["fraction"] not in now]
    return dict(record, subsets=record["subsets"] + kept)
