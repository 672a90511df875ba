"""Seconds of the label toolkit's two hot functions, against the budgets the tests once asserted.

The tests check what these functions compute; how fast they run depends on the machine and on what
else it is doing, so the timing lives here. Prints one JSON object:

* ``distance_map`` on a 256 x 256 CoNSeP label patch (``train_10_000``, 68 nuclei) when the real data
  lies in ``--consep`` (else on 68 random discs of the same canvas): best of ``--repeat`` calls,
  budget 30 ms;
* ``instance_scores`` (Dice, AJI, PQ, ...) between a 256 x 256 map of about 110 random discs and the
  same map shifted by two rows: best of ``--repeat`` calls after one warm-up, budget 0.5 s.

Each entry says ``within_budget``; the exit status is 1 when any is over. Example (from the
repository root)::

    python benchmarks/label_speed.py --consep ../shared/data/consep
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from napari_cosynth.labels.distance import distance_map
from napari_cosynth.metrics.instance import instance_scores

BUDGETS = {"distance_map": 0.03, "instance_scores": 0.5}


def random_discs(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """Non-overlapping discs (radius 2-5) with ids 1..n in random order."""
    out = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k in rng.permutation(n) + 1:
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(2, 6)
        out[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (out == 0)] = k
    return out


def consep_patch(root: Path | None) -> tuple[np.ndarray, str]:
    path = root / "train" / "Labels" / "train_10_000.mat" if root is not None else None
    if path is not None and path.is_file():
        from scipy.io import loadmat

        return loadmat(str(path))["inst_map"].astype(np.int32), str(path)
    return random_discs(np.random.default_rng(0), (256, 256), 68), "68 random discs (no CoNSeP data)"


def best_of(repeat: int, fn, *args) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consep", type=Path, default=None, help="CoNSeP root (with train/Labels)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    instances, source = consep_patch(args.consep)
    true = random_discs(np.random.default_rng(3), (256, 256), 110)
    pred = np.roll(true, 2, axis=0)
    instance_scores(true, pred)  # warm-up (imports, allocator)
    seconds = {"distance_map": best_of(args.repeat, distance_map, instances),
               "instance_scores": best_of(args.repeat, instance_scores, true, pred)}
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "distance_map_input": source,
        **{name: {"seconds": round(s, 5), "budget_seconds": BUDGETS[name], "within_budget": s <= BUDGETS[name]}
           for name, s in seconds.items()},
    }
    print(json.dumps(result, indent=2))
    return 0 if all(s <= BUDGETS[name] for name, s in seconds.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
