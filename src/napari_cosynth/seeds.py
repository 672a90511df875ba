"""The one seed rule: which seed pair ``i`` of a request with base seed ``s`` is drawn with.

Every command draws pair ``i`` from its own random stream seeded with ``pair_seed(s, i)``:
``cosynth generate --seed s --n 3``, ``cosynth generate-dataset --seed s`` (whatever its batch size and
number of processes), the evaluation commands and ``CoSynthPipeline(..., seed=s, n=3)``. So the same
base seed, layout, prompt and settings give the same pair whichever command draws it, and a pair can be
drawn again alone from the seed its provenance records (``pair_seed(seed, 0) == seed``).

Pair 0 keeps the base seed itself (so a single pair's recorded seed is the one the user typed); the
others hash (base, i) with numpy's SeedSequence, so neighbouring indices get unrelated streams (with
``base + i``, run A's pair 1 would be run B's pair 0 when B's base seed is A's plus one).

No torch here.
"""

from __future__ import annotations

import os

import numpy as np

from .limits import MAX_SEED, check_seed


def pair_seed(base_seed: int, index: int) -> int:
    """The seed pair ``index`` is drawn with under ``base_seed`` (63 bits: torch, numpy and JSON take it)."""
    base_seed = check_seed(base_seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"a pair index is a whole number >= 0, got {index!r}")
    if index == 0:
        return base_seed
    state = np.random.SeedSequence([base_seed, int(index)]).generate_state(2, np.uint32)
    return ((int(state[0]) << 31) ^ int(state[1])) & MAX_SEED


def new_seed() -> int:
    """A fresh random base seed (when the user gives none); recorded in every pair's provenance."""
    return int.from_bytes(os.urandom(8), "little") & MAX_SEED
