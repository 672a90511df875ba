"""How realistic are generated point layouts? Fits the Strauss model and compares four layout sets.

Fits the multitype Strauss hard-core process (``napari_cosynth.layouts.process``) to the layouts of a
training split, draws ``--n`` layouts from it, and compares them with a held-out test split by the
measures of ``napari_cosynth.layouts.realism`` (nearest-neighbour KS statistic, Ripley's L
differences; pooled, per class and across classes). Three references go through the same comparison:

* the training split itself (real vs real: how far two real splits are from each other);
* the simple hard-core sampler ``cosynth generate`` uses without ``--points``
  (``layout_like_training_data`` with the training split's density and class mix);
* Poisson / complete spatial randomness with the fitted model's per-patch class intensities
  (``poisson_layout``): the same counts as the model, no interaction.

Prints one JSON object (timings, fitted model summary, comparison per layout set) and writes three
figures into ``--plots``: L(r) - r curves, NN distance CDFs (each pooled and per class) and one layout
of each kind. Generated canvases have the size of the test split's first sample.

Randomness: the fit uses ``--seed``; Strauss layouts ``--seed + 1``; Poisson layout i
``[--seed + 2, i]``; hard-core layout i ``[--seed + 3, i]``. Example (from the repository root):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/layout_realism.py \\
        --train ../shared/data/consep/train --test ../shared/data/consep/test --model-out /tmp/consep20.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_cosynth.layouts.hardcore import layout_like_training_data
from napari_cosynth.layouts.process import poisson_layout, sample_layouts, save_model
from napari_cosynth.layouts.real import Layout, layouts_from_dataset
from napari_cosynth.layouts.realism import compare_layouts, default_radii, nn_distances, ripley_l
from napari_cosynth.layouts.strauss_fit import fit_strauss

# Which layout of each set the examples figure shows (any index below --n).
EXAMPLE_INDEX = 5
CLASS_COLOURS = ["r", "g", "b", "y", "m", "c"]


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="../shared/data/consep/train", help="split the model is fitted to")
    parser.add_argument("--test", default="../shared/data/consep/test", help="held-out split compared against")
    parser.add_argument("--format", default="consep", help="dataset format of both splits")
    parser.add_argument("--mag", type=float, default=20.0, help="magnification to read both splits at")
    parser.add_argument("--n", type=int, default=112, help="layouts drawn from each generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default="docs/images", help="folder for the three PNG figures")
    parser.add_argument("--model-out", default=None, help="also save the fitted model JSON here")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    return args


def _training_summary(train: list[Layout], vocabulary) -> dict:
    """The training-data record a checkpoint carries, which the hard-core sampler reads."""
    return {
        "samples": len(train),
        "image_sizes": [list(train[0].shape)],
        "nuclei": {name: int(sum((layout.points.classes == i).sum() for layout in train))
                   for i, name in enumerate(vocabulary.names) if i},
    }


def _mean_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _summarise(comparison: dict) -> dict:
    """The comparison with a cross-class mean added (the table in docs/layouts.md reports it)."""
    cross = comparison["cross_class"].values()
    comparison["cross_class_mean"] = {
        "pairs": len(comparison["cross_class"]),
        "nn_ks": _mean_or_none(entry["nn_ks"] for entry in cross),
        "L_mean_abs_diff": _mean_or_none(entry["L_mean_abs_diff"] for entry in cross),
    }
    return comparison


def _model_summary(model) -> dict:
    off_diagonal = ~np.eye(len(model.gamma), dtype=bool)
    return {
        "interaction_radius_px": model.radius,
        "hardcore_px": np.round(model.hardcore, 2).tolist(),
        "gamma": np.round(model.gamma, 3).tolist(),
        "hardcore_within_class_px": [float(np.diag(model.hardcore).min()), float(np.diag(model.hardcore).max())],
        "hardcore_across_classes_px": [float(model.hardcore[off_diagonal].min()),
                                       float(model.hardcore[off_diagonal].max())],
        "density_per_1e4px": 1e4 * model.density,
        "fit_info": model.fit_info,
    }


def _plot_curves(path: Path, sets, classes, radii, kind: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 4))
    for ax, (cls, title) in zip(axes, classes):
        for label, layouts, colour in sets:
            if kind == "ripley":
                ax.plot(radii, ripley_l(layouts, radii, cls, cls) - radii, label=label, color=colour)
            else:
                d = np.sort(nn_distances(layouts, cls, cls))
                ax.plot(d, np.arange(1, len(d) + 1) / max(len(d), 1), label=label, color=colour)
        if kind == "ripley":
            ax.axhline(0, ls=":", c="gray")  # L(r) - r = 0 is complete randomness
            ax.set_xlabel("r (px)")
        else:
            ax.set_xlim(0, 30)
            ax.set_xlabel("NN distance (px)")
        ax.set_title(title)
    axes[0].set_ylabel("L(r) - r" if kind == "ripley" else "cumulative share")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_examples(path: Path, examples, vocabulary) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(examples), figsize=(4 * len(examples), 4))
    for ax, (title, layout) in zip(axes, examples):
        for cls in range(1, vocabulary.n_classes):
            keep = layout.points.classes == cls
            ax.scatter(layout.points.xy[keep, 0], layout.points.xy[keep, 1], s=12,
                       c=CLASS_COLOURS[(cls - 1) % len(CLASS_COLOURS)], label=vocabulary.names[cls])
        h, w = layout.shape
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)  # image orientation: y down
        ax.set_aspect("equal")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    args = _parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    timings = {}

    start = time.perf_counter()
    train, vocabulary = layouts_from_dataset(args.train, args.format, magnification=args.mag)
    test, _ = layouts_from_dataset(args.test, args.format, magnification=args.mag)
    timings["read_s"] = time.perf_counter() - start
    shape = test[0].shape

    start = time.perf_counter()
    model = fit_strauss(train, vocabulary, magnification=args.mag, rng=args.seed)
    timings["fit_s"] = time.perf_counter() - start
    if args.model_out:
        save_model(model, args.model_out)

    start = time.perf_counter()
    strauss = sample_layouts(model, args.n, shape, seed=args.seed + 1)
    timings["sample_strauss_s"] = time.perf_counter() - start
    csr = [Layout(poisson_layout(model, shape, rng=[args.seed + 2, i]), shape) for i in range(args.n)]
    summary = _training_summary(train, vocabulary)
    hardcore = [Layout(layout_like_training_data(summary, vocabulary, shape, args.mag,
                                                 rng=np.random.default_rng([args.seed + 3, i])), shape)
                for i in range(args.n)]

    start = time.perf_counter()
    sets = {"train": train, "strauss": strauss, "hardcore": hardcore, "csr": csr}
    comparisons = {name: _summarise(compare_layouts(test, layouts, vocabulary)) for name, layouts in sets.items()}
    timings["compare_s"] = time.perf_counter() - start

    plots = Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    radii = default_radii(test)
    curve_sets = [("test (real)", test, "k"), ("train (real)", train, "0.6"), ("Strauss (fitted)", strauss, "C0"),
                  ("hard-core", hardcore, "C1"), ("Poisson (CSR)", csr, "C2")]
    classes = [(None, "all nuclei")] + [(i, vocabulary.names[i]) for i in range(1, vocabulary.n_classes)]
    _plot_curves(plots / "layouts-ripley-l.png", curve_sets, classes, radii, "ripley")
    _plot_curves(plots / "layouts-nn-cdf.png", curve_sets, classes, radii, "nn")
    k = min(EXAMPLE_INDEX, args.n - 1, len(test) - 1)
    _plot_examples(plots / "layouts-examples.png",
                   [("test (real)", test[k]), ("Strauss", strauss[k]), ("hard-core", hardcore[k]),
                    ("Poisson (CSR)", csr[k])], vocabulary)

    result = {
        "train": {"path": args.train, "layouts": len(train),
                  "nuclei": int(sum(len(layout.points.classes) for layout in train))},
        "test": {"path": args.test, "layouts": len(test),
                 "nuclei": int(sum(len(layout.points.classes) for layout in test))},
        "magnification": args.mag,
        "canvas": list(shape),
        "n_generated": args.n,
        "seed": args.seed,
        "model": _model_summary(model),
        "comparison": comparisons,
        "timings_s": {name: round(value, 2) for name, value in timings.items()},
        "plots": sorted(str(p) for p in plots.glob("layouts-*.png")),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
