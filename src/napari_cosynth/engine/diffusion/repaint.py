"""RePaint's resampling jumps (Lugmayr et al., CVPR 2022) for fixed-map sampling.

Replacing the known maps after every step (:meth:`.sampler._Plan.replace_known`) puts them at the
right noise level, but the step that produced the other maps had not seen the replaced values yet,
so the two can disagree at the seams. RePaint's remedy: after the step t -> s, diffuse the whole
sample forward again from s to t, q(x_t | x_s), and take the step once more; repeated, the drawn maps
get several chances to agree with the known ones. Here with jump length one (step) of the sampler's
grid, ``resample`` times per step (RePaint's U; 1 = no jumps), not after the last step.

The forward jump is the exact one-interval transition of each diffusion: for the Gaussian maps
x_t = sqrt(a) x_s + sqrt(1 - a) z, for the labels Cat(a onehot(x_s) + (1 - a) / K), with
a = abar_t / abar_s. Hand-written: diffusers' RePaintScheduler is DDPM-only and knows no labels.
"""

from __future__ import annotations

import copy
import math

import torch

from .categorical import log_onehot, sample_categorical
from .schedule import NoiseSchedule, draw_normal


def jump_back(schedule: NoiseSchedule, n_classes: int, x_image, x_distance, x_labels, s: int, t: int,
              generator):
    """Draw (x_image, x_distance, x_labels) at timestep ``t`` from q(x_t | x_s), 0 <= s < t."""
    a = float(schedule.abar(torch.tensor(t)) / schedule.abar(torch.tensor(s)))
    device = x_labels.device

    def gaussian(x):
        return a**0.5 * x + (1.0 - a) ** 0.5 * draw_normal(x.shape, generator, device)

    log_p = torch.logaddexp(log_onehot(x_labels, n_classes) + math.log(a),
                            torch.tensor(math.log(max(1.0 - a, 1e-40)) - math.log(n_classes), device=device))
    return gaussian(x_image), gaussian(x_distance), sample_categorical(log_p, generator)


def solver_state(solver, schedule: NoiseSchedule):
    """A copy of a solver's history to take a step again from (the schedule is shared, not copied)."""
    return copy.deepcopy(solver, memo={id(schedule): schedule})
