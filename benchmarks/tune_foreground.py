"""Choose how generated nuclei take their extent: recover instances from already generated pairs with
each foreground rule and distance floor, and score them against the layouts they were drawn from.

    python benchmarks/tune_foreground.py --pairs runs/eval/train-layouts-default/pairs \
        --real ../shared/data/consep/train --real-format consep --mag 20 [--floors 0.02 0.05 0.1 0.2]
        [--marker-sizes 2 3 4 5 6 8 [--generated-floors 0.04 0.045]] [--sigmas 0.5 1 --thresholds 0.5 0.6 0.7]
        [--split-depths 0.03 0.05 0.1 --split-sigmas 0.5 1]

``--marker-sizes`` tries minimum marker sizes on the generated-map preset (foreground rule and floor
of ``SeparationParams.for_generated``): noise in a generated distance map raises small second peaks
that cut one nucleus in two; ``--generated-floors`` tries other distance floors with each of them
(how far a nucleus's rim reaches into the generated distance map, so its size). Pairs whose
semantic map was already redrawn from instances cut at floor f gain nothing from floors above f.
``--sigmas`` with ``--thresholds`` searches the full grid of smoothing, marker level and minimum
marker size (``--marker-sizes``, else the preset's). ``--split-depths`` with ``--split-sigmas``
tries cutting marker regions at their h-maxima (``SeparationParams.split_depth``) on the
generated-map preset with each minimum marker size (``--marker-sizes``, else the preset's).

Prints JSON: for each setting, detection F_d / Acc / false positives against the pairs' input
points, and the pooled nuclei pixel share against the real maps of the same layouts. Choose on pairs
drawn from *training* layouts (`cosynth evaluate adherence --data .../train`), never on the test
split the model card reports. No generation here: the pairs' stored distance and semantic maps are
reused, so a setting costs seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", required=True, help="a folder of generated pairs (folder format)")
    ap.add_argument("--real", required=True, help="the dataset whose layouts the pairs were drawn from")
    ap.add_argument("--real-format", default="consep")
    ap.add_argument("--mag", type=float, default=20.0)
    ap.add_argument("--floors", type=float, nargs="*", default=[0.02, 0.05, 0.1, 0.15, 0.2])
    ap.add_argument("--marker-sizes", type=int, nargs="*", default=[],
                    help="minimum marker sizes (pixels) to try on the generated-map preset")
    ap.add_argument("--generated-floors", type=float, nargs="*", default=[],
                    help="with --marker-sizes: distance floors to try on the generated-map preset")
    ap.add_argument("--sigmas", type=float, nargs="*", default=[],
                    help="with --thresholds: smoothing sigmas of a full grid (x thresholds x marker sizes)")
    ap.add_argument("--thresholds", type=float, nargs="*", default=[],
                    help="with --sigmas: marker levels of the grid")
    ap.add_argument("--split-depths", type=float, nargs="*", default=[],
                    help="h-maxima depths for splitting marker regions (SeparationParams.split_depth)")
    ap.add_argument("--split-sigmas", type=float, nargs="*", default=[1.0],
                    help="with --split-depths: smoothing of the map the peaks are found on")
    args = ap.parse_args(argv)

    from napari_cosynth.data.registry import open_dataset
    from napari_cosynth.evaluate.adherence import score_centroids
    from napari_cosynth.labels.instances import SeparationParams, instances_from_maps
    from napari_cosynth.labels.points import centroid_table

    pairs = open_dataset(args.pairs, "folder")
    real = {s.name: s for s in open_dataset(args.real, args.real_format, magnification=args.mag)}
    rows = []
    for pair in pairs:
        # Adherence names each pair "NNNN-<real sample name>".
        twin = real.get(re.sub(r"^\d{4}-", "", pair.name))
        if twin is None:
            raise SystemExit(f"no real sample for pair {pair.name} in {args.real}")
        rows.append((pair, twin))
    vocabulary = rows[0][0].vocabulary
    base = SeparationParams.for_magnification(args.mag)
    settings = {"semantic map only": base}
    for floor in args.floors:
        settings[f"semantic_or_distance > {floor:g}"] = replace(
            base, foreground="semantic_or_distance", distance_floor=floor)
    generated = SeparationParams.for_generated(args.mag)
    for size in args.marker_sizes:
        settings[f"generated preset, min marker {size}"] = replace(generated, min_marker_size=size)
        for floor in args.generated_floors:
            settings[f"generated preset, min marker {size}, floor {floor:g}"] = replace(
                generated, min_marker_size=size, distance_floor=floor)
    # The grid varies how markers are found (smoothing, level, size) on the generated-map preset.
    for sigma in args.sigmas:
        for level in args.thresholds:
            for size in args.marker_sizes or [generated.min_marker_size]:
                settings[f"sigma {sigma:g}, level {level:g}, min marker {size}"] = replace(
                    generated, smoothing_sigma=sigma, marker_threshold=level, min_marker_size=size)
    for depth in args.split_depths:
        for sigma in args.split_sigmas:
            for size in args.marker_sizes or [generated.min_marker_size]:
                settings[f"split depth {depth:g}, split sigma {sigma:g}, min marker {size}"] = replace(
                    generated, split_depth=depth, split_sigma=sigma, min_marker_size=size)
    real_share = sum((t.instances > 0).sum() for _, t in rows) / sum(t.instances.size for _, t in rows)
    out = {"pairs": args.pairs, "n_pairs": len(rows), "real_nuclei_pixel_share": float(real_share),
           "settings": {}}
    stored = ((rows[0][0].provenance or {}).get("instance_recovery") or {}).get("distance_floor")
    above = sorted({p.distance_floor for p in settings.values()
                    if stored is not None and p.foreground != "semantic" and p.distance_floor > stored})
    if above:
        # the stored semantic map already holds the pairs' own cut, so a higher floor cannot shrink it
        out["note"] = (f"the pairs were cut at distance floor {stored:g} and their semantic maps hold that cut: "
                       f"floors {', '.join(f'{f:g}' for f in above)} cannot make nuclei smaller than it")
        print(f"tune_foreground: {out['note']}", file=sys.stderr)
    for name, params in settings.items():
        truth, drawn, fg, size = [], [], 0, 0
        for pair, _ in rows:
            instances, classes = instances_from_maps(pair.semantic, pair.distance, params)
            truth.append(pair.point_table())
            drawn.append(centroid_table(instances, classes))
            fg += int((instances > 0).sum())
            size += instances.size
        det = score_centroids(truth, drawn, vocabulary, args.mag)
        share = fg / size
        out["settings"][name] = {
            "f_d": round(det["f_d"], 4), "acc": round(det["acc"], 4), "fp": det["fp"], "fn": det["fn"],
            "f1": {k: None if v is None else round(v, 3) for k, v in det["f1"].items()},
            "nuclei_pixel_share": round(share, 4),
            "relative_to_real": round((share - real_share) / real_share, 4),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
