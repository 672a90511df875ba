"""``cosynth generate-dataset``: argument parsing and the handler that calls :mod:`napari_cosynth.bulk`.

Under ``torchrun`` every process runs this same command; the ranks share the pairs (see
``napari_cosynth.bulk.plan``), and only rank 0 prints the summary.
"""

from __future__ import annotations

from ..engine.diffusion.sampler_names import DEFAULT_SAMPLER, recorded_spacing
from .flags import device_flag, json_flag, model_flag, output_flag, quiet_flag, sampling_flags


def register(subparsers) -> None:
    """Add this module's subcommands to ``subparsers`` (an argparse sub-parser action)."""
    from ..bulk.run import EXPORTS

    p = subparsers.add_parser(
        "generate-dataset",
        help="generate N image-label pairs as a training set (resumable; torchrun shards it)",
        parents=[model_flag(),
                 sampling_flags(default=None, default_help=f"the folder's earlier run's sampler and "
                                                           f"steps, else {DEFAULT_SAMPLER}"),
                 device_flag(torchrun=True), output_flag("run folder (pairs/, manifest.json, exports)"),
                 quiet_flag(), json_flag("print the summary as JSON")],
    )
    p.add_argument("--layouts", required=True,
                   help="a dataset path (with --format), 'hardcore', or generated:FITTED.json")
    p.add_argument("--format", default=None, help="dataset format of a --layouts path")
    # --pairs is the spelling to use under torchrun, whose own parser takes '--n' for an
    # abbreviation of its --nnodes/--nproc-per-node and refuses the command line.
    p.add_argument("--n", "--pairs", dest="n", type=int, required=True, help="number of pairs")
    p.add_argument("--export", default="folder",
                   help=f"comma-separated formats: {','.join(EXPORTS)} (the folder format is always written)")
    p.add_argument("--seed", type=int, default=None,
                   help="base seed (a resume reuses the folder's; drawn at random for a new folder)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="canvas size (default: the model's patch size)")
    p.add_argument("--prompt", default=None, help="one prompt for every pair (built per layout if omitted)")
    p.add_argument("--tissue", default=None, help="tissue for built prompts (model's first if omitted)")
    p.add_argument("--batch", type=int, default=1, help="pairs per sampler batch (part of the recipe)")
    p.set_defaults(func=run_generate_dataset)


def run_generate_dataset(args) -> int:
    """Handler of ``cosynth generate-dataset``."""
    from ..bulk.run import generate_dataset, parse_exports, read_recipe
    from ..bulk.sources import open_source
    from ..engine.threads import use_generation_threads
    from ..engine.training.distributed import broadcast_int, init_distributed, shutdown
    from ..errors import CosynthError
    from ..seeds import new_seed
    from .console import drive_with_progress, print_result
    from .generate import load_pipeline

    exports = parse_exports(args.export)
    if args.n < 1:
        raise CosynthError(f"--n must be at least 1, got {args.n}")
    if args.batch < 1:
        raise CosynthError(f"--batch must be at least 1, got {args.batch}")
    if args.seed is not None and args.seed < 0:
        raise CosynthError(f"--seed must be >= 0, got {args.seed}")
    ctx = init_distributed(args.device)
    try:
        earlier = read_recipe(args.out)
        # A rerun without --sampler continues the folder's run with its own sampler, steps, eta and
        # spacing.
        if args.sampler is None and earlier:
            args.sampler = str(earlier["sampler"])
            args.steps = earlier.get("steps") if args.steps is None else args.steps
            args.eta = earlier.get("eta") if getattr(args, "eta", None) is None else args.eta
            args.spacing = recorded_spacing(earlier) if args.spacing is None else args.spacing
        # The thread rule of `cosynth generate` and the widget: the same seed gives the same pair.
        use_generation_threads(ctx.device)
        pipe, shape = load_pipeline(args, ctx.device)
        base_seed = args.seed
        if base_seed is None:
            base_seed = int(earlier["base_seed"]) if earlier else new_seed()
        # Every rank must use rank 0's seed, drawn at random or not.
        base_seed = broadcast_int(base_seed, ctx)
        source = open_source(args.layouts, args.format, card=pipe.card, shape=shape)
        run = generate_dataset(
            pipe, source, args.out, args.n, shape=shape, base_seed=base_seed, exports=exports,
            batch=args.batch, prompt=args.prompt, tissue=args.tissue, ctx=ctx,
        )
        desc = f"rank {ctx.rank}/{ctx.world_size}" if ctx.distributed else "pairs"
        summary = drive_with_progress(run, desc, quiet=args.quiet or not ctx.is_main, unit="pair")
    finally:
        shutdown(ctx)
    if ctx.is_main:
        print_result(summary, args.json)
    return 0
