"""The downstream experiment's table: means and spreads over seeds, deltas against real-only, a plot.

Kept apart from :mod:`.downstream` (which trains and scores) so that the arithmetic of the table can
be checked against hand-computed numbers without training anything, and so that a report can be
rebuilt from the ``result.json`` files on disk.

Conventions: a (fraction, arm) cell is the mean over seeds with the sample standard deviation
(n - 1 in the denominator; None for a single seed). A delta is paired by seed: for every seed run in
both arms, the arm's score minus the real-only score of that seed; the cell gives their mean and sample
standard deviation, so it says whether the difference is consistent, not just whether the means differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..jsonio import read_json

METRICS = ("dice", "aji", "pq", "f_d", "acc")
LABELS = {"dice": "Dice", "aji": "AJI", "pq": "PQ", "f_d": "F_d", "acc": "Acc"}
PLOT_FILE = "downstream.png"


def _known(value) -> bool:
    return value is not None and math.isfinite(value)


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the known values; None where undefined.

    A score a run could not compute (None or NaN, e.g. Acc with no matched nuclei) is left out;
    no known value gives no mean, one gives no standard deviation.
    """
    values = np.asarray([v for v in values if _known(v)], dtype=float)
    if values.size == 0:
        return None, None
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else None)


def _by_cell(results: Sequence[Mapping]) -> dict[tuple[float, str], dict[int, Mapping]]:
    cells: dict[tuple[float, str], dict[int, Mapping]] = {}
    for r in results:
        cells.setdefault((float(r["fraction"]), r["arm"]), {})[int(r["seed"])] = r["scores"]
    return cells


def summarise(results: Sequence[Mapping]) -> list[dict]:
    """One row per (fraction, arm): ``n`` seeds and ``<metric>_mean`` / ``<metric>_sd`` per metric.

    ``results`` are run results (``fraction``, ``arm``, ``seed``, ``scores``); rows come in the order
    their (fraction, arm) first appears.
    """
    rows = []
    for (fraction, arm), seeds in _by_cell(results).items():
        row = {"fraction": fraction, "arm": arm, "n": len(seeds)}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_sd"] = mean_sd([s[m] for s in seeds.values()])
        rows.append(row)
    return rows


def paired_deltas(results: Sequence[Mapping], baseline: str = "real") -> list[dict]:
    """Per (fraction, arm other than ``baseline``): mean and sd over seeds of arm minus baseline.

    Only seeds run in both arms count (``n``); a fraction without a baseline run gets no row.
    """
    cells = _by_cell(results)
    rows = []
    for (fraction, arm), seeds in cells.items():
        base = cells.get((fraction, baseline))
        if arm == baseline or base is None:
            continue
        common = sorted(set(seeds) & set(base))
        row = {"fraction": fraction, "arm": arm, "n": len(common)}
        for m in METRICS:
            row[f"{m}_delta"], row[f"{m}_delta_sd"] = mean_sd(
                [seeds[s][m] - base[s][m] for s in common if _known(seeds[s][m]) and _known(base[s][m])])
        rows.append(row)
    return rows


def _pm(mean, sd, signed=False) -> str:
    if mean is None:
        return "n/a"
    text = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    return text + (f" ± {sd:.3f}" if sd is not None else "")


def build_report(results: Sequence[Mapping], plan: Mapping) -> dict:
    """The experiment's report: settings, readable tables, numeric summary, every run.

    Parameters
    ----------
    results
        Run results as :mod:`.downstream` writes them (``result.json``).
    plan
        The plan record (``plan.json``).
    """
    summary = summarise(results)
    deltas = paired_deltas(results)
    subsets = {s["fraction"]: s for s in plan.get("subsets", [])}
    experiment = {
        "train": plan.get("train"), "test": plan.get("test"), "format": plan.get("format"),
        "magnification": plan.get("magnification"), "segmenter_steps": plan.get("steps"),
        "encoder": plan.get("segmenter", {}).get("encoder"), "model": plan.get("model_id"),
        "layouts": plan.get("layouts"), "jitter_px": plan.get("jitter"), "tiles": plan.get("tiles"),
        "subset_seed": plan.get("subset_seed"), "tile_pattern": plan.get("tile_pattern"),
    }
    table = [{"fraction": r["fraction"], "arm": r["arm"], "seeds": r["n"],
              "train samples": subsets.get(r["fraction"], {}).get("samples"),
              "synthetic pairs": (subsets.get(r["fraction"], {}).get("synthetic_pairs")
                                  if r["arm"] == "synthetic" else 0),
              **{LABELS[m]: _pm(r[f"{m}_mean"], r[f"{m}_sd"]) for m in METRICS}} for r in summary]
    delta_table = [{"fraction": r["fraction"], "arm": f"{r['arm']} - real", "paired seeds": r["n"],
                    **{LABELS[m]: _pm(r[f"{m}_delta"], r[f"{m}_delta_sd"], signed=True) for m in METRICS}}
                   for r in deltas]
    runs = [{"fraction": r["fraction"], "arm": r["arm"], "seed": r["seed"],
             **{m: r["scores"][m] for m in METRICS}} for r in results]
    return {
        "experiment": experiment,
        "table": table,
        "deltas": delta_table,
        "summary": summary,
        "paired_deltas": deltas,
        "runs": runs,
        "notes": [
            "table: mean ± sample standard deviation (n - 1) over seeds; no ± with one seed",
            "deltas: per seed, the arm's score minus the real-only score of the same seed; mean ± sd",
            "a score a run could not compute (e.g. Acc with no matched nuclei) is left out of its cell",
            ("a fraction's subset is the same for every arm and seed, so the spread over seeds leaves out "
             "the choice of tiles"),
            ("every run has the same number of optimisation steps; the synthetic arm draws a share "
             "(extra_ratio) of its crops from synthetic pairs"),
        ],
    }


def plot_downstream(summary: Sequence[Mapping], path: str | Path) -> Path:
    """One panel per metric: mean vs training fraction (log axis), a line per arm, sd error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    arms = list(dict.fromkeys(r["arm"] for r in summary))
    fractions = sorted({r["fraction"] for r in summary})
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.2), squeeze=False)
    for ax, m in zip(axes[0], METRICS, strict=True):
        for k, arm in enumerate(arms):
            rows = sorted((r for r in summary if r["arm"] == arm and r[f"{m}_mean"] is not None),
                          key=lambda r: r["fraction"])
            # Arms sit side by side around each fraction so their error bars do not overlap.
            x = [r["fraction"] * 1.04 ** (k - (len(arms) - 1) / 2) for r in rows]
            ax.errorbar(x, [r[f"{m}_mean"] for r in rows], yerr=[r[f"{m}_sd"] or 0.0 for r in rows],
                        marker="o", capsize=3, label=arm)
        ax.set_xscale("log")
        ax.set_xticks(fractions)
        ax.set_xticklabels([f"{f:g}" for f in fractions])
        ax.minorticks_off()
        ax.set_title(LABELS[m])
        ax.set_xlabel("training fraction")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def write_downstream_report(report: Mapping, out: str | Path) -> dict:
    """Write ``report.json``, ``report.md`` and the plot into ``out``; return their paths."""
    from .report import write_report

    out = Path(out)
    images = {}
    if report["summary"]:
        plot_downstream(report["summary"], out / PLOT_FILE)
        images["Scores vs training fraction (mean ± sd over seeds)"] = PLOT_FILE
    json_path, md_path = write_report(report, out, title="Downstream experiment: segmenter trained with "
                                      "and without synthetic pairs", images=images)
    return {"json": str(json_path), "markdown": str(md_path),
            "plot": str(out / PLOT_FILE) if images else None}


# ------------------------------------------------------------------------------- several folders


def read_experiment(folder: str | Path) -> tuple[dict, list[dict]]:
    """The plan record and every finished run's result in one experiment folder."""
    from ..errors import CosynthError
    from .downstream_plan import PLAN_FILE

    folder = Path(folder)
    try:
        plan = read_json(folder / PLAN_FILE)
    except (OSError, ValueError) as err:
        raise CosynthError(f"{folder / PLAN_FILE}: not a downstream experiment folder ({err})") from None
    results = []
    for path in sorted(folder.glob("fraction-*/*-seed-*/result.json")):
        try:
            results.append(read_json(path))
        except (OSError, ValueError) as err:
            raise CosynthError(f"{path}: unreadable result ({err}); delete it to score it again") from None
    return plan, results


def merged_report(folders: Sequence[str | Path]) -> dict:
    """One report over experiment folders that ran different fractions with otherwise equal settings.

    Folders let fractions run in parallel processes, or with another number of synthetic pairs
    (``synthetic_pairs`` is recorded per fraction, so it may differ); every other setting that moves
    the numbers must agree, and a fraction may come from one folder only.
    """
    from ..errors import CosynthError
    from .downstream_plan import ARMS, FIXED_SETTINGS, comparable

    plans, results, source, subsets = [], [], {}, []
    for folder in folders:
        plan, found = read_experiment(folder)
        here = {r["fraction"] for r in found}  # a fraction belongs to the folder holding its runs
        for fraction in sorted(here, reverse=True):
            if fraction in source:
                raise CosynthError(f"fraction {fraction:g} has runs in both {source[fraction]} and "
                                   f"{folder}; give each fraction's folder once")
            source[fraction] = str(folder)
        subsets += [s for s in plan.get("subsets", []) if s["fraction"] in here]
        for key in FIXED_SETTINGS:
            if key != "synthetic_pairs" and plans and (
                    comparable(key, plan.get(key)) != comparable(key, plans[0].get(key))):
                raise CosynthError(f"{folder}: {key} is {plan.get(key)!r}, but {plans[0].get(key)!r} in "
                                   f"{folders[0]}; runs with other settings are not comparable")
        plans.append(plan)
        results += found
    merged = dict(plans[0], subsets=subsets)
    arms = {a: k for k, a in enumerate(ARMS)}
    results.sort(key=lambda r: (-r["fraction"], r["seed"], arms.get(r["arm"], len(arms))))
    report = build_report(results, merged)
    report["experiment"]["folders"] = {f"{f:g}": source[f] for f in sorted(source, reverse=True)}
    return report
