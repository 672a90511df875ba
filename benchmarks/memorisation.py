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

import argparse
import json

import numpy as np
from skimage.metrics import structural_similarity

from napari_cosynth.data.registry import open_dataset

GREY = np.array([0.299, 0.587, 0.114])


def _grey(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float64) @ GREY


def similarity(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """SSIM and Pearson correlation of two grey images of the same shape."""
    return (float(structural_similarity(generated, real, data_range=255.0)),
            float(np.corrcoef(generated.ravel(), real.ravel())[0, 1]))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", nargs="+", required=True, help="real datasets holding the layouts' patches")
    ap.add_argument("--real-format", default="consep")
    ap.add_argument("--mag", type=float, default=None)
    ap.add_argument("--pairs", nargs="+", required=True, help="folders of pairs named <index>-<patch>")
    args = ap.parse_args(argv)

    real = {s.name: _grey(s.image) for path in args.real
            for s in open_dataset(path, args.real_format, magnification=args.mag)}
    out = {"real": args.real, "pairs": {}}
    for folder in args.pairs:
        pairs = [(s.name.split("-", 1)[1], _grey(s.image)) for s in open_dataset(folder, "folder")]
        missing = [name for name, _ in pairs if name not in real]
        if missing:
            raise SystemExit(f"{folder}: no real patch named {missing[0]!r} in {args.real}")
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
