"""Set a new model's synthetic arm beside real-only and an older model's synthetic arm, seed by seed.

    python benchmarks/compare_downstream_models.py --rescored benchmarks/results-norm-recalibration.json \
        --fraction 0.1 --real runs/ds/b1200 --old runs/ds/b1200-r5 --new runs/ds/s15k-0.1

Real-only and the older arm are read from the re-scored (BatchNorm-recalibrated) runs of
``benchmarks/norm_recalibration.py``; the new arm from its downstream folder's ``report.json`` (trained
with ``norm_recalibration`` on). Prints JSON: each arm's per-seed scores, mean and sd, and the paired
differences (new minus real, new minus old) with how many seeds were higher.
"""

from __future__ import annotations

import argparse
import json
import statistics as st
from pathlib import Path

METRICS = ("dice", "aji", "pq", "f_d", "acc")


def _rescored(path, folder, fraction, arm):
    runs = json.loads(Path(path).read_text())["runs"]
    return {r["seed"]: r["recalibrated"] for r in runs
            if r["folder"] == folder and r["fraction"] == fraction and r["arm"] == arm}


def _report(folder, fraction):
    runs = json.loads((Path(folder) / "report.json").read_text())["runs"]
    return {r["seed"]: {m: r[m] for m in METRICS} for r in runs
            if r["fraction"] == fraction and r["arm"] == "synthetic"}


def _summary(scores):
    out = {}
    for m in METRICS:
        v = [s[m] for s in scores.values()]
        out[m] = {"mean": st.mean(v), "sd": st.stdev(v) if len(v) > 1 else None}
    return out


def _paired(a, b):
    seeds = sorted(set(a) & set(b))
    out = {"seeds": seeds}
    for m in METRICS:
        d = [a[s][m] - b[s][m] for s in seeds]
        out[m] = {"mean": st.mean(d), "sd": st.stdev(d) if len(d) > 1 else None,
                  "higher": sum(x > 0 for x in d)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rescored", required=True)
    ap.add_argument("--fraction", type=float, required=True)
    ap.add_argument("--real", required=True, help="folder of the real-only runs in --rescored")
    ap.add_argument("--old", required=True, help="folder of the older model's synthetic runs in --rescored")
    ap.add_argument("--new", required=True, help="downstream folder of the new model's synthetic runs")
    args = ap.parse_args(argv)
    new = _report(args.new, args.fraction)
    real = {s: v for s, v in _rescored(args.rescored, args.real, args.fraction, "real").items() if s in new}
    old = {s: v for s, v in _rescored(args.rescored, args.old, args.fraction, "synthetic").items() if s in new}
    return {
        "fraction": args.fraction,
        "arms": {"real": {"folder": args.real, "seeds": real, "summary": _summary(real)},
                 "old": {"folder": args.old, "seeds": old, "summary": _summary(old)},
                 "new": {"folder": args.new, "seeds": new, "summary": _summary(new)}},
        "new_minus_real": _paired(new, real),
        "new_minus_old": _paired(new, old),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
