"""Does a model copy the real patch of a layout it was trained on? Image similarity by layout.

    python benchmarks/memorisation.py --real ../shared/data/consep/train --mag 20 \
        --pairs runs/bench-prior/other-focus-15000-train/pairs runs/bench-prior/other-focus-20000-train/pairs

A pair drawn on a training layout (``label_prior.py --data .../train``) is named after its source
patch (``0007-train_1_007``). For each pair this compares the generated image with the real patch of
the same layout and, as the chance level, with the real patch of the next pair's layout: SSIM and
Pearson correlation of the grey levels. A model that memorises its training images scores higher on
the same layout than on another by more on training layouts than on unseen (test) layouts, and more so
the longer it trains. Prints JSON.
"""

from __future__ import annotations

import json

import numpy as np
from layout_pairs import grey, pairs_with_layouts, parse_args, real_patches
from skimage.metrics import structural_similarity


def similarity(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """SSIM and Pearson correlation of two grey images of the same shape."""
    return (float(structural_similarity(generated, real, data_range=255.0)),
            float(np.corrcoef(generated.ravel(), real.ravel())[0, 1]))


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    real = {name: grey(s.image) for name, s in real_patches(args).items()}
    out = {"real": args.real, "pairs": {}}
    for folder in args.pairs:
        pairs = [(name, grey(s.image)) for name, s in pairs_with_layouts(folder, real, args.real)]
        same = np.array([similarity(g, real[name]) for name, g in pairs])
        other = np.array([similarity(g, real[pairs[(i + 1) % len(pairs)][0]])
                          for i, (_, g) in enumerate(pairs)])
        out["pairs"][folder] = {
            "n": len(pairs),
            "ssim_same_layout": round(float(same[:, 0].mean()), 4),
            "ssim_other_layout": round(float(other[:, 0].mean()), 4),
            "ssim_gap": round(float((same[:, 0] - other[:, 0]).mean()), 4),
            "corr_same_layout": round(float(same[:, 1].mean()), 4),
            "corr_other_layout": round(float(other[:, 1].mean()), 4),
        }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
