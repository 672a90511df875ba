"""The project's own pair format: one folder per sample, plain files any tool can open.

Layout (docs/formats.md has the full description)::

    DIR/<name>/image.png       RGB uint8 (absent only for a points-only sample without an image)
               instances.tif   int32, 0 background, nuclei 1..N (absent for points-only samples)
               classes.csv     id,class_id,class_name - one row per nucleus id 1..N
               semantic.tif    uint8 class per pixel (optional)
               distance.tif    float32 in [0, 1] (optional)
               points.csv      x,y,class,class_id (see data/points_csv.py) (optional; required for points-only samples)
               meta.json       format version, vocabulary, tissue, magnification, name, provenance

Pairs are written whole or not at all (built in a hidden temporary folder, then renamed), and an
existing pair is never overwritten: a taken name gets a numbered suffix. Readers skip hidden folders,
so an interrupted write leaves nothing a reader would pick up.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import DatasetError
from ..jsonio import read_json
from ..sample import Sample, Vocabulary
from .base import (
    DatasetFormat,
    LazyDataset,
    label_matrix,
    make_sample,
    read_image,
    require_dir,
    visible,
)
from .points_csv import points_to_csv, read_points_csv

FORMAT = "napari-cosynth pair"
FORMAT_VERSION = 1
PAIR_FILES = ("image.png", "instances.tif", "classes.csv", "semantic.tif", "distance.tif", "points.csv")
_MAX_SUFFIX = 9999


# --------------------------------------------------------------------------------------------- writing


def write_sample(sample: Sample, root: str | Path, name: str | None = None) -> Path:
    """Write ``sample`` as a new pair folder under ``root`` and return its path.

    Parameters
    ----------
    sample
        The sample to write; points-only samples (no instance map) are written without
        instances.tif and classes.csv.
    root
        The dataset folder; created if missing.
    name
        Folder name (default: ``sample.name``). Characters other than letters, digits, '.', '_' and
        '-' become '_'. If a pair of that name exists, the first free ``<name>-001``, ``<name>-002``...
        is used instead: nothing is ever overwritten.

    Returns
    -------
    Path
        The folder written.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(root, "cannot write pairs here: it is a file, not a folder")
    _check_writable(sample)
    base = safe_name(name if name is not None else sample.name)
    for k in range(_MAX_SUFFIX + 1):
        target = root / (base if k == 0 else f"{base}-{k:03d}")
        if target.exists():
            continue
        try:
            with atomic_path(target, overwrite=False) as tmp:
                tmp.mkdir()
                _write_files(sample, tmp, target.name)
        except FileExistsError:
            continue  # another writer took the name between the check and the rename
        return target
    raise DatasetError(
        root, f"every name from {base!r} to {base}-{_MAX_SUFFIX} is taken; choose another name"
    )


def safe_name(name: str) -> str:
    """``name`` reduced to a portable, visible folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).lstrip(".")
    return cleaned or "sample"


def _check_writable(sample: Sample) -> None:
    shape = sample.shape if (sample.has_masks or sample.image is not None) else None
    if sample.semantic is not None:
        semantic = np.asarray(sample.semantic)
        if semantic.shape != shape:
            raise ValueError(f"{sample.name}: semantic map is {semantic.shape}, the sample is {shape}")
        if semantic.size and (semantic.min() < 0 or semantic.max() >= sample.vocabulary.n_classes):
            raise ValueError(
                f"{sample.name}: semantic map holds ids outside 0..{sample.vocabulary.n_classes - 1}"
            )
    if sample.distance is not None:
        distance = np.asarray(sample.distance, dtype=np.float64)
        if distance.shape != shape:
            raise ValueError(f"{sample.name}: distance map is {distance.shape}, the sample is {shape}")
        if not np.isfinite(distance).all() or distance.min(initial=0) < 0 or distance.max(initial=0) > 1:
            raise ValueError(f"{sample.name}: distance map must lie in [0, 1]")


def _write_files(sample: Sample, folder: Path, name: str) -> None:
    import imageio.v3 as iio
    import tifffile

    names = sample.vocabulary.names
    written = []
    if sample.image is not None:
        iio.imwrite(folder / "image.png", sample.image)
        written.append("image.png")
    if sample.has_masks:
        tifffile.imwrite(folder / "instances.tif", sample.instances.astype(np.int32), compression="zlib")
        rows = [(i + 1, int(c), names[int(c)]) for i, c in enumerate(sample.classes)]
        _write_csv(folder / "classes.csv", ("id", "class_id", "class_name"), rows)
        written += ["instances.tif", "classes.csv"]
    if sample.semantic is not None:
        semantic = np.asarray(sample.semantic).astype(np.uint8)
        tifffile.imwrite(folder / "semantic.tif", semantic, compression="zlib")
        written.append("semantic.tif")
    if sample.distance is not None:
        distance = np.asarray(sample.distance).astype(np.float32)
        tifffile.imwrite(folder / "distance.tif", distance, compression="zlib")
        written.append("distance.tif")
    if sample.points is not None:
        sample.vocabulary.check_ids(sample.points.classes, f"{sample.name}: point classes")
        (folder / "points.csv").write_text(points_to_csv(sample.points, sample.vocabulary))
        written.append("points.csv")
    from .. import __version__

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,  # the folder's own name (older pairs may differ: readers use the folder's)
        "vocabulary": list(names),
        "tissue": sample.tissue,
        "magnification": float(sample.magnification),
        "n_nuclei": int(sample.n_nuclei),
        "files": written,
        "written_by": f"napari-cosynth {__version__}",
        "provenance": sample.provenance,
    }
    try:
        text = json.dumps(meta, indent=2, default=_json_value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{sample.name}: provenance cannot be stored as JSON ({err})") from err
    (folder / "meta.json").write_text(text + "\n", encoding="utf-8")


def _json_value(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON data")


def _write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


# --------------------------------------------------------------------------------------------- reading


def read_sample(path: str | Path) -> Sample:
    """Read one pair folder written by :func:`write_sample` (its folder name becomes the sample name)."""
    folder = require_dir(path)
    meta = _read_meta(folder)
    try:
        vocabulary = Vocabulary(tuple(meta["vocabulary"]))
    except (TypeError, ValueError) as err:
        raise DatasetError(folder / "meta.json", f"bad vocabulary: {err}") from err
    files = meta.get("files")
    if not isinstance(files, list) or not all(f in PAIR_FILES for f in files):
        raise DatasetError(folder / "meta.json", f"'files' must list some of {', '.join(PAIR_FILES)}")
    for file in files:
        if not (folder / file).is_file():
            raise DatasetError(folder / file, "listed in meta.json but missing; the pair is incomplete")

    image = read_image(folder / "image.png") if "image.png" in files else None
    instances = classes = None
    if "instances.tif" in files:
        instances_path = folder / "instances.tif"
        instances = label_matrix(_read_tif(instances_path), instances_path, "instance map")
        if "classes.csv" not in files:
            raise DatasetError(folder, "instances.tif needs classes.csv beside it")
        classes = _read_classes(folder / "classes.csv", vocabulary)
        n = int(instances.max(initial=0))
        if n != len(classes):
            raise DatasetError(
                folder / "classes.csv",
                f"has {len(classes)} rows but instances.tif numbers nuclei up to {n}; the class table "
                "does not match the instances",
            )
        if image is not None and image.shape[:2] != instances.shape:
            raise DatasetError(
                folder / "instances.tif",
                f"is {instances.shape[0]}x{instances.shape[1]} but image.png is "
                f"{image.shape[0]}x{image.shape[1]}; they must match pixel for pixel",
            )
    shape = instances.shape if instances is not None else (image.shape[:2] if image is not None else None)
    semantic = distance = points = None
    if "semantic.tif" in files:
        semantic = _read_map(folder / "semantic.tif", shape, np.uint8)
        if semantic.size and semantic.max() >= vocabulary.n_classes:
            raise DatasetError(
                folder / "semantic.tif",
                f"holds class id {int(semantic.max())}, outside 0..{vocabulary.n_classes - 1}",
            )
    if "distance.tif" in files:
        distance = _read_map(folder / "distance.tif", shape, np.float32)
        if not np.isfinite(distance).all() or distance.min(initial=0) < 0 or distance.max(initial=0) > 1:
            raise DatasetError(folder / "distance.tif", "values must lie in [0, 1]")
    if "points.csv" in files:
        points = read_points_csv(folder / "points.csv", vocabulary)
    if instances is None and points is None:
        raise DatasetError(folder, "a pair needs instances.tif or points.csv; found neither")
    provenance = meta.get("provenance", {})
    if not isinstance(provenance, dict):
        raise DatasetError(folder / "meta.json", "'provenance' must be an object")
    try:
        magnification = float(meta["magnification"])
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(folder / "meta.json", "'magnification' must be a number") from err
    return make_sample(
        folder,
        image=image,
        instances=instances,
        classes=classes if classes is not None else np.zeros(0, dtype=np.int64),
        vocabulary=vocabulary,
        tissue=str(meta.get("tissue", "unknown")),
        magnification=magnification,
        name=folder.name,
        points=points,
        semantic=semantic,
        distance=distance,
        provenance=provenance,
    )


def is_pair(path: str | Path) -> bool:
    return (Path(path) / "meta.json").is_file()


def list_pairs(root: str | Path) -> list[Path]:
    """The pair folders of a dataset folder (or ``[root]`` if ``root`` is a pair), sorted by name.

    Hidden folders (unfinished writes) are skipped; a visible folder holding pair files but no
    meta.json is an error, since it is most likely a pair whose copy was cut short.
    """
    root = require_dir(root)
    if is_pair(root):
        return [root]
    pairs = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not visible(entry):
            continue
        if is_pair(entry):
            pairs.append(entry)
        elif any((entry / f).exists() for f in PAIR_FILES):
            raise DatasetError(entry, "holds pair files but no meta.json; the pair is incomplete")
    return pairs


def count_pairs(root: str | Path) -> int:
    """How many pairs :func:`list_pairs` finds under ``root``."""
    return len(list_pairs(root))


class FolderDataset(LazyDataset):
    """A folder of pairs in the project's format (see the module docstring)."""

    format = "folder"

    def __init__(self, path, *, magnification: float | None = None):
        self._pairs = list_pairs(path)
        super().__init__(path, [p.name for p in self._pairs], magnification=magnification)

    def _read(self, i: int) -> Sample:
        return read_sample(self._pairs[i])


# Classes, tissue and magnification are per pair (meta.json); no stain is recorded (training prompts
# say H&E). A pair may be points-only: training refuses such a pair by name when it reaches it.
DATASET_FORMAT = DatasetFormat("folder", FolderDataset, None, has_masks=True)


def _read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    if not path.is_file():
        raise DatasetError(folder, "not a napari-cosynth pair folder (no meta.json)")
    try:
        meta = read_json(path)
    except (OSError, ValueError) as err:
        raise DatasetError(path, f"cannot read meta.json ({err}); it may be truncated") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetError(path, f"not a napari-cosynth pair description (expected format {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(
            path,
            f"format version {version!r} is newer than this napari-cosynth reads ({FORMAT_VERSION}); "
            "update napari-cosynth",
        )
    if "vocabulary" not in meta:
        raise DatasetError(path, "meta.json has no 'vocabulary'")
    return meta


def _read_tif(path: Path) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path))
    except Exception as err:  # tifffile raises several types for damaged files
        raise DatasetError(
            path, f"cannot read the TIFF ({type(err).__name__}: {err}); it may be truncated"
        ) from err


def _read_map(path: Path, shape, dtype) -> np.ndarray:
    array = _read_tif(path)
    if array.dtype != dtype:
        raise DatasetError(path, f"expected {np.dtype(dtype).name} values, got {array.dtype}")
    if shape is not None and array.shape != tuple(shape):
        raise DatasetError(path, f"is {array.shape} but the pair is {tuple(shape)}; they must match")
    return array


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read the table ({err})") from err
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
        raise DatasetError(path, f"expected the columns {','.join(columns)}, got {reader.fieldnames}")
    return list(reader)


def _class_of(row: dict[str, str], line: int, path: Path, vocabulary: Vocabulary) -> int:
    try:
        class_id = int(row["class_id"])
    except (TypeError, ValueError):
        raise DatasetError(path, f"line {line}: class_id {row['class_id']!r} is not a whole number") from None
    if not 1 <= class_id < vocabulary.n_classes:
        raise DatasetError(
            path,
            f"line {line}: class id {class_id} is outside 1..{vocabulary.n_classes - 1} "
            f"({', '.join(vocabulary.nucleus_classes)})",
        )
    if row["class_name"] != vocabulary.names[class_id]:
        raise DatasetError(
            path,
            f"line {line}: class id {class_id} is {vocabulary.names[class_id]!r} in this pair's "
            f"vocabulary, but the row names it {row['class_name']!r}",
        )
    return class_id


def _read_classes(path: Path, vocabulary: Vocabulary) -> np.ndarray:
    rows = _read_rows(path, ("id", "class_id", "class_name"))
    classes = np.zeros(len(rows), dtype=np.int64)
    for k, row in enumerate(rows):
        if row["id"] != str(k + 1):
            raise DatasetError(
                path, f"line {k + 2}: expected id {k + 1}, got {row['id']!r} (ids run 1..N in order)"
            )
        classes[k] = _class_of(row, k + 2, path, vocabulary)
    return classes

