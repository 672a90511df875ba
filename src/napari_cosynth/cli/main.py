"""The ``cosynth`` command line: the top-level parser, its small subcommands, and ``main``.

Every subcommand calls the core; the larger families (generate, generate-dataset, evaluate, segmenter,
layouts) register themselves from their own modules, which take the shared flags from
:mod:`.flags` and print through :mod:`.console`, never importing back from here.

Long work (training, generation) is a generator in the core; here we only drive it with a progress
bar. Errors a user can fix (:class:`~napari_cosynth.errors.CosynthError`) print one clear line and exit
with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from .. import __version__
from ..data.registry import FORMATS
from ..errors import CosynthError
from ..limits import check_args
from . import bulk as cli_bulk
from . import evaluate as cli_evaluate
from . import generate as cli_generate
from . import layouts as cli_layouts
from . import segmenter as cli_segmenter
from .console import drive_with_progress, print_result
from .flags import device_flag, json_flag, output_flag, quiet_flag
from .help import complete_help

# ---------------------------------------------------------------- subcommands


def cmd_info(args) -> int:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    from ..engine.device import resolve_device

    info = {
        "napari_cosynth": __version__,
        "python": sys.version.split()[0],
        "torch": ver("torch"),
        "napari": ver("napari"),
        "device": str(resolve_device("auto")),
    }
    print_result(info, args.json)
    return 0


def cmd_dataset_stats(args) -> int:
    from ..data.stats import dataset_stats

    print_result(dataset_stats(args.path, args.format, magnification=args.mag), args.json)
    return 0


def cmd_metrics(args) -> int:
    from ..metrics.compare import compare_folders

    print_result(compare_folders(args.true_dir, args.pred_dir), args.json)
    return 0


def cmd_evaluate_separation(args) -> int:
    from ..evaluate.separation import separation_report

    print_result(separation_report(args.path, args.format, magnification=args.mag), args.json)
    return 0


def cmd_train(args) -> int:
    import os

    from ..engine.config import CosynthConfig
    from ..engine.training.train import train

    config = CosynthConfig.from_yaml(args.config)
    if args.set:
        config = config.with_overrides(_parse_overrides(args.set))
    # Under torchrun every rank runs this; only rank 0 reports.
    main_rank = os.environ.get("RANK", "0") == "0"
    run = train(config, args.out, resume=args.resume, steps=args.steps, device=args.device,
                init_from=args.init_from)
    drive_with_progress(run, "training", quiet=args.quiet or not main_rank)
    if main_rank:
        print(f"checkpoints in {Path(args.out) / 'checkpoints'}")
    return 0


def _parse_overrides(items: list[str]) -> dict:
    """``["data.path=/x", "train.steps=10"]`` -> dotted keys with YAML-typed values."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CosynthError(f"--set {item!r}: write KEY=VALUE, e.g. --set data.path=/data/consep/train")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosynth",
        description="Co-synthesise histopathology nuclei image-label pairs (CoSyn).",
    )
    parser.add_argument("--version", action="version", version=f"napari-cosynth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions and the device that would be used", parents=[json_flag()])
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("dataset", help="inspect datasets")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    s = dsub.add_parser("stats", help="samples, nuclei, nuclei per class, image sizes", parents=[json_flag()])
    s.add_argument("path", help="dataset folder (or PanNuke fold folder)")
    s.add_argument("--format", required=True, choices=FORMATS)
    s.add_argument("--mag", type=float, default=None, help="resample to this magnification first")
    s.set_defaults(func=cmd_dataset_stats)

    p = sub.add_parser("metrics", help="compare two folders of pairs (folder format)", parents=[json_flag()])
    p.add_argument("true_dir", help="folder of reference pairs (folder format)")
    p.add_argument("pred_dir", help="folder of predicted pairs with the same names")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("evaluate", help="quality measurements")
    esub = p.add_subparsers(dest="evaluate_command", required=True, metavar="MEASUREMENT")
    s = esub.add_parser(
        "separation",
        help="instances from each sample's own semantic+distance maps vs connected components",
        parents=[json_flag()],
    )
    s.add_argument("path", help="dataset folder (or PanNuke fold folder)")
    s.add_argument("--format", required=True, choices=FORMATS)
    s.add_argument("--mag", type=float, default=None, help="resample to this magnification first")
    s.set_defaults(func=cmd_evaluate_separation)
    cli_evaluate.register(esub)
    cli_segmenter.register_alignment(esub)
    cli_segmenter.register(sub)
    cli_layouts.register(sub)
    cli_bulk.register(sub)

    p = sub.add_parser(
        "train", help="train a joint diffusion model from a YAML config",
        parents=[output_flag("run folder (checkpoints, logs, sample grids)", required=False,
                             default="runs/cosynth"),
                 device_flag(torchrun=True), quiet_flag()],
    )
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--steps", type=int, default=None, help="override train.steps")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a saved model's weights ('default' or a checkpoint folder): fine-tuning")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a config key, e.g. --set data.path=/data/consep/train (repeatable)")
    p.set_defaults(func=cmd_train)

    cli_generate.register(sub)
    return complete_help(parser)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Seeds, canvas sizes and magnifications of every command, before anything is read or drawn.
        check_args(args)
        return args.func(args)
    except CosynthError as error:
        print(f"cosynth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cosynth: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The ``cosynth`` console script and ``python -m napari_cosynth.cli``: :func:`main`, then exit.

    Tearing down torch's and diffusers' objects at exit took about 1.5 s, mostly the collector scanning
    them once more; frozen objects are skipped (docs/benchmarks.md, "Start-up"). Not in :func:`main`,
    which tests and Python callers run in a process that goes on.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
