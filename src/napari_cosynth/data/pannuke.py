"""PanNuke folds: images.npy, masks.npy and types.npy holding every patch of a fold.

``images.npy`` is (N, H, W, 3), float64 holding 0..255 in the official release (uint8 accepted);
``masks.npy`` is (N, H, W, 6): channels 0-4 hold the instance ids of neoplastic, inflammatory,
connective, dead and epithelial nuclei, channel 5 is background (ignored); ``types.npy`` is the tissue
name of each patch, a numpy string array.

The arrays are memory-mapped, so a 4 GB fold costs nothing until a patch is indexed. ``types.npy`` is
loaded without unpickling: a string array needs none, and an object array (which would) is refused,
since unpickling runs code from the file.

Instance ids restart in each channel, so (channel, id) names a nucleus; ids are renumbered 1..N over the
patch in channel order and the class is channel + 1 (:data:`~napari_cosynth.vocabularies.PANNUKE`).
A pixel claimed by two channels (rare annotation overlaps) goes to the lower channel.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..vocabularies import PANNUKE, PANNUKE_TISSUES
from .base import (
    DatasetFormat,
    LazyDataset,
    integer_array,
    make_sample,
    require_dir,
    sequential_instances,
    visible,
)

MAGNIFICATION = 40.0
FOLD_FILES = ("images.npy", "masks.npy", "types.npy")
_SEARCH_DEPTH = 4  # 'Fold 1/images/fold1/images.npy' is three folders down


class PannukeDataset(LazyDataset):
    """One PanNuke fold, one :class:`Sample` per patch.

    Parameters
    ----------
    path
        A folder holding one fold's images.npy, masks.npy and types.npy, at any depth up to 4 (the
        official release nests them: ``Fold 1/images/fold1/images.npy``,
        ``Fold 1/masks/fold1/masks.npy``).
    magnification
        Resample every sample to this magnification (PanNuke is 40x).
    """

    format = "pannuke"

    def __init__(self, path, *, magnification: float | None = None):
        root = require_dir(path)
        files = find_fold_files(root)
        self.files = files
        self._images = _load_npy(files["images.npy"], mmap=True)
        self._masks = _load_npy(files["masks.npy"], mmap=True)
        self._types = _load_types(files["types.npy"])
        n = _check_shapes(self._images, self._masks, self._types, files)
        fold = files["images.npy"].parent.name.replace(" ", "_")
        super().__init__(root, [f"{fold}_{i:05d}" for i in range(n)], magnification=magnification)

    def _read(self, i: int):
        images_path, masks_path = self.files["images.npy"], self.files["masks.npy"]
        try:
            image = np.asarray(self._images[i])
            masks = np.asarray(self._masks[i])
        except (OSError, ValueError) as err:
            raise DatasetError(images_path.parent, f"cannot read patch {i} ({err})") from err
        instances, classes = merge_channels(masks, masks_path, i)
        return make_sample(
            masks_path,
            image=_to_uint8(image, images_path, i),
            instances=instances,
            classes=classes,
            vocabulary=PANNUKE,
            tissue=self._types[i],
            magnification=MAGNIFICATION,
            name=self.names[i],
            provenance={"source": str(images_path.parent), "index": i},
        )


DATASET_FORMAT = DatasetFormat(
    "pannuke", PannukeDataset, PANNUKE, has_masks=True, staining="H&E", magnification=MAGNIFICATION,
    tissues=PANNUKE_TISSUES,
)


def merge_channels(masks: np.ndarray, path, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One (H, W) instance map numbered 1..N and a class per instance from a (H, W, C) PanNuke mask."""
    n_types = PANNUKE.n_classes - 1
    ids = integer_array(masks[:, :, :n_types], path, f"masks of patch {index}")
    if ids.size and ids.min() < 0:
        raise DatasetError(path, f"masks of patch {index} hold a negative instance id")
    channel = np.argmax(ids > 0, axis=2)  # first channel claiming each pixel
    own = np.take_along_axis(ids, channel[:, :, None], axis=2)[:, :, 0]
    key = np.where(own > 0, channel * (int(ids.max(initial=0)) + 1) + own, 0)
    instances, keys = sequential_instances(key)
    classes = keys // (int(ids.max(initial=0)) + 1) + 1
    return instances, classes


def find_fold_files(root: Path) -> dict[str, Path]:
    """The paths of images.npy, masks.npy and types.npy under ``root``; exactly one of each."""
    found: dict[str, list[Path]] = {name: [] for name in FOLD_FILES}
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).parts) - base_depth
        dirnames[:] = sorted(d for d in dirnames if visible(Path(d))) if depth < _SEARCH_DEPTH else []
        for name in FOLD_FILES:
            if name in filenames:
                found[name].append(Path(dirpath) / name)
    many = {name: paths for name, paths in found.items() if len(paths) > 1}
    if many:
        name, paths = next(iter(many.items()))
        folds = ", ".join(str(p.parent.relative_to(root)) for p in paths)
        raise DatasetError(
            root,
            f"found {len(paths)} {name} files ({folds}); this folder holds several folds, pass one "
            "fold's folder (e.g. 'Fold 1')",
        )
    missing = [name for name, paths in found.items() if not paths]
    if missing:
        raise DatasetError(
            root,
            f"no {', '.join(missing)} found here (searched {_SEARCH_DEPTH} folders deep); a PanNuke "
            "fold folder holds images.npy, masks.npy and types.npy",
        )
    return {name: paths[0] for name, paths in found.items()}


def _load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DatasetError(
                path,
                "the array holds Python objects, which numpy can only load by unpickling (running "
                "code from the file); napari-cosynth refuses to. On a machine you trust, convert it: "
                "np.save(p, np.load(p, allow_pickle=True).astype(str)) for types.npy",
            ) from err
        raise DatasetError(path, f"cannot read the .npy file ({err}); it may be truncated") from err
    except OSError as err:
        raise DatasetError(path, f"cannot read the .npy file ({err}); it may be truncated") from err


def _load_types(path: Path) -> list[str]:
    types = _load_npy(path, mmap=False)
    if types.dtype.kind == "S":
        return [t.decode("utf-8", "replace") for t in types.reshape(-1)]
    if types.dtype.kind != "U":
        raise DatasetError(path, f"expected an array of tissue names, got dtype {types.dtype}")
    return [str(t) for t in types.reshape(-1)]


def _check_shapes(images: np.ndarray, masks: np.ndarray, types: list[str], files: dict[str, Path]) -> int:
    if images.ndim != 4 or images.shape[3] != 3:
        raise DatasetError(files["images.npy"], f"expected (N, H, W, 3) images, got shape {images.shape}")
    if masks.ndim != 4 or masks.shape[3] not in (5, 6):
        raise DatasetError(files["masks.npy"], f"expected (N, H, W, 6) masks, got shape {masks.shape}")
    if masks.shape[1:3] != images.shape[1:3]:
        raise DatasetError(
            files["masks.npy"],
            f"masks are {masks.shape[1]}x{masks.shape[2]} but images are "
            f"{images.shape[1]}x{images.shape[2]}; they must match pixel for pixel",
        )
    counts = {"images.npy": len(images), "masks.npy": len(masks), "types.npy": len(types)}
    if len(set(counts.values())) > 1:
        raise DatasetError(
            files["images.npy"].parent,
            "the fold's files hold different numbers of patches ("
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + "); they must come from the same fold",
        )
    return len(images)


def _to_uint8(image: np.ndarray, path: Path, index: int) -> np.ndarray:
    if image.dtype == np.uint8:
        return np.array(image)
    if not np.issubdtype(image.dtype, np.number):
        raise DatasetError(path, f"images must be numbers, got {image.dtype}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 255:
        raise DatasetError(path, f"patch {index} holds pixel values outside 0..255 (or NaN)")
    return np.rint(image).astype(np.uint8)
