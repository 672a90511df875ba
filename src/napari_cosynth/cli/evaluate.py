"""cosynth evaluate adherence / fid / grid / realism (and downstream): argument parsing.

The measurements live in :mod:`napari_cosynth.evaluate`; handlers here only parse, drive the core
generators with a progress bar and print. Definitions and outputs: docs/evaluation.md.
"""

from __future__ import annotations

import argparse

from ..data.registry import FORMATS
from .console import drive_with_progress, print_result
from .flags import device_flag, json_flag, model_flag, output_flag, quiet_flag, sampling_flags


def _generation_flags() -> list[argparse.ArgumentParser]:
    """The flags of the measurements that generate pairs from a dataset's layouts (adherence, grid)."""
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", required=True, help="dataset whose layouts (point tables) are used")
    data.add_argument("--format", required=True, choices=FORMATS)
    data.add_argument("--mag", type=float, default=None,
                      help="resample the data to this magnification (default: the model's)")
    data.add_argument("--seed", type=int, default=0, help="run seed; sample i uses a seed derived from it")
    return [model_flag(), data, sampling_flags(), device_flag(), quiet_flag(), json_flag()]


def _real_and_fake_flags() -> argparse.ArgumentParser:
    """--real/--real-format and --fake/--fake-format: the two sets a distribution measure compares."""
    sets = argparse.ArgumentParser(add_help=False)
    sets.add_argument("--real", required=True, help="real dataset")
    sets.add_argument("--real-format", required=True, choices=FORMATS)
    sets.add_argument("--fake", required=True, help="generated pairs (or any dataset)")
    sets.add_argument("--fake-format", default="folder", choices=FORMATS)
    return sets


def register(subparsers) -> None:
    """Add this module's subcommands to ``subparsers`` (an argparse sub-parser action)."""
    p = subparsers.add_parser(
        "adherence", help="generate from each real layout; score the drawn nuclei against it (F_d, Acc, FSD)",
        parents=[*_generation_flags(),
                 output_flag("folder for the generated pairs, report.json, report.md and grid.png",
                             required=False)])
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.set_defaults(func=cmd_adherence)

    p = subparsers.add_parser(
        "fid", help="FID (and IS with Inception) of generated vs real images",
        parents=[_real_and_fake_flags(), output_flag("folder for report.json and report.md", required=False),
                 json_flag()])
    p.add_argument("--mag", type=float, default=None,
                   help="resample both sets to this magnification first (default: as read)")
    p.add_argument("--features", default="inception",
                   help="'inception' (cached weights), a path to the Inception-v3 weights file, or 'small'")
    p.set_defaults(func=cmd_fid)

    p = subparsers.add_parser("grid", help="PNG of real patches beside pairs generated from their layouts",
                              parents=[*_generation_flags(), output_flag("PNG file to write")])
    p.add_argument("--n", type=int, default=4, help="number of real patches (rows)")
    p.add_argument("--pairs-per-layout", type=int, default=2, help="generated pairs per row")
    p.set_defaults(func=cmd_grid)

    _register_realism(subparsers)

    from .downstream import register as register_downstream

    register_downstream(subparsers)


def _generation_kwargs(args) -> dict:
    """The settings of the measurements that draw pairs; sets the thread rule `cosynth generate` uses, so
    that their pairs are the ones `cosynth generate` draws from the same layouts and seeds."""
    from ..engine.device import resolve_device
    from ..engine.pipeline.settings import SamplerSettings
    from ..engine.threads import use_generation_threads

    settings = SamplerSettings.from_args(args)
    device = resolve_device(args.device)
    use_generation_threads(device)
    return {"magnification": args.mag, "settings": settings, "seed": args.seed, "device": device}


def cmd_adherence(args) -> int:
    from ..evaluate.adherence import adherence_report

    run = adherence_report(args.model, args.data, args.format, limit=args.limit,
                           out=args.out, **_generation_kwargs(args))
    report = drive_with_progress(run, "adherence", quiet=args.quiet or args.json, unit="pair")
    if not args.json:
        # The per-sample table would drown the summary; it is in report.json / --json.
        report = {k: v for k, v in report.items() if k != "samples"}
    print_result(report, args.json)
    return 0


def cmd_fid(args) -> int:
    from ..evaluate.fid import fid_report

    report = fid_report(args.real, args.real_format, args.fake, args.fake_format, features=args.features,
                        magnification=args.mag)
    if args.out:
        from ..evaluate.report import write_report

        write_report(report, args.out, title=f"FID of {args.fake} against {args.real}")
    print_result(report, args.json)
    return 0


def cmd_grid(args) -> int:
    from ..evaluate.grid import grid_report

    run = grid_report(args.model, args.data, args.format, args.out, n=args.n,
                      pairs_per_layout=args.pairs_per_layout, **_generation_kwargs(args))
    print_result(drive_with_progress(run, "grid", quiet=args.quiet or args.json, unit="pair"), args.json)
    return 0


def _register_realism(subparsers) -> None:
    p = subparsers.add_parser(
        "realism", help="two-sample classifier accuracy and segmenter-feature FD/KID, beside real-vs-real",
        parents=[_real_and_fake_flags(), output_flag("folder for report.json and report.md", required=False),
                 json_flag()])
    p.add_argument("--baseline", default=None,
                   help="another set of real images (other tiles) compared with --real the same way")
    p.add_argument("--baseline-format", default=None, choices=FORMATS,
                   help="format of --baseline (default: --real-format)")
    p.add_argument("--mag", type=float, default=None,
                   help="resample every set to this magnification (default: the segmenter's, else as read)")
    p.add_argument("--tile-pattern", default=None,
                   help="regex finding the source tile in an image name; folds then hold out whole tiles "
                        "(CoNSeP: '(t(?:rain|est)_\\d+)_')")
    p.add_argument("--segmenter", default=None,
                   help="trained segmenter folder or run (cosynth segmenter train) for FD/KID")
    p.add_argument("--folds", type=int, default=5, help="folds of the two-sample test")
    p.add_argument("--epochs", type=int, default=12, help="training epochs of the two-sample classifier")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_realism)


def cmd_realism(args) -> int:
    from ..evaluate.c2st import C2STSettings
    from ..evaluate.realism import realism_report

    report = realism_report(args.real, args.real_format, args.fake, args.fake_format,
                            baseline=args.baseline, baseline_format=args.baseline_format,
                            magnification=args.mag, tile_pattern=args.tile_pattern,
                            segmenter=args.segmenter, seed=args.seed,
                            settings=C2STSettings(folds=args.folds, epochs=args.epochs))
    if args.out:
        from ..evaluate.report import write_report

        write_report(report, args.out, title=f"Realism of {args.fake} against {args.real}")
    print_result(report, args.json)
    return 0
