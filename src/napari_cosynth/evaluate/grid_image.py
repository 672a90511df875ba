"""Sample grid pictures: each real patch beside pairs generated from it, composed as one RGB array.

Columns, left to right: real image | real semantic overlay | then for each generated pair: image,
semantic overlay, instance contours. Composed with numpy and written with imageio (no plotting
library is a dependency); class colours are :func:`napari_cosynth.vocabularies.class_colors`, the
napari layers' colours. No model here: :mod:`.grid` draws the pairs, and the adherence report shows
its pairs with the same picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

from ..atomic import atomic_path
from ..errors import CosynthError
from ..sample import Sample, Vocabulary
from ..vocabularies import class_colors

__all__ = ["GAP", "GROUP_GAP", "compose_grid", "contours", "overlay", "row_cells", "write_png"]

GAP = 4  # white pixels between and around cells
GROUP_GAP = 12  # extra white between the real block and each generated pair, so groups read apart
_BLANK = 200  # grey of a cell with nothing to show (a points-only sample without its image)


def _base(image: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if image is None:
        return np.full((*shape, 3), _BLANK, dtype=np.uint8)
    return image


def overlay(image: np.ndarray | None, semantic: np.ndarray, vocabulary: Vocabulary,
            alpha: float = 0.45) -> np.ndarray:
    """The image with each nucleus pixel tinted in its class colour (background untouched)."""
    semantic = np.asarray(semantic)
    base = _base(image, semantic.shape).astype(np.float32)
    colours = np.asarray(class_colors(vocabulary.n_classes), dtype=np.float32)[:, :3]
    mask = semantic > 0
    base[mask] = (1 - alpha) * base[mask] + alpha * colours[semantic[mask]]
    return base.round().astype(np.uint8)


def contours(image: np.ndarray | None, instances: np.ndarray, classes: np.ndarray,
             vocabulary: Vocabulary) -> np.ndarray:
    """The image with each instance's inner boundary drawn in its class colour."""
    instances = np.asarray(instances)
    out = _base(image, instances.shape).copy()
    edge = find_boundaries(instances, mode="inner") & (instances > 0)
    lut = np.zeros(len(classes) + 1, dtype=np.int64)
    lut[1:] = classes
    colours = np.asarray(class_colors(vocabulary.n_classes), dtype=np.uint8)[:, :3]
    out[edge] = colours[lut[instances[edge]]]
    return out


def _points_overlay(image, points, shape, vocabulary) -> np.ndarray:
    # Points-only data has no semantic map: mark each point with a 3x3 dot of its class colour.
    out = _base(image, shape).copy()
    colours = np.asarray(class_colors(vocabulary.n_classes), dtype=np.uint8)[:, :3]
    h, w = shape
    for (x, y), c in zip(np.round(points.xy).astype(int), points.classes):
        out[max(y - 1, 0):min(y + 2, h), max(x - 1, 0):min(x + 2, w)] = colours[c]
    return out


def row_cells(real: Sample, pairs: Sequence[Sample], vocabulary: Vocabulary) -> list[np.ndarray]:
    """The cells of one grid row (see the module docstring for their order)."""
    shape = real.shape
    if real.has_masks:
        real_overlay = overlay(real.image, real.semantic_map(), vocabulary)
    else:
        real_overlay = _points_overlay(real.image, real.point_table(), shape, vocabulary)
    cells = [_base(real.image, shape), real_overlay]
    for pair in pairs:
        cells += [pair.image, overlay(pair.image, pair.semantic_map(), vocabulary),
                  contours(pair.image, pair.instances, pair.classes, vocabulary)]
    return cells


def compose_grid(rows: Sequence[tuple[Sample, Sequence[Sample]]], vocabulary: Vocabulary) -> np.ndarray:
    """One RGB array of all rows; cells are top-left aligned in slots of the largest cell size.

    Its size is ``(R * (H + GAP) + GAP, C * (W + GAP) + GAP + K * GROUP_GAP)`` for R rows,
    C = 2 + 3K columns (K = the most pairs in a row) and the largest cell H x W.
    """
    if not rows:
        raise CosynthError("a grid needs at least one real sample")
    cell_rows = [row_cells(real, pairs, vocabulary) for real, pairs in rows]
    hmax = max(c.shape[0] for r in cell_rows for c in r)
    wmax = max(c.shape[1] for r in cell_rows for c in r)
    ncol = max(len(r) for r in cell_rows)
    k = (ncol - 2) // 3
    canvas = np.full((len(rows) * (hmax + GAP) + GAP, ncol * (wmax + GAP) + GAP + k * GROUP_GAP, 3),
                     255, np.uint8)
    for i, cells in enumerate(cell_rows):
        for j, cell in enumerate(cells):
            group = 0 if j < 2 else 1 + (j - 2) // 3
            y, x = GAP + i * (hmax + GAP), GAP + j * (wmax + GAP) + group * GROUP_GAP
            canvas[y:y + cell.shape[0], x:x + cell.shape[1]] = cell
    return canvas


def write_png(path, array: np.ndarray) -> Path:
    """Write an RGB uint8 array as a PNG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, array, extension=".png")
    return path
