"""Reverse steps of the Gaussian maps (image and distance) on a given timestep grid.

The labels' categorical skip posterior needs the exact pair (t, s) of every step, so every solver here
runs on the grid the sampler hands it (t_1 > ... > t_S, then s = -1, the data) rather than on one it
makes itself:

- DDIM is :meth:`.schedule.NoiseSchedule.ddim_step` (see there why it is written out).
- DPM-Solver++ 2M, its SDE variant and UniPC are diffusers' ``DPMSolverMultistepScheduler`` and
  ``UniPCMultistepScheduler``, built on the model's own betas (``trained_betas`` from the
  :class:`.schedule.NoiseSchedule`, so their alpha-bar is ours) and prediction type, and moved onto our
  grid by overwriting their ``timesteps`` and ``sigmas`` after ``set_timesteps`` (UniPC takes no
  custom timesteps; one path for both). Their last step goes to sigma 0, the data, like ours.
  The predicted x0 is clipped to [-1, 1] as DDIM does (diffusers' thresholding with
  ``sample_max_value=1`` is a plain clip).
"""

from __future__ import annotations

import numpy as np
import torch

from .schedule import PREDICTIONS, NoiseSchedule, draw_normal


class DDIMSolver:
    """Generalised DDIM step; ``eta`` = 0 deterministic, 1 with consecutive timesteps = DDPM."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        self.schedule = schedule
        self.eta = float(eta)

    def step(self, x_t, prediction, t: int, s: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        noise = draw_normal(x_t.shape, generator, x_t.device) if self.eta > 0 and s >= 0 else None
        return self.schedule.ddim_step(x_t, prediction, t, s, eta=self.eta, noise=noise)


class MultistepSolver:
    """A diffusers multistep scheduler driven on our timestep grid, one model call per step."""

    def __init__(self, scheduler, schedule: NoiseSchedule, timesteps: list[int], stochastic: bool = False):
        self.schedule = schedule
        self.stochastic = stochastic
        scheduler.set_timesteps(len(timesteps))
        abar = schedule.alphas_cumprod.double().numpy()[np.asarray(timesteps)]
        sigmas = np.sqrt((1.0 - abar) / abar)
        scheduler.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
        scheduler.timesteps = torch.as_tensor(timesteps, dtype=torch.int64)
        self.scheduler = scheduler
        self._grid = list(timesteps)
        self._i = 0

    def step(self, x_t, prediction, t: int, s: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        expected_s = self._grid[self._i + 1] if self._i + 1 < len(self._grid) else -1
        if self._i >= len(self._grid) or (t, s) != (self._grid[self._i], expected_s):
            raise ValueError(f"step {self._i}: solver asked for ({t}, {s}) off its grid")
        self._i += 1
        x0 = self.schedule.x0_from(x_t, prediction, t).clamp(-1.0, 1.0)
        extra = {"generator": generator} if self.stochastic else {}
        x_s = self.scheduler.step(prediction, t, x_t, **extra).prev_sample
        return x_s, x0


def _common(schedule: NoiseSchedule) -> dict:
    return {
        "num_train_timesteps": schedule.timesteps,
        "trained_betas": schedule.ddpm.betas.numpy(),
        "prediction_type": PREDICTIONS[schedule.prediction],
        "thresholding": True,
        "sample_max_value": 1.0,
        "solver_order": 2,
        "final_sigmas_type": "zero",
    }


def make_solver(name: str, schedule: NoiseSchedule, timesteps: list[int], eta: float | None = None):
    """The solver called ``name`` (see :mod:`.sampler_names`) for one sampling run on ``timesteps``."""
    if name in ("ddim", "fast"):
        return DDIMSolver(schedule, 0.0 if eta is None else eta)
    if name == "reference":
        return DDIMSolver(schedule, 1.0)
    if name in ("dpm++2m", "dpm++2m-sde"):
        from diffusers import DPMSolverMultistepScheduler

        algorithm = "dpmsolver++" if name == "dpm++2m" else "sde-dpmsolver++"
        scheduler = DPMSolverMultistepScheduler(algorithm_type=algorithm, solver_type="midpoint",
                                                **_common(schedule))
        return MultistepSolver(scheduler, schedule, timesteps, stochastic=name == "dpm++2m-sde")
    if name == "unipc":
        from diffusers import UniPCMultistepScheduler

        scheduler = UniPCMultistepScheduler(predict_x0=True, solver_type="bh2", **_common(schedule))
        return MultistepSolver(scheduler, schedule, timesteps)
    raise ValueError(f"no solver called {name!r}")
