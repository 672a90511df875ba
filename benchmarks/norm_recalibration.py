"""Re-score finished downstream runs with their BatchNorm statistics re-estimated on real crops.

A run of ``cosynth evaluate downstream`` ends with the weights of its last step. A segmenter trained
with ``norm_recalibration: N`` ends with the very same weights and only its BatchNorm statistics
re-estimated (``napari_cosynth.segmenter.train.recalibrate_norm``, after the last step, from a
generator of its own). So applying that function to a finished run's final checkpoint gives exactly
the segmenter the run would have ended with under the setting, without training it again. This
script does that for every finished run of the folders given and scores both versions on the
experiment's test split:

    OMP_NUM_THREADS=1 python benchmarks/norm_recalibration.py runs/ds/b1200 runs/ds/b1200-r5 \
        --batches 50 > benchmarks/results-norm-recalibration.json

Prints JSON: per run (fraction, arm, seed, folder) the test scores without and with recalibration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCORES = ("dice", "aji", "pq", "f_d", "acc", "fp", "fn")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="downstream experiment folders (cosynth evaluate downstream --out)")
    ap.add_argument("--batches", type=int, default=50, help="norm_recalibration: batches of real crops")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from napari_cosynth.data.registry import open_dataset
    from napari_cosynth.segmenter import load_segmenter, predict_samples, score_predictions
    from napari_cosynth.segmenter.data import load_pool
    from napari_cosynth.segmenter.train import recalibrate_norm

    torch.set_num_threads(args.threads)
    tests, rows = {}, []
    for folder in map(Path, args.folders):
        for result_path in sorted(folder.glob("fraction-*/*-seed-*/result.json")):
            result = json.loads(result_path.read_text())
            run = json.loads((result_path.parent / "run.json").read_text())
            plan = json.loads((folder / "plan.json").read_text())
            model, meta = load_segmenter(folder / result["checkpoint"])
            mag = float(meta["magnification"])
            key = (plan["test"], plan["test_format"], mag)
            if key not in tests:
                tests[key] = list(open_dataset(plan["test"], plan["test_format"], magnification=mag))

            def score(net, _meta=meta, _test=tests[key], _mag=mag):
                pairs = list(predict_samples(net, _meta, _test))
                s = score_predictions([t for t, _ in pairs], [p for _, p in pairs], _mag)
                return {k: round(float(s[k]), 4) for k in SCORES}

            before = score(model)
            real = load_pool(run["data"]["path"], run["data"]["format"], mag, run["data"].get("samples"))
            recalibrate_norm(model, real, meta["config"].with_(norm_recalibration=args.batches), "cpu")
            model.eval()
            rows.append({"folder": str(folder), "fraction": result["fraction"], "arm": result["arm"],
                         "seed": result["seed"], "extra_ratio": run["config"].get("extra_ratio"),
                         "before": before, "recalibrated": score(model)})
            print(json.dumps(rows[-1]), flush=True, file=sys.stderr)
    return {"batches": args.batches, "runs": rows}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
