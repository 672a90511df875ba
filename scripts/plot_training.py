"""Plot a training run's loss.csv (the model card's loss curve).

    python scripts/plot_training.py runs/default-v --out docs/images/default-loss.png [--smooth 10]

One panel per logged term (total, image, distance, labels, label_ce when logged), raw rows faint and
a running mean over ``--smooth`` rows on top; the y axes are logarithmic because the terms fall by
orders of magnitude. Rows come from every session of a resumed run (resuming drops the rows after the
last checkpoint first, so the file has one row per logged step).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

TERMS = ("loss", "image", "distance", "labels", "label_ce")


def plot_loss(run: Path, out: Path, smooth: int = 10) -> Path:
    log = run / "loss.csv"
    if not log.is_file():
        raise SystemExit(f"{log}: no such file; pass a run folder written by `cosynth train`")
    rows = pd.read_csv(log)
    terms = [t for t in TERMS if t in rows and rows[t].notna().any()]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 2.8), constrained_layout=True)
    for ax, term in zip(axes, terms, strict=True):
        ax.plot(rows["step"], rows[term], color="0.8", linewidth=0.6)
        ax.plot(rows["step"], rows[term].rolling(smooth, min_periods=1).mean(), color="C0")
        ax.set_yscale("log")
        ax.set_title("total" if term == "loss" else term)
        ax.set_xlabel("step")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder holding loss.csv")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--smooth", type=int, default=10, help="running-mean window in logged rows")
    args = parser.parse_args()
    print(plot_loss(args.run, args.out, args.smooth))


if __name__ == "__main__":
    main()
