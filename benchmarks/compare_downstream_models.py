"""Set a new model's synthetic arm beside real-only and an older model's synthetic arm, seed by seed.

    python benchmarks/compare_downstream_models.py --rescored benchmarks/results-norm-recalibration.json \
        --fraction 0.1 --real runs/ds/b1200 --old runs/ds/b1200-r5 --new runs/ds/s15k-0.1

Real-only is read from the re-scored (BatchNorm-recalibrated) runs of
``benchmarks/norm_recalibration.py``; the new arm from its downstream folder's finished runs
(``read_experiment``; trained with ``norm_recalibration`` on); the older arm from either, so that a
second draw of pairs of both models (``--synthetic-seed 1``, both run end to end) compares the same
way. The arms become run results of one experiment (arms ``real``, ``old``, ``new``) and go through
the downstream report's own ``summarise`` and ``paired_deltas``.
Prints JSON: per-seed scores, each arm's mean and sd, the paired differences (new minus real, new
minus old) and in how many seeds the new arm was higher.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_cosynth.evaluate.downstream_report import METRICS, paired_deltas, read_experiment, summarise


def _rescored(runs, folder, fraction, arm) -> dict:
    return {r["seed"]: r["recalibrated"] for r in runs
            if r["folder"] == folder and r["fraction"] == fraction and r["arm"] == arm}


def _synthetic(folder, fraction) -> dict:
    _, results = read_experiment(folder)
    return {r["seed"]: r["scores"] for r in results if r["fraction"] == fraction and r["arm"] == "synthetic"}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rescored", required=True)
    ap.add_argument("--fraction", type=float, required=True)
    ap.add_argument("--real", required=True, help="folder of the real-only runs in --rescored")
    ap.add_argument("--old", required=True,
                    help="the older model's synthetic runs: a folder named in --rescored, else a downstream "
                         "folder read from its finished runs (e.g. another draw of pairs)")
    ap.add_argument("--new", required=True, help="downstream folder of the new model's synthetic runs")
    args = ap.parse_args(argv)
    rescored = json.loads(Path(args.rescored).read_text())["runs"]
    new = _synthetic(args.new, args.fraction)
    arms = {"real": _rescored(rescored, args.real, args.fraction, "real"),
            # Re-scored runs win over the folder's own results, which hold the scores before
            # re-scoring; a folder not in --rescored (a later draw) is read from its results.
            "old": (_rescored(rescored, args.old, args.fraction, "synthetic")
                    or _synthetic(args.old, args.fraction)),
            "new": new}
    # Only the seeds the new arm ran, so that every comparison is paired.
    results = [{"fraction": args.fraction, "arm": arm, "seed": seed, "scores": scores}
               for arm, seeds in arms.items() for seed, scores in seeds.items() if seed in new]
    higher = {base: {m: sum(new[s][m] > arms[base][s][m] for s in new if s in arms[base]) for m in METRICS}
              for base in ("real", "old")}
    return {
        "fraction": args.fraction,
        "folders": {"real": args.real, "old": args.old, "new": args.new},
        "runs": results,
        "summary": summarise(results),
        "new_minus_real": paired_deltas([r for r in results if r["arm"] != "old"], baseline="real"),
        "new_minus_old": paired_deltas([r for r in results if r["arm"] != "real"], baseline="old"),
        "new_higher_than": higher,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
