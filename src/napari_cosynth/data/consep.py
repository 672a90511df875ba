"""CoNSeP and other HoVer-Net style label folders: Images/ and Labels/ side by side, one .mat per image.

Each label .mat holds ``inst_map`` (H, W; 0 background, nucleus ids) and ``inst_type`` (N, 1; the class
of nucleus id i in row i). ``type_map`` and ``inst_centroid`` are derivable and not read: the toolkit
derives semantic maps and centroids itself, so the two can never disagree with the instances.

Class scheme. HoVer-Net merges CoNSeP's 7 classes into 4 (other, inflammatory, epithelial,
spindle-shaped); the shared patches are stored merged already. Which scheme a folder uses is decided
once for the whole folder: if any ``inst_type`` in it exceeds 4 it holds the original 7 classes and every
file is merged with :data:`~napari_cosynth.vocabularies.CONSEP_MERGE`. Deciding per file would
misread an original-scheme patch that happens to hold only ids 1..4 (4 = malignant epithelial, not
spindle-shaped).

Nuclei with class 0 (outlined but untyped) are kept as 'other': dropping them would leave a visible
nucleus labelled background, which teaches the joint model the wrong thing. Their count is recorded in
the sample's provenance as ``untyped_as_other``. The shared CoNSeP data has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..vocabularies import CONSEP, CONSEP_MERGE, CONSEP_ORIGINAL
from .base import (
    IMAGE_SUFFIXES,
    DatasetFormat,
    LazyDataset,
    check_class_range,
    check_same_size,
    child_dir,
    column,
    files_by_stem,
    label_matrix,
    load_mat,
    make_sample,
    pair_by_stem,
    read_image,
    require_dir,
    sequential_instances,
)

MAGNIFICATION = 40.0
TISSUE = "colon"
SCHEMES = ("auto", "merged", "original")

_MERGE = np.zeros(max(CONSEP_MERGE) + 1, dtype=np.int64)
for _original, _merged in CONSEP_MERGE.items():
    _MERGE[_original] = _merged


class ConsepDataset(LazyDataset):
    """A CoNSeP split folder (``Images/`` + ``Labels/``), one :class:`Sample` per image.

    Parameters
    ----------
    path
        The split folder, e.g. ``consep/train``.
    scheme
        ``"auto"`` (default) detects the class scheme from the folder's labels (see the module
        docstring); ``"merged"`` or ``"original"`` force it.
    magnification
        Resample every sample to this magnification (CoNSeP is 40x).
    """

    format = "consep"

    def __init__(self, path, *, scheme: str = "auto", magnification: float | None = None):
        root = require_dir(path)
        if scheme not in SCHEMES:
            raise DatasetError(
                root, f"unknown CoNSeP class scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
            )
        image_dir, label_dir = _split_folders(root)
        self._pairs = pair_by_stem(
            files_by_stem(image_dir, IMAGE_SUFFIXES), files_by_stem(label_dir, (".mat",)), root
        )
        super().__init__(root, [name for name, _, _ in self._pairs], magnification=magnification)
        self.scheme = _detect_scheme([label for _, _, label in self._pairs]) if scheme == "auto" else scheme

    def _read(self, i: int):
        name, image_path, label_path = self._pairs[i]
        return read_consep_pair(image_path, label_path, scheme=self.scheme, name=name)


DATASET_FORMAT = DatasetFormat(
    "consep", ConsepDataset, CONSEP, has_masks=True, staining="H&E", magnification=MAGNIFICATION,
    tissues=(TISSUE,),
)


def read_consep_pair(image_path, label_path, *, scheme: str = "merged", name: str | None = None):
    """One CoNSeP image and its label .mat as a :class:`Sample` (classes in the merged 4-class scheme).

    ``scheme`` says how to read ``inst_type``: ``"merged"`` (ids 1..4) or ``"original"`` (ids 1..7,
    merged on reading).
    """
    label_path = Path(label_path)
    mat = load_mat(label_path, ("inst_map", "inst_type"))
    raw = label_matrix(mat["inst_map"], label_path, "inst_map")
    types = column(mat["inst_type"], label_path, "inst_type")
    instances, ids = sequential_instances(raw)
    if ids.size and ids[-1] > len(types):
        raise DatasetError(
            label_path,
            f"inst_map holds nucleus id {int(ids[-1])} but inst_type has only {len(types)} rows; "
            "the class table does not match the instances",
        )
    classes = types[ids - 1]
    untyped = int((classes == 0).sum())
    classes[classes == 0] = 1
    if scheme == "original":
        check_class_range(classes, CONSEP_ORIGINAL.n_classes - 1, label_path, "inst_type",
                          CONSEP_ORIGINAL.nucleus_classes)
        classes = _MERGE[classes]
    else:
        check_class_range(classes, CONSEP.n_classes - 1, label_path, "inst_type", CONSEP.nucleus_classes)
    image = read_image(image_path)
    check_same_size(image, instances, image_path, label_path)
    provenance = {"source": str(label_path)}
    if untyped:
        provenance["untyped_as_other"] = untyped
    return make_sample(
        label_path,
        image=image,
        instances=instances,
        classes=classes,
        vocabulary=CONSEP,
        tissue=TISSUE,
        magnification=MAGNIFICATION,
        name=name or label_path.stem,
        provenance=provenance,
    )


def _split_folders(root: Path) -> tuple[Path, Path]:
    image_dir, label_dir = child_dir(root, "Images"), child_dir(root, "Labels")
    if image_dir is not None and label_dir is not None:
        return image_dir, label_dir
    splits = [
        entry.name
        for entry in sorted(root.iterdir())
        if entry.is_dir() and child_dir(entry, "Images") and child_dir(entry, "Labels")
    ]
    if splits:
        raise DatasetError(
            root,
            f"this folder holds the splits {', '.join(splits)}; pass one split folder, "
            f"e.g. {root / splits[0]}",
        )
    missing = "Images/" if image_dir is None else "Labels/"
    raise DatasetError(
        root, f"a CoNSeP split folder holds Images/ and Labels/ side by side; {missing} is missing"
    )


def _detect_scheme(label_paths: list[Path]) -> str:
    """'original' if any inst_type of the folder exceeds 4, else 'merged' (see module docstring)."""
    highest = 0
    for path in label_paths:
        types = column(load_mat(path, ("inst_type",))["inst_type"], path, "inst_type")
        if types.size:
            top = int(types.max())
            if top > CONSEP_ORIGINAL.n_classes - 1:
                check_class_range(types, CONSEP_ORIGINAL.n_classes - 1, path, "inst_type",
                                  CONSEP_ORIGINAL.nucleus_classes)
            highest = max(highest, top)
    return "original" if highest > CONSEP.n_classes - 1 else "merged"
