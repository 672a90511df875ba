"""How to sample: one checked settings object instead of a handful of keyword arguments per call.

The CLI builds it from its flags (:meth:`SamplerSettings.from_args`, errors naming the flag), the
widget from its controls, bulk generation and the evaluations from their plans; the pipeline records
it in every pair's provenance (:meth:`SamplerSettings.provenance`). Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ...errors import CosynthError
from ..diffusion.sampler_names import DEFAULT_SAMPLER, check_sampler, default_spacing, default_steps

CLI_FLAGS = {"sampler": "--sampler", "steps": "--steps", "eta": "--eta", "guidance": "--guidance",
             "resample": "--resample", "spacing": "--spacing"}


@dataclass(frozen=True)
class SamplerSettings:
    """A checked sampler choice.

    Attributes
    ----------
    sampler : str
        One of :data:`~napari_cosynth.engine.diffusion.sampler_names.SAMPLERS` (default UniPC).
    steps : int or None
        Sampler steps; None = the sampler's default (20; 50 for ``"fast"``; all T for the reference).
    guidance : float
        Classifier-free guidance scale on the prompt (1 = off; CoSyn uses 2).
    eta : float or None
        DDIM's noise scale in [0, 1] (``"ddim"``/``"fast"`` only).
    resample : int
        RePaint's resampling jumps in re-synthesis (1 = none); see ``engine/diffusion/repaint.py``.
    spacing : str or None
        How the steps are spread over the timesteps (``"quadratic"`` or ``"trailing"``); None = the
        sampler's default (quadratic for UniPC, trailing for the others).
    """

    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    guidance: float = 2.0
    eta: float | None = None
    resample: int = 1
    spacing: str | None = None

    def __post_init__(self):
        _check(asdict(self))

    @classmethod
    def from_args(cls, args) -> SamplerSettings:
        """From parsed CLI arguments (``--sampler``, ``--steps``, ``--eta``, ``--guidance``, ``--resample``,
        ``--spacing``).

        A bad value is refused in one line naming its flag ("--steps must be ...").
        """
        given = {k: getattr(args, k) for k in _DEFAULTS if getattr(args, k, None) is not None}
        _check({**_DEFAULTS, **given}, CLI_FLAGS)
        return cls(**given)

    def with_(self, **changes) -> SamplerSettings:
        return replace(self, **changes)

    def resolved_steps(self, timesteps: int) -> int:
        """The number of steps this run takes with a model of ``timesteps`` training steps."""
        if self.sampler == "reference":
            return int(timesteps)
        return default_steps(self.sampler) if self.steps is None else int(self.steps)

    def resolved_spacing(self) -> str | None:
        """The timestep spacing this run uses (None for the reference, which takes every timestep)."""
        if self.sampler == "reference":
            return None
        return self.spacing or default_spacing(self.sampler)

    def provenance(self, timesteps: int) -> dict:
        """What a pair records of how it was sampled (pairs drawn before the spacing was a setting
        record none: theirs was ``"trailing"``)."""
        record = {"sampler": self.sampler, "steps": self.resolved_steps(timesteps),
                  "guidance": float(self.guidance)}
        spacing = self.resolved_spacing()
        if spacing is not None:
            record["spacing"] = spacing
        if self.eta is not None:
            record["eta"] = float(self.eta)
        if self.resample != 1:
            record["resample"] = int(self.resample)
        return record


_DEFAULTS = {"sampler": DEFAULT_SAMPLER, "steps": None, "guidance": 2.0, "eta": None, "resample": 1,
             "spacing": None}


def _check(values: dict, flags: dict | None = None) -> None:
    """One-line CosynthError for a bad value, named as ``flags`` calls it (the argument name otherwise)."""
    check_sampler(values["sampler"], values["steps"], values["eta"], values["guidance"], values["spacing"],
                  flags=flags)
    resample = values["resample"]
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        name = (flags or {}).get("resample", "resample")
        raise CosynthError(f"{name} must be a whole number >= 1 (1 = no jumps), got {resample!r}")
