"""Writers for the layouts other nuclei tools train on: HoVer-Net patches, PanNuke folds, Lizard.

Each writer takes :class:`~napari_cosynth.sample.Sample` pairs (or folder-format pair folders, read one
at a time) and writes files that the project's own readers read back to the same images, instances
(up to renumbering) and class ids:

- HoVer-Net training patches: one ``<name>.npy`` per pair, (H, W, 5) int32 = R, G, B, instance id,
  class id; the layout HoVer-Net's ``extract_patches.py`` writes and its loader reads
  (``data[..., :3]`` image, ``data[..., 3]`` instances, ``data[..., 4]`` types). Read back with
  :mod:`napari_cosynth.data.hovernet_npy`.
- PanNuke fold: ``images.npy`` (N, H, W, 3) uint8, ``masks.npy`` (N, H, W, 6) int32 with channel
  c = instance ids of class c + 1 and channel 5 = 1 on background, ``types.npy`` (N,) plain unicode
  tissue names (no pickled objects). Read back with :mod:`napari_cosynth.data.pannuke`.
- Lizard: ``Images/<name>.png`` and ``Labels/<name>.mat`` holding ``inst_map``, ``id`` (N, 1),
  ``class`` (N, 1), ``bbox`` (N, 4: row min, row max, col min, col max, inclusive, 1-based as MATLAB)
  and ``centroid`` (N, 2: x, y). Read back with :mod:`napari_cosynth.data.lizard`.

Class ids are written as they are (class k of the pairs' vocabulary is PanNuke channel k - 1 and Lizard
class k); the readers then name them with their dataset's vocabulary, so every export folder also holds
``classes.json`` with the pairs' own class names. A vocabulary with more nucleus classes than the
format holds (5 for PanNuke, 6 for Lizard) is refused rather than folded silently.

PanNuke's masks are written through ``np.lib.format.open_memmap`` and every writer reads one pair at a
time, so memory stays flat however many pairs are exported. Each export appears whole or not at all
(built in a temporary folder, then renamed).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, replace_folder
from ..errors import CosynthError, DatasetError
from ..jsonio import read_json
from ..sample import Sample, Vocabulary
from ..vocabularies import LIZARD, PANNUKE, PANNUKE_TISSUES

VOCABULARY_FILE = "classes.json"


def write_vocabulary(vocabulary: Vocabulary, folder: str | Path) -> Path:
    """Write ``classes.json`` (the class names of ids 0..K-1) into ``folder``."""
    from ..atomic import write_text

    path = Path(folder) / VOCABULARY_FILE
    write_text(path, json.dumps({"vocabulary": list(vocabulary.names)}, indent=2) + "\n")
    return path


def read_vocabulary(folder: str | Path) -> Vocabulary | None:
    """The vocabulary in ``folder/classes.json``, or None when there is no such file."""
    path = Path(folder) / VOCABULARY_FILE
    if not path.is_file():
        return None
    try:
        return Vocabulary(tuple(read_json(path)["vocabulary"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(path, f"cannot read the class names ({err})") from None


# ---------------------------------------------------------------------------------------------- HoVer-Net


def hovernet_array(sample: Sample) -> np.ndarray:
    """(H, W, 5) int32: RGB, instance id, class id per pixel."""
    _require_masks(sample)
    return np.concatenate(
        [sample.image.astype(np.int32), sample.instances[:, :, None].astype(np.int32),
         _type_map(sample)[:, :, None]], axis=2)


def write_hovernet_patch(sample: Sample, folder: str | Path, name: str | None = None, *,
                         overwrite: bool = True) -> Path:
    """Write one HoVer-Net training patch ``folder/<name>.npy`` (atomically) and return its path.

    The one HoVer-Net writer: bulk generation and the napari widget's export both call it. The name
    is made safe as the folder format's pair names are (:func:`~.folder.safe_name`): a sample named
    ``../x`` is written inside ``folder``, never beside it. With ``overwrite=False`` an existing
    patch is a :class:`FileExistsError` instead of being replaced (the widget never overwrites).
    """
    array = hovernet_array(sample)
    path = Path(folder) / f"{_file_name(name or sample.name)}.npy"
    with atomic_path(path, overwrite=overwrite) as tmp:
        np.save(tmp, array, allow_pickle=False)
    return path


def export_hovernet(pairs: Sequence, folder: str | Path) -> Path:
    """One ``.npy`` patch per pair (Samples or folder-format pair paths) plus ``classes.json``.

    ``folder`` is created (replaced if it exists) once every patch is written.
    """
    folder = Path(folder)
    vocabulary = None
    with _new_folder(folder) as tmp:
        tmp.mkdir()
        for item in pairs:
            sample = _as_sample(item)
            vocabulary = _same_vocabulary(vocabulary, sample)
            write_hovernet_patch(sample, tmp)
        if vocabulary is None:
            raise CosynthError("nothing to export: no pairs given")
        write_vocabulary(vocabulary, tmp)
    return folder


# ---------------------------------------------------------------------------------------------- PanNuke


def export_pannuke(pairs: Sequence, folder: str | Path) -> Path:
    """Write one PanNuke fold (images.npy, masks.npy, types.npy, classes.json) into ``folder``.

    Parameters
    ----------
    pairs
        Samples or folder-format pair paths, all of one size and vocabulary (at most 5 nucleus
        classes); paths are read one at a time.
    folder
        Created (replaced if it exists) once the fold is complete.
    """
    pairs = list(pairs)
    if not pairs:
        raise CosynthError("nothing to export: no pairs given")
    first = _as_sample(pairs[0])
    _check_classes(first.vocabulary, PANNUKE.n_classes - 1, "PanNuke")
    h, w = first.shape
    n = len(pairs)
    folder = Path(folder)
    with _new_folder(folder) as tmp:
        tmp.mkdir()
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=np.int32, shape=(n, h, w, 6))
        types = []
        vocabulary = None
        for k, item in enumerate(pairs):
            sample = first if k == 0 else _as_sample(item)
            vocabulary = _same_vocabulary(vocabulary, sample)
            if sample.shape != (h, w):
                raise CosynthError(
                    f"{sample.name}: is {sample.shape[0]}x{sample.shape[1]} but the fold's patches are "
                    f"{h}x{w}; a PanNuke fold holds patches of one size"
                )
            _require_masks(sample)
            images[k] = sample.image
            masks[k] = pannuke_mask(sample)
            types.append(pannuke_tissue(sample.tissue))
        images.flush()
        masks.flush()
        del images, masks
        np.save(tmp / "types.npy", np.asarray(types, dtype=str), allow_pickle=False)
        write_vocabulary(vocabulary, tmp)
    return folder


def pannuke_mask(sample: Sample) -> np.ndarray:
    """(H, W, 6) int32: channel c holds the instance ids of class c + 1, channel 5 is background."""
    h, w = sample.shape
    mask = np.zeros((h, w, 6), dtype=np.int32)
    ids = sample.instances
    if len(sample.classes):
        lut = np.concatenate([[0], sample.classes])  # class of each instance id
        cls = lut[ids]
        rows, cols = np.nonzero(ids)
        mask[rows, cols, cls[rows, cols] - 1] = ids[rows, cols]
    mask[:, :, 5] = ids == 0
    return mask


def pannuke_tissue(tissue: str) -> str:
    """PanNuke's spelling of a tissue name when it is one of its 19 ('colon' -> 'Colon')."""
    key = tissue.replace(" ", "").replace("_", "").replace("-", "").lower()
    for name in PANNUKE_TISSUES:
        if name.replace("_", "").replace("-", "").lower() == key:
            return name
    return tissue


# ----------------------------------------------------------------------------------------------- Lizard


def export_lizard(pairs: Sequence, folder: str | Path) -> Path:
    """Write ``Images/<name>.png`` and ``Labels/<name>.mat`` per pair plus ``classes.json``.

    Parameters
    ----------
    pairs
        Samples or folder-format pair paths (vocabulary of at most 6 nucleus classes); names must be
        unique.
    folder
        Created (replaced if it exists) once every pair is written.
    """
    import imageio.v3 as iio

    folder = Path(folder)
    vocabulary = None
    seen: set[str] = set()
    with _new_folder(folder) as tmp:
        (tmp / "Images").mkdir(parents=True)
        (tmp / "Labels").mkdir()
        for item in pairs:
            sample = _as_sample(item)
            if vocabulary is None:
                _check_classes(sample.vocabulary, LIZARD.n_classes - 1, "Lizard")
            vocabulary = _same_vocabulary(vocabulary, sample)
            _require_masks(sample)
            name = _file_name(sample.name)
            if name in seen:
                raise CosynthError(f"two pairs are named {name!r}; Lizard files are named by pair")
            seen.add(name)
            iio.imwrite(tmp / "Images" / f"{name}.png", sample.image)
            write_lizard_label(sample, tmp / "Labels" / f"{name}.mat")
        if vocabulary is None:
            raise CosynthError("nothing to export: no pairs given")
        write_vocabulary(vocabulary, tmp)
    return folder


def write_lizard_label(sample: Sample, path: str | Path) -> None:
    """One Lizard label .mat (inst_map, id, class, bbox, centroid) for ``sample``."""
    import scipy.io as sio
    from scipy import ndimage as ndi

    n = len(sample.classes)
    ids = np.arange(1, n + 1)
    bbox = np.zeros((n, 4), dtype=np.int32)
    centroid = np.zeros((n, 2), dtype=np.float64)
    if n:
        for k, box in enumerate(ndi.find_objects(sample.instances, max_label=n)):
            if box is not None:
                bbox[k] = (box[0].start + 1, box[0].stop, box[1].start + 1, box[1].stop)
        yx = np.asarray(ndi.center_of_mass(np.ones_like(sample.instances), sample.instances, ids))
        centroid = np.nan_to_num(yx.reshape(-1, 2)[:, ::-1] + 1.0)  # MATLAB's 1-based (x, y)
    sio.savemat(
        path,
        {"inst_map": sample.instances.astype(np.int32), "id": ids.reshape(-1, 1).astype(np.int32),
         "class": sample.classes.reshape(-1, 1).astype(np.int32), "bbox": bbox, "centroid": centroid},
        do_compression=True,
    )


# ---------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _new_folder(folder: Path):
    """Like ``atomic_path`` for a folder that may already exist (an earlier export is replaced).

    A rename cannot replace a non-empty folder, so the old one is moved aside (hidden) once the new
    one is complete, the new one renamed in, and the old one deleted.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield staging / folder.name
        replace_folder(staging / folder.name, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _file_name(name: str) -> str:
    # A sample's name comes from a file or the Python API; as a path part it could climb out
    # ("../x") or name a hidden or absolute file. The folder format's rule keeps it one plain name.
    from .folder import safe_name

    return safe_name(name)


def _as_sample(item) -> Sample:
    if isinstance(item, Sample):
        return item
    from .folder import read_sample

    return read_sample(item)


def _require_masks(sample: Sample) -> None:
    if not sample.has_masks or sample.image is None:
        raise CosynthError(f"{sample.name}: exports need an image and an instance map; this pair lacks one")


def _type_map(sample: Sample) -> np.ndarray:
    # From the instances, not sample.semantic: the exported class of a nucleus must be the one its
    # instance carries, or the round trip would change classes where the two maps disagree.
    from ..labels.semantic import semantic_map

    return semantic_map(sample.instances, sample.classes).astype(np.int32)


def check_export_classes(vocabulary: Vocabulary, export: str) -> None:
    """Raise a CosynthError when the ``export`` format cannot hold ``vocabulary``'s classes.

    For callers that must refuse before making the pairs (a bulk run); formats without a limit pass.
    """
    limits = {"pannuke": (PANNUKE.n_classes - 1, "PanNuke"), "lizard": (LIZARD.n_classes - 1, "Lizard")}
    if export in limits:
        _check_classes(vocabulary, *limits[export])


def _check_classes(vocabulary: Vocabulary, most: int, format: str) -> None:
    if vocabulary.n_classes - 1 > most:
        raise CosynthError(
            f"the pairs have {vocabulary.n_classes - 1} nucleus classes "
            f"({', '.join(vocabulary.nucleus_classes)}) but a {format} export holds at most {most}"
        )


def _same_vocabulary(vocabulary: Vocabulary | None, sample: Sample) -> Vocabulary:
    if vocabulary is not None and sample.vocabulary != vocabulary:
        raise CosynthError(
            f"{sample.name}: its classes ({', '.join(sample.vocabulary.nucleus_classes)}) differ from "
            f"the other pairs' ({', '.join(vocabulary.nucleus_classes)}); export one vocabulary at a time"
        )
    return sample.vocabulary
