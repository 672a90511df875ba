"""``cosynth generate``: load a model, gather the layouts and prompts, drive generation, write pairs.

Kept apart from :mod:`napari_cosynth.cli.main` because it is the one subcommand with real assembly work
(model resolution, layouts, seeds per pair); the generation itself is the engine's generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine.diffusion.sampler_names import DEFAULT_SAMPLER, SAMPLERS, SOLVERS, check_sampler
from ..errors import CosynthError

SAMPLER_FLAGS = {"sampler": "--sampler", "steps": "--steps", "eta": "--eta", "guidance": "--guidance"}


def add_sampler_args(p, default: str = DEFAULT_SAMPLER) -> None:
    """--sampler, --steps and --eta (check them with :func:`check_sampler_args`)."""
    p.add_argument("--sampler", choices=SAMPLERS, default=default,
                   help=f"{', '.join(SOLVERS)}: fast solvers; 'fast' = ddim with 50 steps (earlier "
                        f"versions' sampler); 'reference' = CoSyn's 1000-step ancestral sampler "
                        f"(default {default})")
    p.add_argument("--steps", type=int, default=None,
                   help="sampler steps (default 20; 50 for 'fast'; the reference takes all 1000)")
    p.add_argument("--eta", type=float, default=None,
                   help="ddim only: noise scale in [0, 1] (0 = deterministic, the default)")


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
