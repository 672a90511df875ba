"""EndoNuke (IHC endometrium): nuclei annotated as keypoints only, one text file per image.

Each line of a keypoint file is ``x y class`` separated by whitespace (x = column, y = row, in pixels;
class 0 stroma, 1 epithelium, 2 other, read as ids 1..3 of
:data:`~napari_cosynth.vocabularies.ENDONUKE`). The release unpacks to::

    data/dataset/images/<id>.png
    data/dataset/labels/<part>/<annotator>/<id>.txt      (e.g. labels/bulk/ptg1/1234.txt)
    data/dataset/images_context/, files_lists/, metadata/ (not read)

The reader accepts ``data/``, ``data/dataset/`` or any folder of keypoint files (searched recursively
under its ``labels/`` folder if it has one); images are looked up by file name in ``images/`` and beside
each keypoint file, and are optional. Images without a keypoint file are not samples. When the
agreement study labels one image several times, each keypoint file is its own sample, named
``<id>-<part>-<annotator>`` (its folders under ``labels/``).

Samples are points-only (``instances is None``): there are no masks to train the joint model on or to
score with Dice/AJI/PQ. See docs/formats.md for what they are good for.

Magnification: release tiles cover 100 x 100 micron, stored 200 px wide at 0.5 micron/px (20x) or
400 px wide at 0.25 micron/px (40x); a 200 or 400 px wide image sets 20x or 40x. Samples with another
image size or no image are taken as 40x.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..sample import PointTable
from ..vocabularies import ENDONUKE
from .base import (
    IMAGE_SUFFIXES,
    DatasetFormat,
    LazyDataset,
    child_dir,
    make_sample,
    read_image,
    require_dir,
    visible,
)

TISSUE = "endometrium"
DEFAULT_MAGNIFICATION = 40.0
# Image width of a release tile -> magnification (100 micron tiles at 0.5 or 0.25 micron/px).
RELEASE_WIDTHS = {200: 20.0, 400: 40.0}
# Annotation tools put border clicks up to a pixel past the last row/column; further out is an error.
_EDGE_TOLERANCE = 1.0


class EndonukeDataset(LazyDataset):
    """EndoNuke keypoint files, one points-only :class:`Sample` per file.

    Parameters
    ----------
    path
        The release's ``data/`` or ``data/dataset/`` folder, or any folder of keypoint files.
    magnification
        Resample every sample to this magnification.
    """

    format = "endonuke"

    def __init__(self, path, *, magnification: float | None = None):
        root = _dataset_root(require_dir(path))
        label_root = child_dir(root, "labels") or root
        label_files = _keypoint_files(label_root)
        if not label_files:
            raise DatasetError(root, "no keypoint files (*.txt with lines 'x y class') found here")
        image_dirs = [d for d in (child_dir(root, "images"),) if d is not None]
        self._files = label_files
        self._image_dirs = image_dirs
        super().__init__(root, _names(label_files, label_root), magnification=magnification)

    def _read(self, i: int):
        label_path = self._files[i]
        image_path = _find_image(label_path, self._image_dirs)
        return read_keypoint_sample(label_path, image_path, name=self.names[i])


# Keypoints only: no masks to train the joint model on; the magnification is the fallback (see above).
DATASET_FORMAT = DatasetFormat(
    "endonuke", EndonukeDataset, ENDONUKE, has_masks=False, staining="IHC",
    magnification=DEFAULT_MAGNIFICATION, tissues=(TISSUE,),
)


def read_keypoints(path) -> PointTable:
    """The keypoints of one EndoNuke text file as a :class:`PointTable` with class ids 1..3."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read the keypoint file ({err})") from err
    xy, classes = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DatasetError(path, f"line {number}: expected 'x y class', got {line.strip()!r}")
        try:
            x, y, cls = float(fields[0]), float(fields[1]), int(fields[2])
        except ValueError:
            raise DatasetError(
                path, f"line {number}: expected two numbers and a class id, got {line.strip()!r}"
            ) from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise DatasetError(path, f"line {number}: coordinates must be finite, got {line.strip()!r}")
        if not 0 <= cls < ENDONUKE.n_classes - 1:
            raise DatasetError(
                path,
                f"line {number}: class {cls} is not an EndoNuke class (0 stroma, 1 epithelium, 2 other)",
            )
        xy.append((x, y))
        classes.append(cls + 1)
    return PointTable(np.array(xy, dtype=np.float64).reshape(-1, 2), np.array(classes, dtype=np.int64))


def read_keypoint_sample(label_path, image_path=None, *, name: str | None = None):
    """One keypoint file (and its image, if any) as a points-only :class:`Sample`."""
    label_path = Path(label_path)
    points = read_keypoints(label_path)
    image = read_image(image_path) if image_path is not None else None
    magnification = DEFAULT_MAGNIFICATION
    if image is not None:
        h, w = image.shape[:2]
        if h == w and w in RELEASE_WIDTHS:
            magnification = RELEASE_WIDTHS[w]
        points = _fit_canvas(points, (h, w), label_path, image_path)
    provenance = {"source": str(label_path)}
    if image_path is not None:
        provenance["image"] = str(image_path)
    return make_sample(
        label_path,
        image=image,
        instances=None,
        classes=np.zeros(0, dtype=np.int64),
        vocabulary=ENDONUKE,
        tissue=TISSUE,
        magnification=magnification,
        name=name or label_path.stem,
        points=points,
        provenance=provenance,
    )


def _fit_canvas(points: PointTable, shape, label_path, image_path) -> PointTable:
    """Clamp points lying within a pixel of the canvas onto it; points further out are an error."""
    h, w = shape
    x, y = points.xy[:, 0], points.xy[:, 1]
    far = (x < -_EDGE_TOLERANCE) | (y < -_EDGE_TOLERANCE) | (x > w - 1 + _EDGE_TOLERANCE) | (
        y > h - 1 + _EDGE_TOLERANCE
    )
    if far.any():
        k = int(np.flatnonzero(far)[0])
        raise DatasetError(
            label_path,
            f"{int(far.sum())} keypoint(s) lie outside the {w}x{h} (WxH) image "
            f"{Path(image_path).name} (first at x={x[k]:g}, y={y[k]:g}); is this the right image?",
        )
    xy = np.stack([np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)], axis=1)
    return PointTable(xy, points.classes)


def _dataset_root(path: Path) -> Path:
    """``path`` itself, or the release's dataset/ folder inside it."""
    for candidate in (path / "dataset", path / "data" / "dataset"):
        if candidate.is_dir() and child_dir(candidate, "labels") is not None:
            return candidate
    return path


def _keypoint_files(label_root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(label_root):
        dirnames[:] = sorted(d for d in dirnames if visible(Path(d)))
        found.extend(
            Path(dirpath) / f for f in filenames if f.lower().endswith(".txt") and visible(Path(f))
        )
    return sorted(found)


def _names(files: list[Path], label_root: Path) -> list[str]:
    """The file's stem, or '<stem>-<folder>-<folder>' where several files share a stem."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    names = []
    for f in files:
        if stems[f.stem] == 1:
            names.append(f.stem)
        else:
            folders = f.parent.relative_to(label_root).parts
            names.append("-".join((f.stem, *folders)))
    if len(set(names)) != len(names):
        raise DatasetError(label_root, "two keypoint files resolve to the same sample name")
    return names


def _find_image(label_path: Path, image_dirs: list[Path]) -> Path | None:
    for folder in (*image_dirs, label_path.parent):
        for suffix in IMAGE_SUFFIXES:
            for spelling in (suffix, suffix.upper()):
                candidate = folder / f"{label_path.stem}{spelling}"
                if candidate.is_file():
                    return candidate
    return None
