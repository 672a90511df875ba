"""The downstream experiment: does training a segmenter on synthetic pairs help, and when?

CoSyn's headline table at CPU scale. The library's segmenter is trained on a real training split in
three arms (``real`` pairs only; ``augment``: real pairs with conventional colour augmentation;
``synthetic``: real pairs plus pairs the joint model drew from layouts of those same real pairs), all
with the same number of optimisation steps, at several shares of the training split and several
seeds, and every run is scored on the test split (Dice, AJI, PQ, F_d, Acc).

How a run folder is laid out (``OUT``)::

    plan.json                          the settings and the subset of every fraction; a rerun must match
    fraction-0.25/layout-model.json    (--layouts generated) Strauss model fitted on the subset only
    fraction-0.25/synthetic-pairs/     bulk generation run (pairs/, generation.json, manifest.json)
    fraction-0.25/<arm>-seed-<s>/      segmenter run (checkpoints/, run.json, loss.csv) + result.json
    report.json, report.md, downstream.png

Everything resumes: a finished run (``result.json``) is skipped, an unfinished segmenter run continues
from its newest checkpoint, and the bulk generator skips pairs already written. The subset of a
fraction reaches the trainer and the bulk generator as sample names; no dataset file is copied.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..bulk.sources import LayoutSource
from ..errors import CosynthError, DatasetError
from ..jsonio import read_json
from ..progress import relay
from ..sample import PointTable, Vocabulary
from .downstream_plan import (
    PER_RUN_SEGMENTER,
    PLAN_FILE,
    SYNTHETIC_DIR,
    DownstreamPlan,
    checked_plan,
    choose_subsets,
    fraction_dir,
    group_tiles,
    run_dir,
)

RESULT_FILE = "result.json"
LAYOUT_MODEL = "layout-model.json"


@dataclass
class Synthesiser:
    """The joint model of the synthetic arm and the canvas of its pairs (``cli.generate.load_pipeline``)."""

    pipe: object  # CoSynthPipeline
    shape: tuple[int, int]

    @property
    def vocabulary(self) -> Vocabulary:
        return self.pipe.vocabulary

    @property
    def magnification(self) -> float:
        return self.pipe.card.magnification


@dataclass
class DownstreamProgress:
    """``step`` of ``total`` optimisation steps of the whole experiment done (finished runs count whole)."""

    step: int
    total: int
    run: str
    detail: str = ""

    def postfix(self) -> str:
        return f"{self.run}: {self.detail}" if self.detail else self.run


@dataclass
class _Context:
    plan: DownstreamPlan
    config: object
    out: Path
    steps: int
    magnification: float | None
    synthesiser: Synthesiser | None
    device: str
    test_samples: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------- synthetic pairs


class JitteredLayouts(LayoutSource):
    """Another source's layouts with every centroid moved by Gaussian noise (``layouts.real.jitter``)."""

    def __init__(self, inner: LayoutSource, sigma: float, shape: tuple[int, int]):
        self.inner, self.sigma, self.shape = inner, float(sigma), tuple(shape)

    def layout(self, index: int, seed: int) -> PointTable:
        from ..layouts.real import jitter

        # The inner source drew from ``seed`` already; a second stream keeps the noise independent of it.
        return jitter(self.inner.layout(index, seed), self.shape, self.sigma, rng=np.random.default_rng([seed, 1]))

    def describe(self) -> dict:
        return {**self.inner.describe(), "jitter_px": self.sigma}


def _layout_source(ctx: _Context, folder: Path, subset: list[str]) -> LayoutSource:
    from ..bulk.sources import DatasetLayouts, FittedLayouts

    plan, synth = ctx.plan, ctx.synthesiser
    if plan.layouts == "real":
        source = DatasetLayouts(plan.train, plan.format, synth.shape, synth.magnification, synth.vocabulary,
                                samples=subset)
        return JitteredLayouts(source, plan.jitter, synth.shape) if plan.jitter else source
    model_path = folder / LAYOUT_MODEL
    if not model_path.is_file():
        from ..data.registry import open_dataset
        from ..layouts.process import save_model
        from ..layouts.real import Layout
        from ..layouts.strauss_fit import fit_strauss

        dataset = open_dataset(plan.train, plan.format, magnification=synth.magnification)
        samples = [dataset[i] for i in dataset.indices_of(subset)]
        layouts = [Layout(s.point_table(), s.shape, s.name) for s in samples]
        fitted = fit_strauss(layouts, samples[0].vocabulary, magnification=synth.magnification,
                             iterations=plan.fit_iterations, rng=plan.subset_seed)
        save_model(fitted, model_path)
    return FittedLayouts(model_path, synth.vocabulary, synth.shape, synth.magnification)


def _synthesise(ctx: _Context, fraction: float, subset: list[str], n: int, done: int, total: int):
    """Generate (or finish generating) a fraction's synthetic pairs; return their folder."""
    from ..bulk.run import PAIRS_DIR, generate_dataset

    folder = ctx.out / fraction_dir(fraction)
    source = _layout_source(ctx, folder, subset)
    synth, plan = ctx.synthesiser, ctx.plan
    pipe = synth.pipe.with_settings(plan.sampler_settings())
    run = generate_dataset(pipe, source, folder / SYNTHETIC_DIR, n, shape=synth.shape,
                           base_seed=plan.synthetic_seed)
    name = f"fraction {fraction:g}"
    yield DownstreamProgress(done, total, name, f"synthetic pairs 0/{n}")
    yield from relay(run, lambda p: DownstreamProgress(done, total, name, f"synthetic pairs {p.postfix()}"))
    return folder / SYNTHETIC_DIR / PAIRS_DIR


# ------------------------------------------------------------------------------------------- runs


def _finished_step(checkpoint: Path | None) -> int:
    return -1 if checkpoint is None else int(checkpoint.name.rsplit("-", 1)[1])


def _test_set(ctx: _Context, magnification: float) -> list:
    """The test split at ``magnification``, read once for all runs."""
    if magnification not in ctx.test_samples:
        from ..data.registry import open_dataset

        samples = list(open_dataset(ctx.plan.test, ctx.plan.test_format, magnification=magnification))
        if not samples:
            raise DatasetError(ctx.plan.test, f"holds no {ctx.plan.test_format} samples to score on")
        unlabelled = [s.name for s in samples if not s.has_masks]
        if unlabelled:
            raise DatasetError(ctx.plan.test, f"sample {unlabelled[0]} has no instance labels to score against")
        ctx.test_samples[magnification] = samples
    return ctx.test_samples[magnification]


def _score(ctx: _Context, checkpoint: Path) -> dict:
    from ..engine.device import resolve_device
    from ..segmenter import load_segmenter, predict_samples, score_predictions

    model, meta = load_segmenter(checkpoint, resolve_device(ctx.device))
    magnification = float(meta["magnification"])
    pairs = list(predict_samples(model, meta, _test_set(ctx, magnification)))
    return score_predictions([t for t, _ in pairs], [p for _, p in pairs], magnification)


def _run(ctx: _Context, fraction: float, arm: str, seed: int, subset: list[str], extras: list,
         done: int, total: int):
    """Train, score and record one (fraction, arm, seed) run; a generator returning its result."""
    from ..segmenter.model import latest_checkpoint, list_checkpoints
    from ..segmenter.train import train_segmenter

    folder = ctx.out / run_dir(fraction, arm, seed)
    name = f"fraction {fraction:g}, {arm}, seed {seed}"
    latest = latest_checkpoint(folder)
    if _finished_step(latest) < ctx.steps:
        config = ctx.config.with_(colour_augment=arm == "augment")
        training = train_segmenter(config, ctx.plan.train, ctx.plan.format, folder,
                                   magnification=ctx.magnification, extras=extras, samples=subset,
                                   steps=ctx.steps, resume=latest is not None, seed=seed, device=ctx.device)
        latest = yield from relay(training, lambda p: DownstreamProgress(
            done + p.step, total, name, f"step {p.step}/{ctx.steps}, {p.postfix()}"))
    yield DownstreamProgress(done + ctx.steps, total, name, "scoring the test split")
    scores = _score(ctx, latest)
    result = {
        "fraction": fraction, "arm": arm, "seed": seed, "steps": ctx.steps, "train_samples": len(subset),
        "synthetic": [str(p) for p, _ in extras], "checkpoint": str(latest.relative_to(ctx.out)),
        "scores": scores,
    }
    write_text(folder / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    # Only the final checkpoint is kept: 27 runs x a few intermediate checkpoints of ~40 MB add up.
    for old in list_checkpoints(folder)[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return result


def read_result(out: str | Path, fraction: float, arm: str, seed: int) -> dict | None:
    """The recorded result of one run, or None when it has not finished."""
    path = Path(out) / run_dir(fraction, arm, seed) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise CosynthError(f"{path}: unreadable result ({err}); delete it to score that run again") from None


# ------------------------------------------------------------------------------------------- plan


def _plan_record(ctx: _Context, subsets: dict, n_tiles: int, n_pairs: dict) -> dict:
    plan, synth = ctx.plan, ctx.synthesiser
    record = {k: v for k, v in asdict(plan).items() if k != "segmenter_steps"}
    record["sampler_spacing"] = plan.sampler_settings().resolved_spacing()
    segmenter = {k: v for k, v in ctx.config.to_dict().items() if k not in PER_RUN_SEGMENTER}
    record.update(
        magnification=ctx.magnification, steps=ctx.steps, segmenter=segmenter,
        model_id=synth.pipe.card.model_id if synth else None,
        canvas=list(synth.shape) if synth else None, tiles=n_tiles,
        subsets=[{"fraction": f, "samples": len(s), "synthetic_pairs": n_pairs.get(f), "names": s}
                 for f, s in subsets.items()],
    )
    return json.loads(json.dumps(record))  # tuples -> lists, as the stored plan reads back


def run_downstream(plan: DownstreamPlan, config, out: str | Path, *, synthesiser: Synthesiser | None = None,
                   device: str = "cpu") -> Generator[DownstreamProgress, None, dict]:
    """Run (or continue) the whole experiment; a generator yielding progress, returning the report.

    Parameters
    ----------
    plan : DownstreamPlan
    config : napari_cosynth.segmenter.SegmenterConfig
        The segmenter of every run; its ``seed`` and ``colour_augment`` are set per run and arm.
    out
        Experiment folder (see the module docstring); reruns continue what is there.
    synthesiser : Synthesiser, optional
        The joint model; required when ``plan.arms`` holds ``synthetic``.
    device
        torch device of training, generation and prediction.

    Returns
    -------
    dict
        The report (:func:`napari_cosynth.evaluate.downstream_report.build_report`), also written
        as ``report.json``, ``report.md`` and ``downstream.png`` in ``out``.
    """
    from ..data.registry import open_dataset
    from .downstream_report import build_report, write_downstream_report

    if "synthetic" in plan.arms and synthesiser is None:
        raise CosynthError("the synthetic arm needs the joint model that makes the pairs: give --model")
    steps = int(plan.segmenter_steps or config.steps)
    magnification = plan.magnification or (synthesiser.magnification if synthesiser else None)
    ctx = _Context(plan, config, Path(out), steps, magnification, synthesiser, device)
    if synthesiser is not None and "synthetic" in plan.arms and min(synthesiser.shape) < config.crop_size:
        raise CosynthError(
            f"synthetic pairs of {synthesiser.shape[0]}x{synthesiser.shape[1]} px are smaller than the "
            f"segmenter's {config.crop_size} px crops (they would be padded with black); give --size of at "
            f"least {config.crop_size} {config.crop_size} or a segmenter config with smaller crops"
        )
    names = open_dataset(plan.train, plan.format).names
    subsets = choose_subsets(names, plan.fractions, seed=plan.subset_seed, tile_pattern=plan.tile_pattern)
    n_pairs = {f: plan.synthetic_pairs or len(s) for f, s in subsets.items()} if synthesiser else {}
    record = _plan_record(ctx, subsets, len(group_tiles(names, plan.tile_pattern)), n_pairs)
    record = checked_plan(ctx.out, record)
    ctx.magnification = record["magnification"]  # an earlier run's, where this one leaves it open
    ctx.out.mkdir(parents=True, exist_ok=True)
    write_text(ctx.out / PLAN_FILE, json.dumps(record, indent=2) + "\n")

    total = len(plan.fractions) * len(plan.seeds) * len(plan.arms) * steps
    done, results = 0, []
    for fraction in plan.fractions:
        subset = subsets[fraction]
        pending = [(s, a) for s in plan.seeds for a in plan.arms if read_result(ctx.out, fraction, a, s) is None]
        extras = []
        if any(a == "synthetic" for _, a in pending):
            pairs = yield from _synthesise(ctx, fraction, subset, n_pairs[fraction], done, total)
            extras = [(pairs, "folder")]
        # Seeds outside, arms inside: an interrupted experiment leaves the arms equally far along.
        for seed in plan.seeds:
            for arm in plan.arms:
                result = read_result(ctx.out, fraction, arm, seed)
                if result is None:
                    result = yield from _run(ctx, fraction, arm, seed, subset,
                                             extras if arm == "synthetic" else [], done, total)
                results.append(result)
                done += steps
                yield DownstreamProgress(done, total, f"fraction {fraction:g}, {arm}, seed {seed}", "done")
    report = build_report(results, record)
    write_downstream_report(report, ctx.out)
    return report
