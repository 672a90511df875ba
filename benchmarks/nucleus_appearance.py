"""How do generated nuclei of each class look next to real ones of the same layouts? Size, stain, shape.

    python benchmarks/nucleus_appearance.py --real ../shared/data/consep/test --mag 20 \
        --pairs runs/bench-prior/default-v2-mm5-test/pairs runs/bench-prior/cand15k-test/pairs

A pair drawn on a real layout (``label_prior.py``) is named after its source patch
(``0007-test_1_007``). For every nucleus of the real patches and of the generated pairs (its instance
mask and class as stored) this measures the area, the mean haematoxylin optical density
(``skimage.color.rgb2hed``), the mean and the standard deviation of the grey level inside the mask
(darkness and chromatin texture), the eccentricity and the solidity, and prints the median of each
per class. A segmenter learns a class from these cues, so a class drawn too large or too pale teaches
it a cue that real images do not have. ``contrast`` gives, for each set, the difference between
inflammatory and epithelial nuclei in grey level and the ratio of their areas: the two cues that
tell lymphocytes from epithelium at 20x. Prints JSON.
"""

from __future__ import annotations

import json

import numpy as np
from layout_pairs import grey, pairs_with_layouts, parse_args, real_patches
from skimage.color import rgb2hed
from skimage.measure import regionprops

FEATURES = ("area", "haematoxylin_od", "grey", "grey_sd", "eccentricity", "solidity")
MIN_AREA = 8  # px at 20x: slivers cut by the patch border say nothing about shape


def nucleus_features(image: np.ndarray, instances: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Rows of (class id, *FEATURES) for every nucleus of at least MIN_AREA pixels."""
    rgb = image[..., :3]
    haematoxylin = rgb2hed(rgb)[..., 0]
    level = grey(rgb) / 255.0
    rows = []
    for region in regionprops(instances):
        if region.area < MIN_AREA:
            continue
        mask = instances[region.slice] == region.label
        g = level[region.slice][mask]
        rows.append((classes[region.label - 1], region.area, haematoxylin[region.slice][mask].mean(),
                     g.mean(), g.std(), region.eccentricity, region.solidity))
    return np.array(rows, dtype=np.float64).reshape(-1, 1 + len(FEATURES))


def summary(rows: np.ndarray, names: list[str]) -> dict:
    """Per class: count and the median of every feature; and the inflammatory-epithelial contrast."""
    out = {}
    for class_id, name in enumerate(names[1:], start=1):
        sel = rows[rows[:, 0] == class_id, 1:]
        out[name] = {"n": len(sel), **{f: (round(float(np.median(sel[:, j])), 4) if len(sel) else None)
                                       for j, f in enumerate(FEATURES)}}
    if {"inflammatory", "epithelial"} <= set(out) and out["inflammatory"]["n"] and out["epithelial"]["n"]:
        inf, epi = out["inflammatory"], out["epithelial"]
        out["contrast"] = {"grey_epithelial_minus_inflammatory": round(epi["grey"] - inf["grey"], 4),
                           "area_inflammatory_over_epithelial": round(inf["area"] / epi["area"], 4)}
    return out


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    real = real_patches(args)
    sets, layouts, names = {}, None, None
    for folder in args.pairs:
        matched = pairs_with_layouts(folder, real, args.real)
        layout_names = [name for name, _ in matched]
        pairs = [pair for _, pair in matched]
        if layouts is not None and layout_names != layouts:
            raise SystemExit(f"{folder}: its layouts are not those of {args.pairs[0]}; compare pairs of the "
                             "same layouts")
        layouts, names = layout_names, list(pairs[0].vocabulary.names)
        sets[folder] = np.concatenate([nucleus_features(s.image, s.instances, s.classes) for s in pairs])
    real_rows = []
    for name, pair in zip(layouts, pairs):
        sample = real[name]
        h, w = pair.shape
        if sample.shape[0] < h or sample.shape[1] < w:
            raise SystemExit(f"{name}: the real patch {sample.shape} is smaller than its pair {pair.shape}")
        # the pairs were drawn on the real patch cropped from the top-left to the model's size multiple
        # (the crop keeps instance ids, so the sample's own class table still applies)
        real_rows.append(nucleus_features(sample.image[:h, :w], sample.instances[:h, :w], sample.classes))
    out = {"real": args.real, "n_layouts": len(layouts), "features": list(FEATURES),
           "sets": {"real": summary(np.concatenate(real_rows), names)}}
    for folder, rows in sets.items():
        out["sets"][folder] = summary(rows, names)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
