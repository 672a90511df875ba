"""Lizard (colon, 20x): PNG images and one label .mat per image.

The release unpacks to::

    lizard_images1/Lizard_Images1/*.png
    lizard_images2/Lizard_Images2/*.png
    lizard_labels/Lizard_Labels/Labels/*.mat     (+ info.csv with the splits)

Each .mat holds ``inst_map`` (H, W) and, per nucleus, ``id`` (N, 1), ``class`` (N, 1), ``bbox`` and
``centroid``. Row k describes the nucleus whose pixels in ``inst_map`` equal ``id[k]``: the ids are not
necessarily 1..N, so classes are looked up through ``id``. Rows whose id has no pixels are dropped (no
nucleus to outline); pixels whose id has no row are an error. ``bbox`` and ``centroid`` are derivable
and not read.

Besides the release layout, any folder with one ``Labels`` folder of .mat files and image folders
named ``Images`` or ``Lizard_Images*`` (at most three levels down) is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..vocabularies import LIZARD
from .base import (
    IMAGE_SUFFIXES,
    DatasetFormat,
    LazyDataset,
    check_class_range,
    check_same_size,
    column,
    files_by_stem,
    label_matrix,
    load_mat,
    make_sample,
    pair_by_stem,
    read_image,
    require_dir,
    sequential_instances,
    visible,
)

MAGNIFICATION = 20.0
TISSUE = "colon"
_SEARCH_DEPTH = 3


class LizardDataset(LazyDataset):
    """A Lizard release folder (or any Images/ + Labels/ folder of Lizard .mat files).

    Parameters
    ----------
    path
        The folder that holds ``lizard_images1``, ``lizard_images2`` and ``lizard_labels``.
    magnification
        Resample every sample to this magnification (Lizard is 20x).
    """

    format = "lizard"

    def __init__(self, path, *, magnification: float | None = None):
        root = require_dir(path)
        label_dir, image_dirs = _find_folders(root)
        images: dict[str, Path] = {}
        for folder in image_dirs:
            for stem, file in files_by_stem(folder, IMAGE_SUFFIXES).items():
                if stem in images:
                    raise DatasetError(
                        file, f"an image named {stem!r} also exists in {images[stem].parent}; keep one"
                    )
                images[stem] = file
        self._pairs = pair_by_stem(images, files_by_stem(label_dir, (".mat",)), root)
        super().__init__(root, [name for name, _, _ in self._pairs], magnification=magnification)

    def _read(self, i: int):
        name, image_path, label_path = self._pairs[i]
        return read_lizard_pair(image_path, label_path, name=name)


DATASET_FORMAT = DatasetFormat(
    "lizard", LizardDataset, LIZARD, has_masks=True, staining="H&E", magnification=MAGNIFICATION,
    tissues=(TISSUE,),
)


def read_lizard_pair(image_path, label_path, *, name: str | None = None):
    """One Lizard image and its label .mat as a :class:`Sample`."""
    label_path = Path(label_path)
    mat = load_mat(label_path, ("inst_map", "id", "class"))
    raw = label_matrix(mat["inst_map"], label_path, "inst_map")
    row_ids = column(mat["id"], label_path, "id")
    row_classes = column(mat["class"], label_path, "class")
    if len(row_ids) != len(row_classes):
        raise DatasetError(
            label_path,
            f"'id' has {len(row_ids)} rows but 'class' has {len(row_classes)}; the class table does "
            "not match the instances",
        )
    if len(np.unique(row_ids)) != len(row_ids):
        raise DatasetError(label_path, "'id' lists a nucleus id twice")
    instances, ids = sequential_instances(raw)
    order = np.argsort(row_ids, kind="stable")
    sorted_ids = row_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    known = (sorted_ids[pos] == ids) if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
    if not known.all():
        raise DatasetError(
            label_path,
            f"inst_map holds nucleus id {int(ids[~known][0])} which has no row in 'id' "
            f"({int((~known).sum())} such id(s)); the class table does not match the instances",
        )
    classes = row_classes[order][pos]
    check_class_range(classes, LIZARD.n_classes - 1, label_path, "'class'", LIZARD.nucleus_classes)
    image = read_image(image_path)
    check_same_size(image, instances, image_path, label_path)
    return make_sample(
        label_path,
        image=image,
        instances=instances,
        classes=classes,
        vocabulary=LIZARD,
        tissue=TISSUE,
        magnification=MAGNIFICATION,
        name=name or label_path.stem,
        provenance={"source": str(label_path)},
    )


def _find_folders(root: Path) -> tuple[Path, list[Path]]:
    """The one Labels folder holding .mat files, and the image folders, under ``root``."""
    label_dirs: list[Path] = []
    image_dirs: list[Path] = []
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.parts) - base_depth
        dirnames[:] = sorted(d for d in dirnames if visible(Path(d))) if depth < _SEARCH_DEPTH else []
        lower = here.name.lower()
        if lower == "labels" and any(f.lower().endswith(".mat") for f in filenames):
            label_dirs.append(here)
        elif (lower == "images" or lower.startswith("lizard_images")) and any(
            os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES for f in filenames
        ):
            image_dirs.append(here)
    if not label_dirs:
        raise DatasetError(
            root,
            "no Labels folder of .mat files found; expected the Lizard layout "
            "lizard_labels/Lizard_Labels/Labels/*.mat beside lizard_images1/ and lizard_images2/",
        )
    if len(label_dirs) > 1:
        raise DatasetError(
            root,
            "found several Labels folders ("
            + ", ".join(str(d.relative_to(root)) for d in label_dirs)
            + "); pass a folder that holds only one",
        )
    if not image_dirs:
        raise DatasetError(
            root, "no image folder found; expected lizard_images1/Lizard_Images1/*.png (or Images/)"
        )
    return label_dirs[0], image_dirs
