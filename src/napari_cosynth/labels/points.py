"""Centroid point tables and the point map that conditions the model.

CoSyn's point map is a single channel with one pixel per nucleus at its centroid holding the class id
(no blobs, no radius). The centroid of a C-shaped nucleus can fall outside it; we move such a point to
the nearest pixel of its own nucleus so that the point always lies on the nucleus it stands for.

:class:`PointTable` lives here, beside the functions that make and draw it, and
:mod:`napari_cosynth.sample` imports it from here (``from napari_cosynth.sample import PointTable``
works as before): the sample types depend on the toolkit, not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..sample import Vocabulary


@dataclass
class PointTable:
    """Nucleus centroids: ``xy`` (N, 2) float in pixels (x = column, y = row) and ``classes`` (N,)."""

    xy: np.ndarray
    classes: np.ndarray

    def __post_init__(self):
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if len(self.xy) != len(self.classes):
            raise ValueError(
                f"point table has {len(self.xy)} coordinates but {len(self.classes)} classes"
            )

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def empty(cls) -> PointTable:
        return cls(np.zeros((0, 2)), np.zeros(0, dtype=np.int64))

    def outside(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of points that fall outside an (H, W) canvas."""
        h, w = shape
        x, y = self.xy[:, 0], self.xy[:, 1]
        return (x < 0) | (y < 0) | (np.round(x) > w - 1) | (np.round(y) > h - 1)

    def require_on_canvas(self, shape: tuple[int, int], where: str = "points") -> None:
        """Raise a CosynthError naming how many points lie off an (H, W) canvas, and the first."""
        out = self.outside(shape)
        if out.any():
            from ..errors import CosynthError

            x, y = self.xy[np.flatnonzero(out)[0]]
            raise CosynthError(
                f"{where}: {int(out.sum())} of {len(self)} point(s) lie outside the {shape[0]}x{shape[1]} "
                f"canvas (first at x={x:.1f}, y={y:.1f}); move them onto the canvas or enlarge it"
            )

    def counts(self, vocabulary: Vocabulary) -> dict[str, int]:
        return {
            name: int((self.classes == i).sum())
            for i, name in enumerate(vocabulary.names)
            if i > 0
        }


def centroid_table(instances: np.ndarray, classes: np.ndarray) -> PointTable:
    """One point per instance id 1..N: its centroid (x, y), snapped inside the nucleus if needed.

    Ids with no pixels (possible after cropping or resampling) get no point.
    """
    from scipy import ndimage as ndi  # here, not at the top: `import napari_cosynth` stays light

    n = len(classes)
    if n == 0:
        return PointTable.empty()
    ids = np.arange(1, n + 1)
    areas = ndi.sum_labels(np.ones_like(instances), instances, ids)
    present = areas > 0
    ids = ids[present]
    centres = np.asarray(ndi.center_of_mass(np.ones_like(instances), instances, ids)).reshape(-1, 2)
    yx = centres.copy()
    rows = np.clip(np.round(centres[:, 0]).astype(int), 0, instances.shape[0] - 1)
    cols = np.clip(np.round(centres[:, 1]).astype(int), 0, instances.shape[1] - 1)
    off = instances[rows, cols] != ids
    if off.any():
        objects = ndi.find_objects(instances)
        for k in np.flatnonzero(off):
            yx[k] = _nearest_pixel_of(instances, ids[k], objects[ids[k] - 1], centres[k])
    return PointTable(yx[:, ::-1], np.asarray(classes)[present])


def _nearest_pixel_of(instances, label, box, centre_yx) -> np.ndarray:
    rr, cc = np.nonzero(instances[box] == label)
    rr = rr + box[0].start
    cc = cc + box[1].start
    k = np.argmin((rr - centre_yx[0]) ** 2 + (cc - centre_yx[1]) ** 2)
    return np.array([rr[k], cc[k]], dtype=np.float64)


def point_map(points: PointTable, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 map, 0 everywhere except the class id at each rounded centroid.

    Two nuclei that round to one pixel share it (the later one's class shows); both remain in the
    table. Points outside the canvas are an error, not silently dropped.
    """
    h, w = shape
    points.require_on_canvas(shape)
    if len(points) and (points.classes.min() < 1 or points.classes.max() > 255):
        # Class 0 would vanish into the background and > 255 would wrap in uint8.
        raise ValueError(
            f"point classes must lie in 1..255 (0 is background), got "
            f"{int(points.classes.min())}..{int(points.classes.max())}"
        )
    pm = np.zeros((h, w), dtype=np.uint8)
    cols = np.round(points.xy[:, 0]).astype(int)
    rows = np.round(points.xy[:, 1]).astype(int)
    pm[rows, cols] = points.classes
    return pm


def points_from_map(pm: np.ndarray) -> PointTable:
    """Inverse of :func:`point_map` (one point per non-zero pixel)."""
    rows, cols = np.nonzero(pm)
    return PointTable(np.stack([cols, rows], axis=1).astype(np.float64), pm[rows, cols])
