"""The ``cosynth`` command line: argument parsing and printing only; every subcommand calls the core.

Long work (training, generation) is a generator in the core; here we only drive it with a progress
bar. Errors a user can fix (:class:`~napari_cosynth.errors.CosynthError`) print one clear line and exit
with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from . import bulk as cli_bulk
from . import evaluate as cli_evaluate
from . import layouts as cli_layouts
from . import segmenter as cli_segmenter
from .generate import add_sampler_args
from .help import complete_help
from ..errors import CosynthError
from ..limits import check_args

from ..data.registry import FORMATS


def print_result(result, as_json: bool) -> None:
    if as_json:
        from ..evaluate.report import json_default

        print(json.dumps(result, indent=2, default=json_default))
    else:
        _print_table(result)


def _print_table(result, indent: int = 0) -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            print(" " * indent + f"{key}:")
            _print_table(value, indent + 2)
        elif isinstance(value, float):
            print(" " * indent + f"{key}: {value:.4f}")
        else:
            print(" " * indent + f"{key}: {value}")


def drive_with_progress(generator, desc: str, quiet: bool = False, unit: str = "step"):
    """Run a core generator to its end with a tqdm bar counting ``unit``; return its return value.

    The bar starts at the first report's count: what was done before it (a resumed run's steps, or
    the first step, which also paid for loading) would otherwise count as done in no time, and the
    first tick would show tens of thousands of steps per second.
    """
    from tqdm import tqdm

    bar = None
    try:
        while True:
            progress = next(generator)
            total = getattr(progress, "total", None)
            if bar is None:
                bar = tqdm(total=total, desc=desc, disable=quiet, unit=unit, dynamic_ncols=True,
                           initial=getattr(progress, "step", 0) or 0)
            bar.n = getattr(progress, "step", bar.n + 1)
            postfix = getattr(progress, "postfix", None)
            if callable(postfix):
                bar.set_postfix_str(postfix(), refresh=False)
            bar.refresh()
    except StopIteration as stop:
        return stop.value
    finally:
        if bar is not None:
            bar.close()


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


def cmd_generate(args) -> int:
    from .generate import run_generate

    return run_generate(args, drive_with_progress)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosynth",
        description="Co-synthesise histopathology nuclei image-label pairs (CoSyn).",
    )
    parser.add_argument("--version", action="version", version=f"napari-cosynth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions and the device that would be used")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("dataset", help="inspect datasets")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    s = dsub.add_parser("stats", help="samples, nuclei, nuclei per class, image sizes")
    s.add_argument("path", help="dataset folder (or PanNuke fold folder)")
    s.add_argument("--format", required=True, choices=FORMATS)
    s.add_argument("--mag", type=float, default=None, help="resample to this magnification first")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_dataset_stats)

    p = sub.add_parser("metrics", help="compare two folders of pairs (folder format)")
    p.add_argument("true_dir", help="folder of reference pairs (folder format)")
    p.add_argument("pred_dir", help="folder of predicted pairs with the same names")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("evaluate", help="quality measurements")
    esub = p.add_subparsers(dest="evaluate_command", required=True, metavar="MEASUREMENT")
    s = esub.add_parser(
        "separation",
        help="instances from each sample's own semantic+distance maps vs connected components",
    )
    s.add_argument("path", help="dataset folder (or PanNuke fold folder)")
    s.add_argument("--format", required=True, choices=FORMATS)
    s.add_argument("--mag", type=float, default=None, help="resample to this magnification first")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_evaluate_separation)
    cli_evaluate.register(esub)
    cli_segmenter.register_alignment(esub)
    cli_segmenter.register(sub)
    cli_layouts.register(sub)
    cli_bulk.register(sub)

    p = sub.add_parser("train", help="train a joint diffusion model from a YAML config")
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--out", default="runs/cosynth", help="run folder (checkpoints, logs, sample grids)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--steps", type=int, default=None, help="override train.steps")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a saved model's weights ('default' or a checkpoint folder): fine-tuning")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (torchrun sets ranks)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a config key, e.g. --set data.path=/data/consep/train (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "generate", help="generate image-label pairs into a folder",
        description="Generate image-label pairs (H&E image, semantic, distance and instance maps) with "
                    "a joint diffusion model and write each into a new pair folder under --out. The "
                    "layout is --points, or one drawn with the density and class mix of the model's "
                    "training data; the prompt is --prompt, or one built from the layout's classes.",
    )
    p.add_argument("--model", default="default", help="'default' (bundled) or a checkpoint folder")
    p.add_argument("--points", default=None, help="CSV point table: x,y,class (name or id)")
    p.add_argument("--prompt", default=None, help="text prompt; built from the points if omitted")
    p.add_argument("--tissue", default=None, help="tissue for the built prompt (model's first if omitted)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="canvas height and width in pixels, multiples of the model's size step (8 for "
                        "the bundled model; default: the model's canvas, 128 128 for the bundled model)")
    add_sampler_args(p)
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--seed", type=int, default=None, help="random seed (drawn and recorded if omitted)")
    p.add_argument("--n", type=int, default=1,
                   help="number of pairs (default 1); pair i uses seed --seed + i (and, without --points, "
                        "its own drawn layout)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one, else the CPU), cuda, "
                                                    "mps or cpu")
    p.add_argument("--out", required=True, help="output folder (folder format); pairs are never overwritten")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no line per pair")
    p.set_defaults(func=cmd_generate)
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


if __name__ == "__main__":
    sys.exit(main())
