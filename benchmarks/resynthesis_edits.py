"""Re-synthesis after editing labels: does the new image show the edited nuclei, with and without RePaint's jumps?

For each of the first N CoNSeP test layouts (20x, 128 x 128) a pair is drawn with the default model and
sampler (pair i of base seed 0, as ``cosynth evaluate adherence`` draws it); its labels are then edited
the way a user does in the napari widget: a few discs of a nucleus class painted on background (added),
a few nuclei set to background (removed), a few nuclei given another class (reclassed). The edited maps
go through what the widget's "re-synthesise" button does (``labels.edited.sample_from_maps``, distance
map from the edited instances, layout points and prompt dropped) and the image is drawn again with
``SamplerSettings(resample=U)`` for every U asked for, with the pair's seed.

The real-trained segmenter (``runs/segmenter``, as ``cosynth evaluate alignment`` uses it) is applied
to every new image and scored against the EDITED maps: foreground Dice (mean over patches), detection
F_d and Acc (pooled, HoVer-Net pairing) and, on the edited nuclei alone, whether added nuclei were
drawn (and in their class), whether removed nuclei disappeared and whether reclassed ones changed
class. Two rows without re-synthesis frame the figures: the drawn image against its own maps (how well
the segmenter agrees with an unedited pair) and the drawn image against the edited maps (nothing
redrawn). Bootstrap 95% intervals over patches; paired differences to ``resample=1``.

    OMP_NUM_THREADS=1 python benchmarks/resynthesis_edits.py run --limit 32 --resample 1 2 3 \\
        --out runs/bench-resynthesis          # per-patch records in OUT/records.jsonl (resumable)
    python benchmarks/resynthesis_edits.py summary runs/bench-resynthesis \\
        --json-out benchmarks/results-resynthesis-edits.json [--markdown]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

COUNTS = ("dice_sum", "tp", "fp", "fn", "agree", "add_n", "add_det", "add_cls", "add_px", "add_px_fg",
          "rm_n", "rm_persist", "rm_px", "rm_px_fg", "re_n", "re_det", "re_new", "re_old")


# ------------------------------------------------------------------------------------------ editing


def edit_labels(pair, rng, n_add: int, n_remove: int, n_reclass: int, classes: list[int]):
    """Edited (semantic, instances, record) of a generated pair, as a user would paint them.

    Removed and reclassed nuclei are drawn from those clear of the border (>= 10 px); added nuclei are
    discs of the pair's median nucleus radius (3-6 px) painted where there was background at least
    2 px from any nucleus, removed ones included, and from the border.
    """
    from scipy import ndimage as ndi

    inst, sem = pair.instances.copy(), np.asarray(pair.semantic_map()).copy()
    h, w = inst.shape
    ids = np.arange(1, len(pair.classes) + 1)
    areas = ndi.sum_labels(np.ones_like(inst), inst, ids)
    border = set(np.unique(np.concatenate([inst[0], inst[-1], inst[:, 0], inst[:, -1]])).tolist())
    usable = [int(i) for i, a in zip(ids, areas) if a >= 10 and i not in border]
    rng.shuffle(usable)
    removed = usable[:n_remove]
    reclassed = [i for i in usable[n_remove:] if int(pair.classes[i - 1]) in classes][:n_reclass]
    record = {"removed": [], "reclassed": [], "added": []}
    occupied = inst > 0  # removed nuclei stay "occupied": no disc is painted where one was taken away
    for i in removed:
        mask = inst == i
        record["removed"].append({"mask": mask, "yx": np.argwhere(mask).mean(0)})
        inst[mask], sem[mask] = 0, 0
    for i in reclassed:
        old = int(pair.classes[i - 1])
        new = int(rng.choice([c for c in classes if c != old]))
        sem[inst == i] = new
        record["reclassed"].append({"mask": inst == i, "old": old, "new": new})
    radius = int(np.clip(np.round(np.sqrt(np.median(areas) / np.pi)) if len(areas) else 4, 3, 6))
    yy, xx = np.mgrid[:h, :w]
    for _ in range(n_add):
        free = ndi.distance_transform_edt(~occupied)
        free[: radius + 2], free[-radius - 2:], free[:, : radius + 2], free[:, -radius - 2:] = 0, 0, 0, 0
        candidates = np.argwhere(free >= radius + 2)
        if not len(candidates):
            break
        cy, cx = candidates[rng.integers(len(candidates))]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        c = int(rng.choice(classes))
        inst[disc], sem[disc] = inst.max() + 1, c
        occupied |= disc
        record["added"].append({"mask": disc, "yx": np.array([cy, cx], float), "cls": c})
    return sem, inst, record


def edited_pair(pair, sem, inst):
    """What the widget's re-synthesise button hands the pipeline after these edits (labels.edited.edited_pair),
    with the prompt dropped so that it is built again from the edited classes."""
    from napari_cosynth.labels import edited

    provenance = {k: v for k, v in pair.provenance.items() if k != "prompt"}
    return edited.edited_pair(pair.with_(provenance=provenance), sem, inst)


# ------------------------------------------------------------------------------------------ scoring


def score(seg, meta, image, truth, record, radius) -> dict:
    """Counts of one segmented image against ``truth`` (a pair), overall and on the edited nuclei."""
    from napari_cosynth.labels.points import centroid_table
    from napari_cosynth.metrics.detection import pair_centroids
    from napari_cosynth.metrics.instance import dice
    from napari_cosynth.segmenter.predict import predict_sample

    pred = predict_sample(seg, meta, truth.with_(image=image))
    true_pts, pred_pts = centroid_table(truth.instances, truth.classes), centroid_table(pred.instances, pred.classes)
    pairs, ut, up = pair_centroids(true_pts.xy, pred_pts.xy, radius)
    partner = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
    fg = pred.instances > 0
    out = dict.fromkeys(COUNTS, 0)
    out.update(dice_sum=dice(truth.instances, pred.instances), tp=len(pairs), fp=len(up), fn=len(ut),
               agree=int((true_pts.classes[pairs[:, 0]] == pred_pts.classes[pairs[:, 1]]).sum()))

    def true_index(mask):  # the truth's nucleus (index into true_pts) under an edited mask; -1 if none
        ids = truth.instances[mask]
        ids = ids[ids > 0]
        return int(np.bincount(ids).argmax()) - 1 if ids.size else -1  # ids are 1..N, all present

    for a in record["added"]:
        k = true_index(a["mask"])
        out["add_n"] += 1
        out["add_px"] += int(a["mask"].sum())
        out["add_px_fg"] += int(fg[a["mask"]].sum())
        if k in partner:
            out["add_det"] += 1
            out["add_cls"] += int(pred_pts.classes[partner[k]] == a["cls"])
    unpaired = pred_pts.xy[up][:, ::-1] if len(up) else np.zeros((0, 2))
    for r in record["removed"]:
        out["rm_n"] += 1
        out["rm_px"] += int(r["mask"].sum())
        out["rm_px_fg"] += int(fg[r["mask"]].sum())
        out["rm_persist"] += int(len(unpaired) and np.hypot(*(unpaired - r["yx"]).T).min() <= radius)
    for r in record["reclassed"]:
        k = true_index(r["mask"])
        out["re_n"] += 1
        if k in partner:
            out["re_det"] += 1
            out["re_new"] += int(pred_pts.classes[partner[k]] == r["new"])
            out["re_old"] += int(pred_pts.classes[partner[k]] == r["old"])
    return {k: float(v) for k, v in out.items()}


def figures(c: dict) -> dict:
    """The table's figures from counts summed over patches (``dice_sum`` / ``n`` = mean Dice)."""
    r = lambda a, b: a / b if b else float("nan")
    return {
        "dice": r(c["dice_sum"], c["n"]),
        "f_d": r(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]),
        "acc": r(c["agree"], c["tp"]),
        "added_detected": r(c["add_det"], c["add_n"]),
        "added_right_class": r(c["add_cls"], c["add_n"]),
        "added_px_nuclei": r(c["add_px_fg"], c["add_px"]),
        "removed_gone": 1 - r(c["rm_persist"], c["rm_n"]),
        "removed_px_nuclei": r(c["rm_px_fg"], c["rm_px"]),
        "reclassed_new_class": r(c["re_new"], c["re_n"]),
        "reclassed_old_class": r(c["re_old"], c["re_n"]),
    }


# ------------------------------------------------------------------------------------------ commands


def cmd_run(args) -> int:
    import torch

    from napari_cosynth import SamplerSettings
    from napari_cosynth.evaluate.adherence import crop_to_multiple, load_for_evaluation, tissue_for
    from napari_cosynth.metrics.detection import radius_for
    from napari_cosynth.segmenter.model import load_segmenter

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = out / "records.jsonl"
    done = {json.loads(line)["index"] for line in records.read_text().splitlines()} if records.exists() else set()
    if not Path(args.segmenter).exists():
        raise SystemExit(f"{args.segmenter}: no trained segmenter here; train one (cosynth segmenter train)")
    seg, meta = load_segmenter(args.segmenter, "cpu")
    pipe, mag, dataset = load_for_evaluation(args.model, args.data, "consep", None, "cpu")
    if float(meta["magnification"]) != mag:
        raise SystemExit(f"the segmenter is at {meta['magnification']}x, the model at {mag}x")
    radius = radius_for(mag)
    vocab = pipe.vocabulary
    classes = [vocab.id_of(n) for n in vocab.nucleus_classes if n != "other"] or list(range(1, vocab.n_classes))
    for i in range(min(args.limit, len(dataset))):
        if i in done:
            continue
        sample, _ = crop_to_multiple(dataset[i], pipe.size_multiple)
        start = time.perf_counter()
        pair = pipe(sample.point_table(), size=sample.shape, tissue=tissue_for(sample, pipe.card),
                    seed=args.seed, first_index=i)[0]
        row = {"index": i, "name": sample.name, "seed": pair.provenance["seed"],
               "generate_s": time.perf_counter() - start, "variants": {}, "seconds": {}, "load1": {}}
        sem, inst, record = edit_labels(pair, np.random.default_rng([args.seed, i]), args.add, args.remove,
                                        args.reclass, classes)
        edited = edited_pair(pair, sem, inst)
        row["n_nuclei"], row["n_edited"] = len(pair.classes), {k: len(v) for k, v in record.items()}
        row["variants"]["drawn vs own maps"] = score(seg, meta, pair.image, pair, {"added": [], "removed": [],
                                                                                   "reclassed": []}, radius)
        row["variants"]["drawn vs edited maps"] = score(seg, meta, pair.image, edited, record, radius)
        order = args.resample[i % len(args.resample):] + args.resample[: i % len(args.resample)]
        for u in order:  # rotated per patch, so that load changes do not favour one setting
            start = time.perf_counter()
            new = pipe.resynthesize(edited, target="image", seed=row["seed"],
                                    settings=SamplerSettings(resample=u))
            row["seconds"][str(u)] = time.perf_counter() - start
            row["load1"][str(u)] = os.getloadavg()[0]
            row["variants"][f"resample {u}"] = score(seg, meta, new.image, edited, record, radius)
        with records.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({"index": i, "seconds": row["seconds"], "load1": row["load1"]}), flush=True)
    return cmd_summary(argparse.Namespace(folder=str(out), boot=args.boot, seed=0, json_out=args.json_out,
                                          markdown=False))


def cmd_summary(args) -> int:
    rows = [json.loads(line) for line in (Path(args.folder) / "records.jsonl").read_text().splitlines()]
    rows.sort(key=lambda r: r["index"])
    names = list(rows[0]["variants"])
    n = len(rows)
    counts = {v: np.array([[r["variants"][v][k] for k in COUNTS] for r in rows]) for v in names}
    summed = lambda v, idx: {**dict(zip(COUNTS, counts[v][idx].sum(0))), "n": len(idx)}
    rng = np.random.default_rng(args.seed)
    boots = [rng.integers(0, n, n) for _ in range(args.boot)]
    boot = {v: [figures(summed(v, b)) for b in boots] for v in names}
    base = "resample 1" if "resample 1" in names else names[-1]
    table = []
    for v in names:
        row = {"variant": v, "n_patches": n}
        for key, value in figures(summed(v, np.arange(n))).items():
            values = np.array([b[key] for b in boot[v]])
            deltas = values - np.array([b[key] for b in boot[base]])
            row[key] = {"value": value, "ci95": _ci(values)}
            if v.startswith("resample") and v != base:
                row[key][f"minus_{base.replace(' ', '_')}_ci95"] = _ci(deltas)
        if v.startswith("resample"):
            u = v.split()[1]
            sec = np.array([r["seconds"][u] for r in rows])
            boot_sec = np.array([np.median(sec[b]) for b in boots])
            row["seconds_median"] = {"value": float(np.median(sec)), "ci95": _ci(boot_sec)}
            ratio = sec / np.array([r["seconds"][base.split()[1]] for r in rows])
            row["seconds_ratio_to_resample_1_median"] = float(np.median(ratio))
            row["load1_median"] = float(np.median([r["load1"][u] for r in rows]))
        table.append(row)
    result = {"n_patches": n, "bootstrap": args.boot,
              "edits_per_patch": {k: float(np.mean([r["n_edited"][k] for r in rows])) for k in rows[0]["n_edited"]},
              "nuclei_per_patch": float(np.mean([r["n_nuclei"] for r in rows])),
              "generate_s_median": float(np.median([r["generate_s"] for r in rows])), "table": table}
    text = json.dumps(result, indent=1)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(_markdown(table) if args.markdown else text)
    return 0


def _ci(values) -> list[float]:
    return [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]


def _markdown(table: list[dict]) -> str:
    keys = [k for k in table[0] if isinstance(table[0][k], dict)]
    lines = ["| variant | s | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for row in table:
        cells = []
        for k in keys:
            (lo, hi), d = row[k]["ci95"], [v for kk, v in row[k].items() if kk.startswith("minus_")]
            cells.append(f"{row[k]['value']:.3f} [{lo:.3f}, {hi:.3f}]" + (f" Δ[{d[0][0]:+.3f}, {d[0][1]:+.3f}]" if d else ""))
        sec = f"{row['seconds_median']['value']:.1f}" if "seconds_median" in row else ""
        lines.append(f"| {row['variant']} | {sec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("run", help="draw, edit, re-synthesise and score; per-patch records in OUT")
    p.add_argument("--model", default="default")
    p.add_argument("--data", default="../shared/data/consep/test")
    p.add_argument("--segmenter", default="runs/segmenter")
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--resample", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--add", type=int, default=3, help="discs painted on background per patch")
    p.add_argument("--remove", type=int, default=3, help="nuclei set to background per patch")
    p.add_argument("--reclass", type=int, default=3, help="nuclei given another class per patch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--boot", type=int, default=2000)
    p.add_argument("--json-out", default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("summary", help="bootstrap table of a run folder's records")
    p.add_argument("folder")
    p.add_argument("--boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default=None)
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=cmd_summary)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
