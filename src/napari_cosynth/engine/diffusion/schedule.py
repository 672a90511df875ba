"""The noise schedule shared by the Gaussian (image, distance) and categorical (label) diffusions.

CoSyn uses one cosine alpha-bar for all three maps. We take it from diffusers' ``DDPMScheduler``
(``beta_schedule="squaredcos_cap_v2"``, Nichol & Dhariwal 2021) so the numbers are those of a
maintained scheduler, and the forward process of the Gaussian part is that scheduler's ``add_noise``.

The reverse Gaussian step is written out here instead of calling ``DDIMScheduler.step``: diffusers
derives the previous timestep as ``t - T // steps``, which is not the next timestep of its own
"trailing" or "linspace" spacing when ``steps`` does not divide ``T`` (huggingface/diffusers issues
#9261, #12633), while the categorical skip posterior and fixed-map replacement need the exact pair
(t, s). The formula is DDIM's generalised step (Song et al. 2021, eq. 12) on the same
``alphas_cumprod``; with ``eta = 1`` and ``s = t - 1`` it is the DDPM ancestral step with the
posterior variance (Ho et al. 2020). The tests check it against ``DDIMScheduler.step`` and
``DDPMScheduler.step`` to float tolerance. The maths is written up in docs/engine-diffusion.md.
"""

from __future__ import annotations

import torch

from ...errors import ConfigError, CosynthError
from ..heavy_imports import collector_paused
from .sampler_names import SPACINGS

with collector_paused():  # diffusers pulls in torch._dynamo and some 3,000 modules (see heavy_imports)
    from diffusers import DDPMScheduler


def draw_normal(shape, generator, device) -> torch.Tensor:
    """Standard normal noise drawn from ``generator`` on its own device, then moved to ``device``.

    Drawing on the generator's device keeps a seed's stream the same whichever device the model is on.
    ``generator`` may be a list with one generator per row of the batch (``shape[0]`` of them): row i is
    then drawn from generator i alone, so a pair's noise does not depend on the batch it is drawn in.
    """
    return _draw(torch.randn, shape, generator, device)


def draw_uniform(shape, generator, device) -> torch.Tensor:
    """Uniform [0, 1) noise drawn like :func:`draw_normal` (one generator, or one per row)."""
    return _draw(torch.rand, shape, generator, device)


def _draw(fn, shape, generator, device) -> torch.Tensor:
    if generator is None:
        return fn(shape, device=device)
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.cat([fn((1, *shape[1:]), generator=g, device=g.device).to(device) for g in generator])
    return fn(shape, generator=generator, device=generator.device).to(device)


# Names a config may use -> diffusers' beta_schedule names.
SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}
# Names a config may use -> diffusers' prediction_type names.
PREDICTIONS = {"epsilon": "epsilon", "v": "v_prediction"}


class NoiseSchedule:
    """Alpha-bar over ``timesteps`` training steps, indexed by t in 0..T-1, plus s = -1 for clean data.

    Parameters
    ----------
    timesteps : int
        Number of training timesteps T (CoSyn: 1000).
    schedule : str
        ``"cosine"`` (CoSyn's) or ``"linear"`` (Ho et al.'s, for comparison).
    prediction : str
        What the Gaussian heads predict: ``"epsilon"`` (the noise, CoSyn's) or ``"v"``
        (``sqrt(abar) eps - sqrt(1 - abar) x0``).

    Attributes
    ----------
    alphas_cumprod : torch.Tensor
        float32 (T,), exactly diffusers' ``DDPMScheduler.alphas_cumprod``.
    """

    def __init__(self, timesteps: int = 1000, schedule: str = "cosine", prediction: str = "epsilon"):
        if prediction not in PREDICTIONS:
            raise ConfigError(
                f"diffusion.prediction: unknown {prediction!r}; choose one of {', '.join(PREDICTIONS)}"
            )
        if schedule not in SCHEDULES:
            raise ConfigError(
                f"diffusion.schedule: unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if not isinstance(timesteps, int) or timesteps < 2:
            raise ConfigError(f"diffusion.timesteps: must be an integer >= 2, got {timesteps!r}")
        self.timesteps = timesteps
        self.schedule = schedule
        self.prediction = prediction
        self.ddpm = DDPMScheduler(
            num_train_timesteps=timesteps,
            beta_schedule=SCHEDULES[schedule],
            prediction_type=PREDICTIONS[prediction],
        )
        self.alphas_cumprod = self.ddpm.alphas_cumprod.clone()
        # Index t + 1, so that s = -1 (the data itself, alpha-bar 1) needs no special case.
        self._abar_ext = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod.double()])
        self._abar_on: dict[torch.device, torch.Tensor] = {}

    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """Alpha-bar at integer timesteps ``t`` (any shape, values in -1..T-1) as float64."""
        t = torch.as_tensor(t, dtype=torch.long)
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= self.timesteps):
            raise ValueError(f"timesteps must lie in -1..{self.timesteps - 1}, got {t.tolist()}")
        if t.device not in self._abar_on:
            self._abar_on[t.device] = self._abar_ext.to(t.device)
        return self._abar_on[t.device][t + 1]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward Gaussian process q(x_t | x_0) at per-sample timesteps ``t`` (B,), via diffusers."""
        return self.ddpm.add_noise(x0, noise, t.to(x0.device))

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the Gaussian heads are trained to output for clean ``x0`` noised with ``noise`` at ``t``."""
        if self.prediction == "v":
            return self.ddpm.get_velocity(x0, noise, t.to(x0.device))
        return noise

    def x0_from(self, x_t: torch.Tensor, prediction: torch.Tensor, t: int) -> torch.Tensor:
        """The clean sample a head's ``prediction`` at timestep ``t`` implies (not clipped).

        From v it is a weighted sum, exact at every t; from epsilon it divides by sqrt(abar_t), which
        blows any error up at the noisiest steps (abar_{T-1} ~ 1e-9 for the cosine schedule).
        """
        abar = float(self._abar_ext[t + 1])
        if self.prediction == "v":
            # x_t = sqrt(abar) x0 + sqrt(1 - abar) eps and v = sqrt(abar) eps - sqrt(1 - abar) x0
            return abar**0.5 * x_t - (1.0 - abar) ** 0.5 * prediction
        return (x_t - (1.0 - abar) ** 0.5 * prediction) / abar**0.5

    def p2_weight(self, t: torch.Tensor, gamma: float, k: float = 1.0) -> torch.Tensor:
        """P2 loss weight (Choi et al. 2022): ``1 / (k + SNR(t)) ** gamma``, SNR = abar / (1 - abar).

        ``gamma = 0`` gives ones (no reweighting). Returned as float32 on ``t``'s device.
        """
        abar = self.abar(t)
        snr = abar / (1.0 - abar)
        return ((k + snr) ** (-float(gamma))).float()

    def sampling_timesteps(self, steps: int, spacing: str = "trailing") -> list[int]:
        """The ``steps`` timesteps a sampler visits, from high to low; the step after the last is s = -1.

        Both spacings start at T - 1, where alpha-bar is ~0, so starting from pure noise matches the
        forward process, and ``steps = T`` gives every timestep T-1..0 (the ancestral chain).

        - ``"trailing"`` (Lin et al. 2024, diffusers' ``timestep_spacing="trailing"``): evenly spaced,
          ``t_i = round(T (steps - i) / steps) - 1``, so the last model call is at t = T / steps - 1
          (49 of 1000 for 20 steps, where the noise's std is still 0.09 on data in [-1, 1]). Computed in
          integers because diffusers' float ``arange`` returns ``steps + 1`` values ending in -1 for
          some counts (61, 103, 121, ... of 1000).
        - ``"quadratic"`` (DDIM's "quad" skip, Song et al. 2021; DPM-Solver's "time_quadratic"): the
          same first and last timestep as "trailing", with the steps between spaced quadratically,
          ``t_i = t_end + (T - 1 - t_end) ((steps - 1 - i) / (steps - 1))^2``: fewer large steps at
          high noise, more small ones at low noise. Ending where "trailing" ends keeps its last,
          smoothing jump to the data (from t = 49 with 20 steps); ending lower left grain that the
          two-sample test saw (docs/benchmarks.md, "Timestep spacing"). The offset from ``t_end`` is
          rounded, then raised to at least ``steps - 1 - i`` so that the timesteps stay distinct
          for any count.
        """
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= self.timesteps:
            raise CosynthError(
                f"sampler steps must be an integer between 1 and {self.timesteps} (the model's training "
                f"timesteps), got {steps!r}"
            )
        T = self.timesteps
        if spacing == "trailing":
            # round-half-up of T * (steps - i) / steps, in integer arithmetic
            return [(2 * T * (steps - i) + steps) // (2 * steps) - 1 for i in range(steps)]
        if spacing != "quadratic":
            raise CosynthError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
        if steps == 1:
            return [T - 1]
        end = self.sampling_timesteps(steps, "trailing")[-1]
        return [end + max(round((T - 1 - end) * ((steps - 1 - i) / (steps - 1)) ** 2), steps - 1 - i)
                for i in range(steps)]

    def ddim_step(
        self,
        x_t: torch.Tensor,
        prediction: torch.Tensor,
        t: int,
        s: int,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse Gaussian step from timestep ``t`` to ``s < t`` (``s = -1``: to the data).

        Parameters
        ----------
        x_t : torch.Tensor
            Noisy sample at ``t``.
        prediction : torch.Tensor
            The model's output in this schedule's parameterisation (noise, or v).
        t, s : int
            Current and target timestep.
        eta : float
            0 = deterministic DDIM; 1 with ``s = t - 1`` = DDPM ancestral step (posterior variance).
        noise : torch.Tensor, optional
            Standard normal noise, required when the step's standard deviation is not zero.

        Returns
        -------
        (x_s, x0_hat) : tuple of torch.Tensor
            The sample at ``s`` and the predicted clean sample, clipped to [-1, 1].
        """
        if not -1 <= s < t < self.timesteps:
            raise ValueError(f"a reverse step needs -1 <= s < t < {self.timesteps}, got t={t}, s={s}")
        abar_t = float(self._abar_ext[t + 1])
        abar_s = float(self._abar_ext[s + 1])
        x0 = self.x0_from(x_t, prediction, t).clamp(-1.0, 1.0)
        # Noise direction recomputed from the clipped x0, so that x0 and eps stay consistent; this is
        # what makes eta = 1 coincide with the DDPM posterior mean (diffusers: use_clipped_model_output).
        eps = (x_t - abar_t**0.5 * x0) / (1.0 - abar_t) ** 0.5
        var = (1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s)
        sigma = eta * max(var, 0.0) ** 0.5
        x_s = abar_s**0.5 * x0 + max(1.0 - abar_s - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            if noise is None:
                raise ValueError("ddim_step with eta > 0 needs the noise tensor")
            x_s = x_s + sigma * noise
        return x_s, x0
