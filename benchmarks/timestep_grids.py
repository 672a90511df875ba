"""Which timesteps should a 20-step sampler visit? An experiment over grids the library does not offer.

``--spacing quadratic|trailing`` covers the two grids the library keeps
(:meth:`napari_cosynth.engine.diffusion.schedule.NoiseSchedule.sampling_timesteps`). The others of
docs/benchmarks.md, "Timestep spacing", come from here: ``label_prior.py --tau 0`` (the model as it
is) with the sampler's grid replaced by ``--grid``:

- ``plus0``: the trailing grid of ``steps - 1`` steps, then t = 0;
- ``linspace``: evenly spaced from T - 1 to 0;
- ``powQ[:END]``: ``t_i = END + (T - 1 - END) ((steps - 1 - i) / (steps - 1))^Q`` (END 0 by default);
  ``pow2:49`` is the library's ``quadratic`` for 20 steps of 1000.

    OMP_NUM_THREADS=1 python benchmarks/timestep_grids.py --grid pow2:24 --steps 20 \\
        --model runs/other-focus/checkpoints/step-0015000 --data ../shared/data/consep/train --limit 48 \\
        --out runs/bench-prior/grid-pow2:24-20-train

Every other option is ``label_prior.py``'s. Prints its JSON. The pairs' provenance names the spacing
the sampler settings resolve to, not the grid patched in here: keep the folder name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def grid(name: str, T: int, steps: int, trailing) -> list[int]:
    """The timesteps of grid ``name`` (see the module docstring), high to low, distinct;
    ``trailing(steps)`` is the library's trailing grid."""
    if name == "plus0":
        ts = [*trailing(steps - 1), 0]
    elif name == "linspace":
        ts = [int(v) for v in np.round(np.linspace(T - 1, 0, steps))]
    elif name.startswith("pow"):
        power, _, end = name[3:].partition(":")
        end, q = int(end or 0), float(power)
        ts = [round(end + (T - 1 - end) * ((steps - 1 - i) / (steps - 1)) ** q) for i in range(steps)]
    else:
        raise SystemExit(f"unknown grid {name!r}: plus0, linspace or powQ[:END]")
    if len(set(ts)) != steps:
        raise SystemExit(f"grid {name!r} repeats a timestep for {steps} steps: {ts}")
    return ts


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--grid" not in argv:
        raise SystemExit("give --grid plus0 | linspace | powQ[:END] (the rest are label_prior.py's options)")
    i = argv.index("--grid")
    name = argv[i + 1]
    del argv[i:i + 2]

    from napari_cosynth.engine.diffusion import schedule

    library = schedule.NoiseSchedule.sampling_timesteps

    def sampling_timesteps(self, steps, spacing="trailing"):
        return grid(name, self.timesteps, steps, lambda n: library(self, n, "trailing"))

    schedule.NoiseSchedule.sampling_timesteps = sampling_timesteps
    import label_prior

    return label_prior.main(argv)


if __name__ == "__main__":
    sys.exit(main())
