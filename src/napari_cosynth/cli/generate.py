"""``cosynth generate``: its flags; load a model, gather layouts and prompts, drive generation, write pairs.

Kept apart from :mod:`napari_cosynth.cli.main` because it is the one subcommand with real assembly work
(model resolution, layouts, seeds per pair); the generation itself is the engine's generator.
"""

from __future__ import annotations

from ..errors import CosynthError
from .console import drive_with_progress
from .flags import device_flag, model_flag, output_flag, quiet_flag, sampling_flags


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
                   help="number of pairs (default 1); pair i uses the seed napari_cosynth.seeds.pair_seed(--seed, i) "
                        "(pair 0: --seed itself) and, without --points, its own drawn layout: the same "
                        "pair generate-dataset draws as pair i")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    """Handler of ``cosynth generate``."""
    return run_generate(args, drive_with_progress)


def load_pipeline(args, device):
    """The model of ``--model`` ('default', a checkpoint or a training run folder) with the sampler of
    the sampling flags, and the canvas of ``--size`` (the model's when omitted).

    The flags are checked first (a bad one is refused in one line naming it), then the model is
    loaded, then the canvas is checked against the UNet and the device's free memory.
    """
    from ..engine.pipeline.pipeline import CoSynthPipeline
    from ..engine.pipeline.settings import SamplerSettings
    from ..limits import check_generation_memory

    settings = SamplerSettings.from_args(args)
    pipe = CoSynthPipeline.from_pretrained(args.model, device=device, settings=settings)
    shape = pipe.canvas(args.size)
    pipe.model.check_size(*shape)
    check_generation_memory(shape, pipe.model.config.base_channels, pipe.device)
    return pipe, shape


def run_generate(args, drive) -> int:
    from ..data.folder import write_sample
    from ..data.points_csv import read_points_csv
    from ..engine.device import resolve_device
    from ..engine.threads import use_generation_threads
    from ..seeds import new_seed

    if args.n < 1:
        raise CosynthError(f"--n must be at least 1, got {args.n}")
    device = resolve_device(args.device)
    use_generation_threads(device)
    pipe, shape = load_pipeline(args, device)
    base_seed = args.seed if args.seed is not None else new_seed()
    points = read_points_csv(args.points, pipe.vocabulary) if args.points else None

    written = []
    for i in range(args.n):
        # Pair i of the base seed, one at a time: the same pair `generate-dataset` and the pipeline draw.
        run = pipe.generate(points, prompt=args.prompt, tissue=args.tissue, size=shape, seed=base_seed,
                            first_index=i)
        (pair,) = drive(run, f"pair {i + 1}/{args.n}", quiet=args.quiet)
        pair.provenance["layout"] = str(args.points) if points is not None else "hardcore (training density)"
        path = write_sample(pair, args.out, name=pair.name)
        written.append(path)
        if not args.quiet:
            print(f"{path}  ({pair.n_nuclei} nuclei; prompt: {pair.provenance['prompt']!r})")
    print(f"{len(written)} pair(s) in {args.out}")
    return 0
