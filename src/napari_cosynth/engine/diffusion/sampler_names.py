"""The sampler names users choose from, their default steps, and the checks of sampler settings.

Torch-free, so the command line and the napari widget can list and check the choices without
importing the engine. The solvers themselves live in :mod:`.solvers`.

- ``"dpm++2m"``: DPM-Solver++ 2M (Lu et al. 2022), deterministic, multistep.
- ``"dpm++2m-sde"``: its stochastic variant (SDE-DPM-Solver++ 2M).
- ``"unipc"``: UniPC predictor-corrector (Zhao et al. 2023), order 2; the default, with 20 steps: on
  24 CoNSeP test layouts every figure lies in the 1000-step reference's 95% interval (its nuclei are
  somewhat larger), with fewer spurious nuclei than 50 DDIM steps (docs/benchmarks.md, "Samplers").
- ``"ddim"``: DDIM (Song et al. 2021); ``eta`` > 0 adds DDPM-like noise (0 = deterministic).
- ``"fast"``: DDIM with eta 0 and 50 steps by default, the fast sampler before solvers existed; kept so
  settings and pairs that name it draw exactly what they drew.
- ``"reference"``: CoSyn's ancestral sampler over all T timesteps (DDIM eta 1, one step at a time).

The few timesteps of a solver are spread "quadratic"ally (many small steps at low noise) for UniPC,
the default since it gave fewer spurious and merged nuclei at the same cost (docs/benchmarks.md,
"Timestep spacing"), and evenly ("trailing") for the others, as they were measured; any solver takes
either. See :meth:`.schedule.NoiseSchedule.sampling_timesteps`.
"""

from __future__ import annotations

import math

from ...errors import CosynthError

SOLVERS = ("dpm++2m", "dpm++2m-sde", "unipc", "ddim")
SAMPLERS = (*SOLVERS, "fast", "reference")
DEFAULT_SAMPLER = "unipc"
DEFAULT_SOLVER_STEPS = 20
LEGACY_FAST_STEPS = 50
# How a sampler's timesteps are spread over 0..T-1 (NoiseSchedule.sampling_timesteps).
SPACINGS = ("quadratic", "trailing")


def default_spacing(sampler: str) -> str:
    """The timestep spacing ``sampler`` uses when none is given (see the module docstring)."""
    return "quadratic" if sampler == "unipc" else "trailing"


def recorded_spacing(record: dict, key: str = "spacing") -> str | None:
    """The spacing a stored record (pair provenance, bulk recipe, downstream plan) of a run with
    ``record["sampler"]`` implies: its own ``record[key]``; none for the reference, which takes every
    timestep; else ``"trailing"``, the only spacing before the spacing was a setting and recorded."""
    if key in record or record.get("sampler") == "reference":
        return record.get(key)
    return "trailing"


def default_steps(sampler: str, timesteps: int = 1000) -> int:
    """The steps ``sampler`` takes when none are given (the reference: all ``timesteps``)."""
    if sampler == "reference":
        return timesteps
    return LEGACY_FAST_STEPS if sampler == "fast" else DEFAULT_SOLVER_STEPS


def check_sampler(sampler, steps=None, eta=None, guidance=None, spacing=None, *,
                  flags: dict | None = None) -> None:
    """Raise a one-line CosynthError for a bad sampler name, step count, eta, guidance or spacing.

    ``flags`` maps ``"sampler"``, ``"steps"``, ``"eta"``, ``"guidance"``, ``"spacing"`` to the names
    the caller's user knows (``{"steps": "--steps"}`` on the command line); the argument names otherwise.
    The upper bound of steps (the model's T) is checked where the model is known.
    """
    name = {"sampler": "sampler", "steps": "steps", "eta": "eta", "guidance": "guidance", "spacing": "spacing",
            **(flags or {})}
    if sampler not in SAMPLERS:
        raise CosynthError(
            f"{name['sampler']}: unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise CosynthError(f"{name['steps']} must be a whole number of steps >= 1, got {steps!r}")
    if eta is not None:
        if sampler not in ("ddim", "fast"):
            raise CosynthError(f"{name['eta']} applies to the ddim sampler only, not {sampler!r}")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise CosynthError(f"{name['eta']} must be a number in [0, 1] (0 = deterministic), got {eta!r}")
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                 or not math.isfinite(guidance) or guidance < 0):
        raise CosynthError(
            f"{name['guidance']} must be a finite number >= 0 (1 = off, CoSyn uses 2), got {guidance!r}")
    if spacing is not None:
        if sampler == "reference":
            raise CosynthError(f"{name['spacing']} does not apply to the reference sampler (it takes every timestep)")
        if spacing not in SPACINGS:
            raise CosynthError(f"{name['spacing']}: unknown timestep spacing {spacing!r}; choose one of "
                               f"{', '.join(SPACINGS)}")
