"""cosynth segmenter train / predict and cosynth evaluate alignment: argument parsing."""

from __future__ import annotations

from ..data.registry import FORMATS
from .console import drive_with_progress, print_result
from .flags import device_flag, json_flag, output_flag, quiet_flag


def register(subparsers) -> None:
    """Add ``cosynth segmenter train`` and ``cosynth segmenter predict`` to ``subparsers``."""
    p = subparsers.add_parser("segmenter", help="the nuclei segmentation + classification network")
    sub = p.add_subparsers(dest="segmenter_command", required=True, metavar="ACTION")

    t = sub.add_parser("train", help="train the segmenter on annotated data (plus optional extra data)",
                       parents=[output_flag("run folder (checkpoints, loss.csv, run.json)"), device_flag(),
                                quiet_flag(), json_flag("print the result as JSON")])
    t.add_argument("--data", required=True, help="training dataset")
    t.add_argument("--format", required=True, choices=FORMATS)
    t.add_argument("--mag", type=float, default=None, help="resample every dataset to this magnification")
    t.add_argument("--extra", action="append", default=[], metavar="PATH",
                   help="extra dataset mixed in (e.g. synthetic pairs); repeatable")
    t.add_argument("--extra-format", action="append", default=[], metavar="F", choices=FORMATS,
                   help="format of each --extra, in order (default: folder)")
    t.add_argument("--config", required=True, help="YAML settings (see configs/segmenter-*.yaml)")
    t.add_argument("--steps", type=int, default=None, help="override the config's steps")
    t.add_argument("--seed", type=int, default=None, help="override the config's seed")
    t.add_argument("--colour-augment", action="store_true",
                   help="add colour jitter to the flips and rotations (conventional augmentation)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    t.set_defaults(func=cmd_segmenter_train)

    q = sub.add_parser("predict", help="segment a dataset's images; write predicted pairs (folder format)",
                       parents=[output_flag("new or empty output folder"), device_flag(),
                                json_flag("print the result as JSON")])
    # A segmenter, not a joint diffusion model: not the shared --model flag (no 'default' here).
    q.add_argument("--model", required=True, help="segmenter folder or training run folder")
    q.add_argument("--data", required=True, help="dataset whose images to segment")
    q.add_argument("--format", required=True, choices=FORMATS)
    q.add_argument("--mag", type=float, default=None, help="resample first (default: the segmenter's)")
    q.set_defaults(func=cmd_segmenter_predict)


def register_alignment(evaluate_subparsers) -> None:
    """Add ``cosynth evaluate alignment``."""
    s = evaluate_subparsers.add_parser(
        "alignment", help="a real-trained segmenter scored on generated pairs vs on real test images",
        parents=[device_flag(), json_flag("print the full report as JSON")],
    )
    s.add_argument("--segmenter", required=True, help="segmenter folder or training run folder")
    s.add_argument("--generated", required=True, help="generated pairs")
    s.add_argument("--generated-format", default="folder", choices=FORMATS)
    s.add_argument("--real-test", required=True, help="real annotated test images")
    s.add_argument("--real-format", required=True, choices=FORMATS)
    s.add_argument("--mag", type=float, default=None, help="default: the segmenter's magnification")
    s.set_defaults(func=cmd_evaluate_alignment)


def cmd_segmenter_train(args) -> int:
    from ..errors import CosynthError
    from ..segmenter.config import SegmenterConfig
    from ..segmenter.train import train_segmenter

    if len(args.extra_format) > len(args.extra):
        raise CosynthError(f"{len(args.extra_format)} --extra-format given for {len(args.extra)} --extra")
    formats = args.extra_format + ["folder"] * (len(args.extra) - len(args.extra_format))
    config = SegmenterConfig.from_yaml(args.config)
    if args.colour_augment:
        config = config.with_(colour_augment=True)
    run = train_segmenter(
        config, args.data, args.format, args.out, magnification=args.mag,
        extras=list(zip(args.extra, formats, strict=True)), steps=args.steps, resume=args.resume, seed=args.seed,
        device=args.device,
    )
    final = drive_with_progress(run, "segmenter training", quiet=args.quiet)
    print_result({"checkpoint": str(final), "out": args.out}, args.json)
    return 0


def cmd_segmenter_predict(args) -> int:
    from ..segmenter.predict import predict_dataset

    result = predict_dataset(args.model, args.data, args.format, args.out,
                             magnification=args.mag, device=args.device)
    print_result(result, args.json)
    return 0


def cmd_evaluate_alignment(args) -> int:
    from ..evaluate.alignment import alignment_report

    report = alignment_report(
        args.segmenter, args.generated, args.real_test, args.real_format,
        generated_format=args.generated_format, magnification=args.mag, device=args.device,
    )
    if not args.json:
        report = {k: report[k] for k in ("segmenter", "magnification", "n_generated", "n_real",
                                         "table", "dice_gap")}
    print_result(report, args.json)
    return 0
