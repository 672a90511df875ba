"""Sample grids: each real patch beside pairs generated from its layout, as one PNG.

This module draws the pairs (the model, the data, the seeds); :mod:`.grid_image` composes the
picture and says its column order.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from ..errors import CosynthError
from .grid_image import GAP, GROUP_GAP, compose_grid, contours, overlay, write_png

__all__ = ["GAP", "GROUP_GAP", "compose_grid", "contours", "grid_report", "overlay", "write_png"]


def grid_report(
    model_path,
    data,
    format: str,
    out,
    *,
    n: int = 4,
    pairs_per_layout: int = 2,
    magnification: float | None = None,
    settings=None,
    seed: int = 0,
    device: str = "cpu",
) -> Generator:
    """Generate ``pairs_per_layout`` pairs from each of the first ``n`` samples; write the grid PNG.

    Samples are loaded at the model's magnification (or ``magnification``) and cropped from the
    top-left to a size the model takes, as in :func:`~.adherence.adherence_report`.

    Returns
    -------
    generator
        Yields :class:`~.adherence.AdherenceProgress` per sample; returns a dict with ``path``,
        ``rows``, ``columns``, ``height``, ``width`` (pixels), ``column_order`` and ``notes``.
    """
    from .adherence import AdherenceProgress, layout_pairs, load_for_evaluation

    if n < 1 or pairs_per_layout < 1:
        raise CosynthError(f"--n and --pairs-per-layout must be positive, got {n} and {pairs_per_layout}")
    if Path(out).suffix.lower() != ".png":
        raise CosynthError(f"{out}: the grid is a PNG; give a file name ending in .png")
    pipe, _mag, dataset = load_for_evaluation(model_path, data, format, magnification, device, settings)
    vocabulary = pipe.vocabulary
    total = min(n, len(dataset))
    rows, notes = [], []
    generated = layout_pairs(pipe, dataset, total, notes, seed=seed, n=pairs_per_layout)
    for i, (sample, pairs, _points) in enumerate(generated):
        rows.append((sample, pairs))
        yield AdherenceProgress(i + 1, total, sample.name)
    grid = compose_grid(rows, vocabulary)
    write_png(out, grid)
    return {
        "path": str(out),
        "rows": total,
        "columns": 2 + 3 * pairs_per_layout,
        "height": int(grid.shape[0]),
        "width": int(grid.shape[1]),
        "column_order": "real image | real overlay | per pair: image, semantic overlay, instance contours",
        "notes": notes,
    }
