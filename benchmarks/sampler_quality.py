"""Sampler candidates against the 1000-step reference: adherence figures with bootstrap CIs, and speed.

Two steps (docs/benchmarks.md, "Samplers"):

    # 1. one adherence run per candidate (the same layouts and seeds for all), timed per pair
    OMP_NUM_THREADS=1 python benchmarks/sampler_quality.py run --sampler dpm++2m --steps 20 \\
        --limit 32 --out runs/bench-sampler/dpm++2m-20
    # (the reference may come from `cosynth evaluate adherence --sampler reference --out DIR` as well;
    #  its seconds per pair are then read off the times its pairs were written)
    # speed on one layout, all candidates in one process, round-robin (the runs' own times depend on
    # what else the machine does while they run)
    OMP_NUM_THREADS=1 python benchmarks/sampler_quality.py speed fast:50 dpm++2m:20 ddim:20:0.5
    # 2. the table: every run against the reference, bootstrap over patches (paired: the same
    #    resampled patches for every run)
    python benchmarks/sampler_quality.py summary --reference runs/bench-sampler/reference \\
        runs/bench-sampler/*-20 --json-out benchmarks/results-samplers.json

A run folder is what ``adherence_report(out=...)`` writes (``pairs/`` with the input points of each
pair in its points.csv, ``report.json``) plus ``timing.json`` from step 1. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def cmd_run(args) -> int:
    import torch

    from napari_cosynth import SamplerSettings
    from napari_cosynth.evaluate.adherence import adherence_report

    torch.set_num_threads(args.threads)
    settings = SamplerSettings(args.sampler, args.steps, args.guidance, args.eta,
                               spacing=getattr(args, "spacing", None))
    run = adherence_report(args.model, args.data, args.format, settings=settings, seed=args.seed,
                           limit=args.limit, out=args.out, device="cpu")
    seconds, last = [], time.perf_counter()
    while True:
        try:
            next(run)
        except StopIteration as stop:
            report = stop.value
            break
        now = time.perf_counter()
        seconds.append(now - last)
        last = now
    timing = {"sampler": args.sampler, "steps": report["steps"], "eta": args.eta,
              "spacing": settings.resolved_spacing(), "threads": args.threads,
              "seconds": seconds, "note": "seconds[0] includes loading the model and data"}
    (Path(args.out) / "timing.json").write_text(json.dumps(timing, indent=1))
    print(json.dumps({"out": args.out, "f_d": report["detection"]["f_d"],
                      "median_s": float(np.median(seconds[1:] or seconds))}))
    return 0


def cmd_speed(args) -> int:
    """Seconds per 128 x 128 pair of every candidate, in one process, round-robin on one layout."""
    import torch

    from napari_cosynth import CoSynthPipeline, SamplerSettings
    from napari_cosynth.sample import PointTable

    torch.set_num_threads(args.threads)
    pipe = CoSynthPipeline.from_pretrained(args.model)
    points = PointTable([[20.0, 30.0], [60.0, 70.0], [100.0, 40.0], [90.0, 100.0], [30.0, 100.0]],
                        [1, 2, 3, 4, 2])
    candidates = [c.split(":") for c in args.candidates]  # sampler:steps[:eta]
    seconds = {c: [] for c in args.candidates}
    for r in range(args.repeats + 1):  # round 0 warms up
        for key, (sampler, steps, *eta) in zip(args.candidates, candidates):
            start = time.perf_counter()
            settings = SamplerSettings(sampler, int(steps), eta=float(eta[0]) if eta else None)
            pipe(points, size=(128, 128), settings=settings, seed=1)
            if r:
                seconds[key].append(round(time.perf_counter() - start, 3))
    print(json.dumps({"threads": args.threads, "seconds": seconds,
                      "median": {k: float(np.median(v)) for k, v in seconds.items()}}, indent=1))
    return 0


# ------------------------------------------------------------------------------------------ summary


def _load_run(folder: Path, recover: bool = True):
    """Per-patch pairing outcomes, nuclei pixel counts and seconds of one run folder.

    With ``recover`` the nuclei are recovered again from each pair's stored semantic and distance
    maps with one rule, the generated-map preset (``SeparationParams.for_generated``), so that runs
    made by different versions of the recovery (the extent rule of docs/labels.md arrived while these
    runs were under way) are compared on the sampler alone. A model's own settings (the bundled
    model's 5 px minimum marker) are not applied: score what the pairs hold with ``--recover stored``.
    """
    from napari_cosynth.data.folder import read_sample
    from napari_cosynth.labels.instances import SeparationParams, instances_from_maps, one_class_per_nucleus
    from napari_cosynth.labels.points import centroid_table
    from napari_cosynth.metrics.detection import pair_centroids, radius_for

    patches, vocabulary, radius = [], None, None
    for path in sorted(p for p in (folder / "pairs").iterdir() if p.is_dir()):
        pair = read_sample(path)
        vocabulary = pair.vocabulary
        # An adherence run still under way has no report.json yet: its pairs say what it is.
        radius = radius or radius_for(float(pair.magnification))
        report = {"sampler": pair.provenance["sampler"], "steps": pair.provenance["steps"]}
        instances, classes, semantic = pair.instances, pair.classes, pair.semantic
        if recover:
            params = SeparationParams.for_generated(float(pair.magnification))
            instances, classes = instances_from_maps(semantic, pair.distance, params)
            semantic = one_class_per_nucleus(instances, classes, semantic)[0]
        true, pred = pair.points, centroid_table(instances, classes)
        pairs, ut, up = pair_centroids(true.xy, pred.xy, radius)
        patches.append({
            "name": path.name,
            "pt": true.classes[pairs[:, 0]], "pp": pred.classes[pairs[:, 1]],
            "ut": true.classes[ut], "up": pred.classes[up],
            "nuclei_px": int((np.asarray(semantic) > 0).sum()),
            "px": int(np.asarray(semantic).size),
        })
    timing_file = folder / "timing.json"
    if timing_file.exists():
        timing = json.loads(timing_file.read_text())
        seconds = timing["seconds"][1:] or timing["seconds"]
        eta = timing.get("eta")
    else:
        # A run of `cosynth evaluate adherence`: the gaps between its pairs' write times.
        times = sorted((p / "image.png").stat().st_mtime for p in (folder / "pairs").iterdir() if p.is_dir())
        seconds, eta = list(np.diff(times)), None
    label = f"{report['sampler']} {report['steps']}" + (f" eta {eta:g}" if eta else "")
    return {"label": label, "folder": str(folder), "patches": patches, "seconds": seconds,
            "vocabulary": vocabulary}


def _figures(patches: list[dict], idx: np.ndarray, vocabulary) -> dict:
    from napari_cosynth.metrics.detection import _class_f1

    cat = lambda key: np.concatenate([patches[i][key] for i in idx])
    pt, pp, ut, up = cat("pt"), cat("pp"), cat("ut"), cat("up")
    tp, fp, fn = len(pt), len(up), len(ut)
    out = {
        "f_d": 2 * tp / max(2 * tp + fp + fn, 1),
        "fp": fp / len(idx),  # spurious nuclei per patch
        "acc": float((pt == pp).mean()) if tp else float("nan"),
        "nuclei_share": sum(patches[i]["nuclei_px"] for i in idx) / sum(patches[i]["px"] for i in idx),
    }
    for c, name in enumerate(vocabulary.names):
        if c:
            f1 = _class_f1(pt, pp, ut, up, c)
            out[f"f1_{name}"] = float("nan") if f1 is None else f1
    return out


def cmd_summary(args) -> int:
    recover = args.recover == "generated"
    runs = [_load_run(Path(f), recover) for f in [args.reference, *args.runs]]
    n = min(len(r["patches"]) for r in runs)
    names = [p["name"] for p in runs[0]["patches"][:n]]
    for r in runs:
        if [p["name"] for p in r["patches"][:n]] != names:
            raise SystemExit(f"{r['folder']}: its patches are not the reference's (same --limit and data?)")
    vocabulary = runs[0]["vocabulary"]
    rng = np.random.default_rng(args.seed)
    boots = [rng.integers(0, n, n) for _ in range(args.boot)]
    everything = np.arange(n)
    ref_boot = [_figures(runs[0]["patches"], b, vocabulary) for b in boots]
    table = []
    for r in runs:
        point = _figures(r["patches"], everything, vocabulary)
        boot = ref_boot if r is runs[0] else [_figures(r["patches"], b, vocabulary) for b in boots]
        row = {"sampler": r["label"], "n_patches": n, "folder": r["folder"],
               "seconds_per_pair_median": float(np.median(r["seconds"])) if r["seconds"] else None,
               "seconds_n": len(r["seconds"])}
        for key, value in point.items():
            values = np.array([b[key] for b in boot])
            deltas = values - np.array([b[key] for b in ref_boot])
            row[key] = {
                "value": value,
                "ci95": [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))],
                "minus_reference_ci95": [float(np.nanpercentile(deltas, 2.5)),
                                         float(np.nanpercentile(deltas, 97.5))],
            }
        table.append(row)
    result = {"n_patches": n, "bootstrap": args.boot, "seed": args.seed, "runs": table}
    text = json.dumps(result, indent=1)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    if args.markdown:
        print(_markdown(table, args.drop))
    else:
        print(text)
    return 0


def _markdown(table: list[dict], drop=()) -> str:
    keys = [k for k in table[0] if isinstance(table[0][k], dict) and k not in drop]
    seconds = "seconds" not in drop
    lines = ["| sampler | " + ("s/pair | " if seconds else "") + " | ".join(keys) + " |",
             "|---" * (len(keys) + 1 + seconds) + "|"]
    for row in table:
        cells = []
        for k in keys:
            v, (lo, hi) = row[k]["value"], row[k]["ci95"]
            d_lo, d_hi = row[k]["minus_reference_ci95"]
            fmt = "{:.2f}" if k == "fp" else "{:.3f}"
            cell = f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"
            if row is not table[0]:
                cell += f" Δ[{fmt.format(d_lo)}, {fmt.format(d_hi)}]"
            cells.append(cell)
        sec = row["seconds_per_pair_median"]
        sec = ("" if sec is None else f"{sec:.1f} | ") if seconds else ""
        lines.append(f"| {row['sampler']} | {sec}" + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("run", help="one adherence run of one sampler, timed per pair")
    p.add_argument("--sampler", required=True)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--eta", type=float, default=None)
    p.add_argument("--spacing", choices=("quadratic", "trailing"), default=None,
                   help="timestep spacing (default: the sampler's)")
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--model", default="default")
    p.add_argument("--data", default="../shared/data/consep/test")
    p.add_argument("--format", default="consep")
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("speed", help="seconds per pair, candidates timed round-robin in one process")
    p.add_argument("candidates", nargs="+", help="sampler:steps or ddim:steps:eta")
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=cmd_speed)
    p = sub.add_parser("summary", help="bootstrap CIs of every run against the reference")
    p.add_argument("--reference", required=True)
    p.add_argument("runs", nargs="*")
    p.add_argument("--boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default=None)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--drop", nargs="*", default=[], help="figures to leave out of the markdown table")
    p.add_argument("--recover", choices=("generated", "stored"), default="generated",
                   help="recover the nuclei again from the stored maps with today's rule (default), "
                        "or score the instances stored with each pair")
    p.set_defaults(func=cmd_summary)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
