"""``cosynth generate``: its flags; load a model, gather layouts and prompts, drive generation, write pairs.

Kept apart from :mod:`napari_cosynth.cli.main` because it is the one subcommand with real assembly work
(model resolution, layouts, seeds per pair); the generation itself is the engine's generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine.diffusion.sampler_names import check_sampler
from ..errors import CosynthError
from .console import drive_with_progress
from .flags import device_flag, model_flag, output_flag, quiet_flag, sampling_flags

SAMPLER_FLAGS = {"sampler": "--sampler", "steps": "--steps", "eta": "--eta", "guidance": "--guidance"}


def register(subparsers) -> None:
    """Add ``cosynth generate`` to ``subparsers`` (an argparse sub-parser action)."""
    p = subparsers.add_parser(
        "generate", help="generate image-label pairs into a folder",
        description="Generate image-label pairs (H&E image, semantic, distance and instance maps) with "
                    "a joint diffusion model and write each into a new pair folder under --out. The "
                    "layout is --points, or one drawn with the density and class mix of the model's "
                    "training data; the prompt is --prompt, or one built from the layout's classes.",
        parents=[model_flag(), sampling_flags(eta=True), device_flag(),
                 output_flag("output folder (folder format); pairs are never overwritten"),
                 quiet_flag("no progress bar and no line per pair")],
    )
    p.add_argument("--points", default=None, help="CSV point table: x,y,class (name or id)")
    p.add_argument("--prompt", default=None, help="text prompt; built from the points if omitted")
    p.add_argument("--tissue", default=None, help="tissue for the built prompt (model's first if omitted)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="canvas height and width in pixels, multiples of the model's size step (8 for "
                        "the bundled model; default: the model's canvas, 128 128 for the bundled model)")
    p.add_argument("--seed", type=int, default=None, help="random seed (drawn and recorded if omitted)")
    p.add_argument("--n", type=int, default=1,
                   help="number of pairs (default 1); pair i uses seed --seed + i (and, without --points, "
                        "its own drawn layout)")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    """Handler of ``cosynth generate``."""
    return run_generate(args, drive_with_progress)


def check_sampler_args(args) -> None:
    """One clear error line naming the flag for a bad --sampler / --steps / --eta / --guidance."""
    check_sampler(args.sampler, args.steps, getattr(args, "eta", None), args.guidance, flags=SAMPLER_FLAGS)


def resolve_checkpoint(model: str) -> Path:
    """'default', a checkpoint folder, or a training run folder (its newest checkpoint)."""
    from ..engine.networks.checkpoint import resolve_model
    from ..engine.training.train import latest_checkpoint

    path = Path(model).expanduser()
    if (path / "checkpoints").is_dir():
        newest = latest_checkpoint(path)
        if newest is None:
            raise CosynthError(f"{path} is a training run without a complete checkpoint yet")
        return newest
    return resolve_model(model)


def load_for_generation(model_arg: str, size, device):
    """(model, meta, vocabulary, magnification, shape): a model and the canvas it will draw on.

    The canvas is ``size`` (H, W) when given, else the model's training patch size.
    """
    from ..engine.networks.checkpoint import load_model
    from ..engine.pipeline.generate import default_canvas, model_vocabulary
    from ..limits import check_generation_memory

    model, meta = load_model(resolve_checkpoint(model_arg), device=device)
    magnification = float(meta.get("magnification") or 40.0)
    if size is not None:
        shape = tuple(size)
    else:
        shape = (default_canvas(meta),) * 2
    check_generation_memory(shape, model.config.base_channels, device)
    return model, meta, model_vocabulary(meta), magnification, shape


def run_generate(args, drive) -> int:
    from ..data.folder import write_sample
    from ..data.points_csv import read_points_csv
    from ..engine.device import resolve_device
    from ..engine.pipeline.generate import generate
    from ..engine.threads import use_generation_threads
    from ..layouts.hardcore import layout_like_training_data

    check_sampler_args(args)
    device = resolve_device(args.device)
    use_generation_threads(device)
    model, meta, vocabulary, magnification, shape = load_for_generation(args.model, args.size, device)
    if args.n < 1:
        raise CosynthError(f"--n must be at least 1, got {args.n}")
    base_seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**62)
    points = read_points_csv(args.points, vocabulary) if args.points else None

    written = []
    for i in range(args.n):
        # One seed per pair, derived from the base seed, so pair i is the same in any batch.
        seed = base_seed + i
        layout = points if points is not None else layout_like_training_data(
            meta.get("training_data"), vocabulary, shape, magnification, rng=seed)
        run = generate(model, meta, layout, shape, prompt=args.prompt, tissue=args.tissue,
                       sampler=args.sampler, steps=args.steps, guidance=args.guidance, eta=args.eta,
                       seed=seed, device=device)
        (pair,) = drive(run, f"pair {i + 1}/{args.n}", quiet=args.quiet)
        pair.provenance["layout"] = str(args.points) if points is not None else "hardcore (training density)"
        path = write_sample(pair, args.out, name=f"pair-{seed}")
        written.append(path)
        if not args.quiet:
            print(f"{path}  ({pair.n_nuclei} nuclei; prompt: {pair.provenance['prompt']!r})")
    print(f"{len(written)} pair(s) in {args.out}")
    return 0
