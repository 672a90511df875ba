"""``cosynth evaluate downstream`` and ``downstream-report``: the downstream experiment's CLI (docs/downstream.md).

The experiment lives in :mod:`napari_cosynth.evaluate.downstream`; the handler only loads the joint
model, drives the core generator with a progress bar and prints the table.
"""

from __future__ import annotations

from ..data.registry import FORMATS
from .console import drive_with_progress, print_result
from .flags import device_flag, json_flag, output_flag, quiet_flag, sampling_flags


def register(evaluate_subparsers) -> None:
    """Add ``cosynth evaluate downstream`` to the ``cosynth evaluate`` sub-parsers."""
    p = evaluate_subparsers.add_parser(
        "downstream",
        help="train the segmenter on real / augmented / real+synthetic data at several training "
             "fractions and seeds; score each on the test split (resumable)",
        parents=[sampling_flags(),
                 device_flag(), output_flag("experiment folder; rerun the command to continue it"),
                 quiet_flag(), json_flag("print the full report as JSON")],
    )
    # Not the shared --model flag: no default, so that the synthetic arm never silently uses the
    # bundled model (run_downstream asks for --model), and the other arms load none.
    p.add_argument("--model", default=None,
                   help="joint model of the synthetic arm: 'default', a checkpoint or a run folder")
    p.add_argument("--train", required=True, help="real training split")
    p.add_argument("--test", required=True, help="real test split")
    p.add_argument("--format", required=True, choices=FORMATS, help="format of --train (and of --test)")
    p.add_argument("--test-format", default=None, choices=FORMATS, help="format of --test if it differs")
    p.add_argument("--mag", type=float, default=None,
                   help="resample the real data to this magnification (default: the joint model's)")
    p.add_argument("--segmenter-config", required=True, help="segmenter YAML (configs/segmenter-downstream.yaml)")
    p.add_argument("--segmenter-steps", type=int, default=None, help="steps of every run (default: the config's)")
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.25, 0.1],
                   help="shares of the training tiles, in (0, 1]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="segmenter seeds")
    p.add_argument("--arms", nargs="+", default=["real", "augment", "synthetic"],
                   help="any of: real, augment, synthetic")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the tile order the subsets are cut from")
    p.add_argument("--tile-pattern", default=None, metavar="REGEX",
                   help=r"group samples cut from one tile by name, e.g. '^train_(\d+)_' for the CoNSeP "
                        "patches (default: every sample is a tile)")
    p.add_argument("--layouts", choices=("real", "generated"), default="real",
                   help="synthetic layouts: the subset's point tables, or a layout model fitted on the subset")
    p.add_argument("--jitter", type=float, default=0.0, help="px of Gaussian noise on real layouts' centroids")
    p.add_argument("--synthetic-pairs", type=int, default=None,
                   help="synthetic pairs per fraction (default: as many as the subset's samples)")
    p.add_argument("--synthetic-seed", type=int, default=0, help="base seed of the synthetic pairs")
    p.add_argument("--fit-iterations", type=int, default=4, help="simulation rounds of the layout model fit")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="synthetic canvas (default: the joint model's patch size)")
    p.set_defaults(func=cmd_downstream)

    r = evaluate_subparsers.add_parser(
        "downstream-report",
        help="one table and plot over downstream folders that ran different fractions (e.g. in parallel)",
        parents=[output_flag("folder for report.json, report.md and downstream.png"),
                 json_flag("print the full report as JSON")],
    )
    r.add_argument("folders", nargs="+", help="experiment folders (--out of cosynth evaluate downstream)")
    r.set_defaults(func=cmd_downstream_report)


def cmd_downstream(args) -> int:
    """Handler of ``cosynth evaluate downstream``."""
    from ..engine.device import resolve_device
    from ..evaluate.downstream import Synthesiser, run_downstream
    from ..evaluate.downstream_plan import DownstreamPlan
    from ..segmenter.config import SegmenterConfig

    plan = DownstreamPlan(
        train=args.train, test=args.test, format=args.format, test_format=args.test_format,
        magnification=args.mag, fractions=tuple(args.fractions), seeds=tuple(args.seeds),
        arms=tuple(args.arms), subset_seed=args.subset_seed, tile_pattern=args.tile_pattern,
        layouts=args.layouts, jitter=args.jitter, synthetic_pairs=args.synthetic_pairs,
        synthetic_seed=args.synthetic_seed, sampler=args.sampler, sampler_steps=args.steps,
        sampler_spacing=args.spacing,
        guidance=args.guidance, fit_iterations=args.fit_iterations, segmenter_steps=args.segmenter_steps,
    )
    config = SegmenterConfig.from_yaml(args.segmenter_config)
    device = str(resolve_device(args.device))
    synthesiser = None
    if args.model is not None:
        from .generate import load_pipeline

        synthesiser = Synthesiser(*load_pipeline(args, device))
    run = run_downstream(plan, config, args.out, synthesiser=synthesiser, device=device)
    report = drive_with_progress(run, "downstream", quiet=args.quiet or args.json)
    print_result(_short(report, args), args.json)
    return 0


def _short(report: dict, args) -> dict:
    if args.json:
        return report
    return {"out": args.out, "table": {f"{r['fraction']:g} {r['arm']}": {k: v for k, v in r.items()
                                                                     if k not in ("fraction", "arm")}
                                       for r in report["table"]}}


def cmd_downstream_report(args) -> int:
    """Handler of ``cosynth evaluate downstream-report``."""
    from pathlib import Path

    from ..evaluate.downstream_report import merged_report, write_downstream_report

    report = merged_report(args.folders)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_downstream_report(report, args.out)
    print_result(_short(report, args), args.json)
    return 0
