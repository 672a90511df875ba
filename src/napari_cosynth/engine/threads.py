"""How many CPU threads torch uses for generation: one, unless the user says otherwise.

Measured on the 2-core development VM (docs/benchmarks.md, "Threads"): with one core busy, torch's
default of one thread per core makes a pair several times slower than one thread (its threads wait
on each other while the busy core is taken), while on a quiet machine two threads gain less than the
difference. A thread count picked from the load at run time would also change the pairs: float sums
split over other thread counts round differently, and the same seed must give the same pair. So the
count is fixed: one thread, or ``COSYNTH_THREADS``, or the ``OMP_NUM_THREADS`` a user set.
"""

from __future__ import annotations

import os

from ..errors import CosynthError

ENV = "COSYNTH_THREADS"


def generation_threads() -> int | None:
    """The thread count to use: ``COSYNTH_THREADS``, else None when ``OMP_NUM_THREADS`` is set
    (torch already follows it), else 1."""
    value = os.environ.get(ENV)
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise CosynthError(f"{ENV}={value!r}: must be a whole number of threads >= 1")
        return n
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return 1


def use_generation_threads(device=None) -> int:
    """Set torch's intra-op threads for generating on ``device`` (CPU only); return the count in use."""
    import torch

    n = generation_threads()
    if n is not None and (device is None or str(device).split(":")[0] == "cpu"):
        torch.set_num_threads(n)
    return torch.get_num_threads()
