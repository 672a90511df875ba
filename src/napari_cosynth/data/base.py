"""What every dataset reader shares: lazy random access, and file loaders that name the file at fault.

Readers list their files when a dataset is opened and read one sample per index, so a training loop
can draw random patches from a dataset larger than memory and the CLI can stream one. Whatever library
fails on a file (Pillow, tifffile, scipy.io, numpy), the caller sees one :class:`DatasetError` naming
that file and saying what is wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..sample import Sample, Vocabulary

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format: its reader and what its files do not say (classes, staining, masks).

    Each reader module declares its entry beside its reader (``DATASET_FORMAT = DatasetFormat(...)``)
    and :mod:`.registry` lists them, so the CLI's choices, the formats training accepts and the stain
    written into training prompts all come from one place.

    Attributes
    ----------
    name : str
        What users pass as ``--format``.
    reader : type
        The :class:`LazyDataset` subclass, called as ``reader(path, magnification=...)``.
    vocabulary : Vocabulary or None
        The classes its samples carry; None when each sample brings its own (the folder format).
    has_masks : bool
        True when its samples carry instance masks, which the joint model and the segmenter train
        on; False for points-only formats (EndoNuke), good for layouts and detection scores only.
    staining : str or None
        "H&E", "IHC"...; None when the format does not fix it.
    magnification : float or None
        The magnification the reader gives samples whose files do not record one: every sample of
        CoNSeP, PanNuke and Lizard; EndoNuke's when the image width does not tell. None when each
        sample records its own (the folder format).
    tissues : tuple of str
        The tissue names its samples carry; empty when each sample records its own.
    """

    name: str
    reader: type[LazyDataset]
    vocabulary: Vocabulary | None
    has_masks: bool
    staining: str | None = None
    magnification: float | None = None
    tissues: tuple[str, ...] = ()


class LazyDataset(Sequence):
    """Samples of one dataset, read from disk when indexed.

    Subclasses fill ``names`` (one unique name per sample) and implement ``_read(i)``. With a target
    ``magnification`` every sample read at another magnification is resampled to it.
    """

    format: str = ""

    def __init__(self, root: str | Path, names: list[str], *, magnification: float | None = None):
        self.root = Path(root)
        self.names = list(names)
        self.magnification = check_magnification(magnification)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Sample:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"a dataset is indexed by an integer, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range: {self.root} holds {n} samples")
        return at_magnification(self._read(int(i) % n), self.magnification)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {str(self.root)!r}: {len(self)} samples>"

    def indices_of(self, names) -> list[int]:
        """Positions of the samples called ``names``, in the order given.

        Lets a caller work on a subset of a split by name (names survive files being added to the
        folder, positions do not). An unknown name is a :class:`DatasetError` naming it.
        """
        position = {name: i for i, name in enumerate(self.names)}
        names = [str(n) for n in names]
        missing = [n for n in names if n not in position]
        if missing:
            raise DatasetError(
                self.root,
                f"holds no sample called {missing[0]!r} ({len(missing)} of the {len(names)} names asked "
                "for are unknown); the subset was chosen from another version of this folder",
            )
        return [position[n] for n in names]

    def _read(self, i: int) -> Sample:
        raise NotImplementedError


def check_magnification(magnification: float | None) -> float | None:
    """None, or a positive magnification within :data:`napari_cosynth.limits.MAX_MAGNIFICATION`."""
    if magnification is None:
        return None
    from ..limits import check_magnification as check

    return check(magnification)


def at_magnification(sample: Sample, magnification: float | None) -> Sample:
    """``sample`` resampled to ``magnification`` (unchanged when None or already there)."""
    if magnification is None or math.isclose(sample.magnification, magnification, rel_tol=1e-6):
        return sample
    # Imported here: the resampler lives in labels/ and only readers asked to rescale need it.
    from ..labels.resample import resample_sample

    return resample_sample(sample, magnification)


def make_sample(path: str | Path, **fields) -> Sample:
    """Build a :class:`Sample`, turning its consistency errors into a DatasetError naming ``path``."""
    try:
        return Sample(**fields)
    except ValueError as err:
        raise DatasetError(path, str(err)) from err


# ---------------------------------------------------------------------------------------- finding files


def require_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    if not path.is_dir():
        raise DatasetError(path, "expected a folder, got a file")
    return path


def child_dir(root: Path, name: str) -> Path | None:
    """The sub-folder of ``root`` called ``name``, ignoring case (releases differ: Images/images)."""
    exact = root / name
    if exact.is_dir():
        return exact
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name.lower() == name.lower():
            return entry
    return None


def visible(path: Path) -> bool:
    """False for hidden files and folders (names starting with '.'), e.g. unfinished writes."""
    return not path.name.startswith(".")


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Visible files of ``folder`` with one of ``suffixes`` (any case), keyed by name without suffix."""
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or not visible(entry) or entry.suffix.lower() not in suffixes:
            continue
        if entry.stem in found:
            raise DatasetError(
                folder,
                f"two files share the name {entry.stem!r} ({found[entry.stem].name}, {entry.name}); "
                "keep one of them",
            )
        found[entry.stem] = entry
    return found


def pair_by_stem(
    images: dict[str, Path], labels: dict[str, Path], where: Path
) -> list[tuple[str, Path, Path]]:
    """(name, image, label) for every name; an image or a label without its partner is an error."""
    lonely_images = sorted(set(images) - set(labels))
    if lonely_images:
        raise DatasetError(
            images[lonely_images[0]],
            f"image without a label file ({len(lonely_images)} such image(s) in {where}, e.g. "
            f"{', '.join(lonely_images[:3])}); add the labels or move the images out",
        )
    lonely_labels = sorted(set(labels) - set(images))
    if lonely_labels:
        raise DatasetError(
            labels[lonely_labels[0]],
            f"label file without an image ({len(lonely_labels)} such label(s) in {where}, e.g. "
            f"{', '.join(lonely_labels[:3])}); add the images or move the labels out",
        )
    return [(stem, images[stem], labels[stem]) for stem in sorted(images)]


# ---------------------------------------------------------------------------------------- reading files


def read_image(path: str | Path) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image; grey images are repeated to RGB and an alpha channel dropped."""
    path = Path(path)
    tiff = path.suffix.lower() in (".tif", ".tiff")
    try:
        # The header first: a small file can declare a canvas of billions of pixels.
        shape = _declared_shape(path, tiff)
    except Exception as err:  # noqa: BLE001 - every decoder has its own exceptions; all mean unreadable
        raise DatasetError(
            path, f"cannot read the image ({type(err).__name__}: {err}); it may be truncated or corrupt"
        ) from None
    if len(shape) >= 2:
        from ..limits import check_pixels

        check_pixels(int(shape[0]), int(shape[1]), f"{path}: the image",
                     "cut it into tiles no larger than that")
    try:
        if tiff:
            import tifffile

            image = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            image = iio.imread(path)
    except Exception as err:  # every decoder has its own exceptions; all mean "unreadable"
        raise DatasetError(
            path, f"cannot read the image ({type(err).__name__}: {err}); it may be truncated or corrupt"
        ) from err
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DatasetError(path, f"expected an RGB image, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        raise DatasetError(path, f"expected an 8-bit RGB image, got pixel type {image.dtype}")
    # Original CoNSeP tiles are RGBA PNGs with an opaque alpha channel.
    return np.ascontiguousarray(image[:, :, :3])


def _declared_shape(path: Path, tiff: bool) -> tuple[int, ...]:
    """The array shape an image file declares, read from its header without decoding the pixels."""
    if tiff:
        import tifffile

        with tifffile.TiffFile(path) as file:
            return tuple(file.series[0].shape) if file.series else ()
    import warnings

    import imageio.v3 as iio

    with warnings.catch_warnings():  # Pillow's decompression-bomb warning: the size is checked here
        warnings.simplefilter("ignore")
        return tuple(iio.improps(path).shape)


def load_mat(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of a MATLAB .mat file; a missing key or an unreadable file is an error."""
    import scipy.io as sio

    path = Path(path)

    def load(names):
        try:
            return sio.loadmat(path, variable_names=names)
        except Exception as err:  # scipy raises ValueError, OSError, zlib.error... for bad files
            raise DatasetError(
                path,
                f"cannot read the .mat file ({type(err).__name__}: {err}); it may be truncated or corrupt",
            ) from err

    contents = load(list(keys))
    missing = [k for k in keys if k not in contents]
    if missing:
        # scipy seeks past variables it was not asked for and stops quietly at the end of the file,
        # so a file cut short looks like one missing keys; reading everything tells them apart.
        held = [k for k in load(None) if not k.startswith("__")]
        raise DatasetError(
            path, f"the .mat file has no {missing[0]!r} key (it holds {', '.join(held) or 'nothing'})"
        )
    return {k: contents[k] for k in keys}


def integer_array(array, path: str | Path, what: str) -> np.ndarray:
    """``array`` as int64, refusing non-numeric, non-finite or fractional values."""
    array = np.asarray(array)
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64, copy=False)
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetError(path, f"{what} must hold numbers, got {array.dtype}")
    if not np.isfinite(array).all() or (array != np.round(array)).any():
        raise DatasetError(path, f"{what} must hold whole numbers, found NaN, infinite or fractional values")
    return array.astype(np.int64)


def label_matrix(array, path: str | Path, what: str) -> np.ndarray:
    """A 2-D non-negative integer map (instance ids)."""
    array = integer_array(array, path, what)
    if array.ndim != 2:
        raise DatasetError(path, f"{what} must be a 2-D map, got shape {array.shape}")
    if array.size and array.min() < 0:
        raise DatasetError(path, f"{what} holds a negative id ({int(array.min())})")
    return array


def column(array, path: str | Path, what: str) -> np.ndarray:
    """An (N, 1) or (1, N) MATLAB column/row as a flat int64 vector."""
    array = integer_array(array, path, what)
    if array.ndim > 2 or (array.ndim == 2 and min(array.shape) > 1):
        raise DatasetError(path, f"{what} must be a column of N values, got shape {array.shape}")
    return array.reshape(-1)


def sequential_instances(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber an instance map to 1..N in order of its ids; return the map and the old ids (N,).

    Ids absent from the map (gaps) disappear; the i-th old id becomes i + 1, so a class table indexed
    by old id can be re-ordered with the returned ids.
    """
    top = int(instances.max(initial=0))
    if top > 4 * instances.size + 1024:
        # Sparse, huge ids: a lookup table would be larger than the map, so sort instead.
        ids, inverse = np.unique(instances, return_inverse=True)
        inverse = inverse.reshape(instances.shape)
        if ids.size and ids[0] == 0:
            return inverse.astype(np.int32), ids[1:]
        return (inverse + 1).astype(np.int32), ids
    # Counting beats np.unique's full sort by ~10x on 256x256 maps (it dominated reading CoNSeP).
    present = np.bincount(instances.reshape(-1), minlength=top + 1)[1:] > 0
    ids = np.flatnonzero(present) + 1
    if len(ids) == top:
        return instances.astype(np.int32), ids
    lut = np.zeros(top + 1, dtype=np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[instances], ids


def check_same_size(image: np.ndarray | None, instances: np.ndarray, image_path, label_path) -> None:
    if image is not None and image.shape[:2] != instances.shape:
        raise DatasetError(
            label_path,
            f"the label is {instances.shape[0]}x{instances.shape[1]} (HxW) but its image "
            f"{Path(image_path).name} is {image.shape[0]}x{image.shape[1]}; they must match pixel "
            "for pixel",
        )


def check_class_range(classes: np.ndarray, n_classes: int, path, what: str, names) -> None:
    """Raise if any class id lies outside 1..n_classes."""
    bad = classes[(classes < 1) | (classes > n_classes)]
    if bad.size:
        raise DatasetError(
            path,
            f"{what} holds class id {int(bad[0])}, outside 1..{n_classes} ({', '.join(names)})",
        )
