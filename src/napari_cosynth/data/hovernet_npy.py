"""HoVer-Net training patches: one (H, W, 5) ``.npy`` per patch (R, G, B, instance id, class id).

The layout HoVer-Net's ``extract_patches.py`` writes and its training loader reads. The project writes
it (``napari_cosynth.data.exports``) and reads it back here; it is not in the dataset registry
because a patch folder carries no class names of its own: they come from the ``classes.json`` the
exporter writes beside the patches, or from the caller.

A nucleus's class is the class channel's value on its pixels (the most common non-zero one, should a
foreign patch disagree within a nucleus: :func:`~napari_cosynth.labels.instances.vote_classes`);
instance ids are renumbered 1..N in order of their ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CosynthError, DatasetError
from ..sample import Sample, Vocabulary
from ..vocabularies import CONSEP
from .base import LazyDataset, files_by_stem, integer_array, make_sample, require_dir, sequential_instances


def read_hovernet_patch(path: str | Path, vocabulary: Vocabulary = CONSEP, *,
                        magnification: float = 20.0, tissue: str = "unknown") -> Sample:
    """One ``.npy`` patch as a :class:`Sample` named after the file.

    Parameters
    ----------
    path
        An (H, W, 5) array file: RGB 0..255, instance ids (0 background), class ids (0 background).
    vocabulary
        Names of the class ids (the exporter's ``classes.json`` holds them).
    magnification, tissue
        Recorded on the sample; a patch file does not store them.
    """
    from ..labels.instances import vote_classes  # scipy and scikit-image, only when a patch is read

    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DatasetError(path, f"cannot read the .npy patch ({err}); it may be truncated") from err
    if data.ndim != 3 or data.shape[2] != 5:
        raise DatasetError(path, f"expected an (H, W, 5) HoVer-Net patch, got shape {data.shape}")
    data = integer_array(data, path, "patch")
    rgb = data[:, :, :3]
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise DatasetError(path, "the RGB channels hold values outside 0..255")
    raw = data[:, :, 3]
    if raw.size and raw.min() < 0:
        raise DatasetError(path, "the instance channel holds a negative id")
    types = data[:, :, 4]
    if types.size and (types.min() < 0 or types.max() >= vocabulary.n_classes):
        bad = int(types.min()) if types.min() < 0 else int(types.max())
        raise DatasetError(
            path, f"the class channel holds class id {bad}, outside 0..{vocabulary.n_classes - 1} "
            f"({', '.join(vocabulary.names)})"
        )
    instances, _ = sequential_instances(raw)
    try:
        classes = vote_classes(instances, types)
    except CosynthError:
        raise DatasetError(
            path, "a nucleus has class 0 (background) on all its pixels in the class channel; every "
            f"nucleus needs a class id 1..{vocabulary.n_classes - 1}"
        ) from None
    return make_sample(path, image=rgb.astype(np.uint8), instances=instances, classes=classes,
                       vocabulary=vocabulary, tissue=tissue, magnification=magnification,
                       name=path.stem, provenance={"source": str(path)})


class HovernetNpyDataset(LazyDataset):
    """A folder of HoVer-Net ``.npy`` patches; class names from its ``classes.json`` when present.

    Parameters
    ----------
    path
        The folder of patches.
    vocabulary
        Class names to use when the folder has no ``classes.json`` (default CoNSeP's 4 classes).
    magnification
        Resample every sample to this magnification.
    source_magnification
        The magnification the patches were made at (not stored in the files; default 20).
    """

    format = "hovernet-npy"

    def __init__(self, path, *, vocabulary: Vocabulary | None = None, magnification: float | None = None,
                 source_magnification: float = 20.0):
        from .exports import read_vocabulary

        root = require_dir(path)
        self._files = files_by_stem(root, (".npy",))
        self.vocabulary = read_vocabulary(root) or vocabulary or CONSEP
        self.source_magnification = float(source_magnification)
        super().__init__(root, sorted(self._files), magnification=magnification)

    def _read(self, i: int) -> Sample:
        name = self.names[i]
        return read_hovernet_patch(self._files[name], self.vocabulary,
                                   magnification=self.source_magnification)
