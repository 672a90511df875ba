"""The flags several ``cosynth`` subcommands share, each defined once, as argparse parent parsers.

``--model``, the sampling flags, ``--device``, ``--out``, ``--quiet`` and ``--json`` mean the same in
every subcommand that takes them, so their type, default and help are written here once and a
subcommand takes them with ``subparsers.add_parser(name, parents=[model_flag(), device_flag()])``.
Each function builds a new parent parser: argparse hands the parent's action objects to the child,
so one parent shared by several subcommands would let a change to one (``set_defaults``) leak into
the others.

Where a flag's default differs between subcommands on purpose (``--sampler`` of a resumable bulk run,
of the downstream experiment), the test ``tests/test_cli_flags.py`` names the exception and why.

Torch-free: ``cosynth --help`` builds every parser.
"""

from __future__ import annotations

import argparse

from ..engine.diffusion.sampler_names import (
    DEFAULT_SAMPLER,
    DEFAULT_SOLVER_STEPS,
    LEGACY_FAST_STEPS,
    SAMPLERS,
    SOLVERS,
    SPACINGS,
)
from ..engine.pipeline.settings import SamplerSettings

DEFAULT_MODEL = "default"
DEFAULT_GUIDANCE = SamplerSettings.guidance  # CoSyn's classifier-free guidance scale, as the pipeline's
DEFAULT_DEVICE = "auto"

MODEL_HELP = ("'default' (the bundled model), a checkpoint folder, or a training run folder (its "
              "newest checkpoint)")
DEVICE_HELP = ("auto (a CUDA GPU if torch sees one, else Apple's MPS, else the CPU), cuda, cuda:N, mps "
               "or cpu")
TORCHRUN_DEVICE_HELP = "; under torchrun each process takes the GPU of its local rank"


SAMPLING_GROUP = "model and sampling"
COMMON_GROUP = "common options"


def _parent(title: str) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
    """A parent parser and its titled group: ``--help`` lists a command's own options first, then
    the shared ones under these titles (argparse merges the groups of one title)."""
    parent = argparse.ArgumentParser(add_help=False)
    return parent, parent.add_argument_group(title)


def model_flag(help: str = MODEL_HELP) -> argparse.ArgumentParser:
    """``--model``: the joint diffusion model to load (default: the bundled one)."""
    parent, p = _parent(SAMPLING_GROUP)
    p.add_argument("--model", default=DEFAULT_MODEL, help=help)
    return parent


def sampling_flags(*, eta: bool = False, default: str | None = DEFAULT_SAMPLER,
                   default_help: str | None = None) -> argparse.ArgumentParser:
    """``--sampler``, ``--steps``, ``--guidance``, and ``--eta`` where the command passes it on.

    ``default`` is the sampler when ``--sampler`` is not given, and ``default_help`` what the help
    says of it when that is more than its name (None for a bulk run that continues its folder's).
    """
    parent, p = _parent(SAMPLING_GROUP)
    p.add_argument("--sampler", choices=SAMPLERS, default=default,
                   help=f"{', '.join(SOLVERS)}: fast solvers; 'fast' = ddim with {LEGACY_FAST_STEPS} steps "
                        f"(earlier versions' sampler); 'reference' = CoSyn's 1000-step ancestral sampler "
                        f"(default: {default_help or default})")
    p.add_argument("--steps", type=int, default=None,
                   help=f"sampler steps (default {DEFAULT_SOLVER_STEPS}; {LEGACY_FAST_STEPS} for 'fast'; "
                        "the reference takes all 1000)")
    if eta:
        p.add_argument("--eta", type=float, default=None,
                       help="ddim only: noise scale in [0, 1] (0 = deterministic, the default)")
    p.add_argument("--spacing", choices=SPACINGS, default=None,
                   help="how the steps are spread over the timesteps: 'quadratic' (small steps at low "
                        "noise) or 'trailing' (even); default quadratic for unipc, trailing for the others")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                   help=f"classifier-free guidance scale (1 = off; default {DEFAULT_GUIDANCE:g})")
    return parent


def device_flag(*, torchrun: bool = False) -> argparse.ArgumentParser:
    """``--device`` (default auto); ``torchrun``: the command also runs one process per GPU."""
    parent, p = _parent(COMMON_GROUP)
    p.add_argument("--device", default=DEFAULT_DEVICE,
                   help=DEVICE_HELP + (TORCHRUN_DEVICE_HELP if torchrun else ""))
    return parent


def output_flag(help: str, *, required: bool = True, default: str | None = None) -> argparse.ArgumentParser:
    """``--out``: where the command writes; ``help`` says what it writes there."""
    parent, p = _parent(COMMON_GROUP)
    p.add_argument("--out", required=required, default=default, help=help)
    return parent


def quiet_flag(help: str = "no progress bar") -> argparse.ArgumentParser:
    """``--quiet``: no progress bar (and, where ``help`` says so, less printing)."""
    parent, p = _parent(COMMON_GROUP)
    p.add_argument("--quiet", action="store_true", help=help)
    return parent


def json_flag(help: str = "print JSON") -> argparse.ArgumentParser:
    """``--json``: print the result as JSON instead of a table."""
    parent, p = _parent(COMMON_GROUP)
    p.add_argument("--json", action="store_true", help=help)
    return parent
