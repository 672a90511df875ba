"""Small datasets written in each reader's real on-disk format, for the data reader tests.

Every helper writes into a folder the test gives it (tmp_path) and returns what it wrote, so tests can
compare what a reader returns against what went in.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import scipy.io as sio

from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.vocabularies import CONSEP


def disk_instances(shape, centres, radius=3) -> np.ndarray:
    """An instance map with one disk per centre (row, col), numbered 1..N in order."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    instances = np.zeros(shape, dtype=np.int32)
    for k, (r, c) in enumerate(centres, start=1):
        instances[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = k
    return instances


def grid_centres(shape, n, step=9, offset=5):
    """``n`` non-overlapping centres on a grid."""
    per_row = max(1, (shape[1] - offset) // step)
    return [(offset + (k // per_row) * step, offset + (k % per_row) * step) for k in range(n)]


def random_image(rng, shape) -> np.ndarray:
    return rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def write_consep(root: Path, classes_per_image, size=32, image_suffix=".png", rng=None):
    """A CoNSeP split folder (Images/ + Labels/); returns {name: (image, instances, inst_type)}."""
    rng = rng or np.random.default_rng(0)
    (root / "Images").mkdir(parents=True, exist_ok=True)
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    written = {}
    for k, types in enumerate(classes_per_image):
        name = f"patch_{k}"
        image = random_image(rng, (size, size))
        instances = disk_instances((size, size), grid_centres((size, size), len(types)))
        inst_type = np.asarray(types, dtype=np.int32).reshape(-1, 1)
        iio.imwrite(root / "Images" / f"{name}{image_suffix}", image)
        save_mat(root / "Labels" / f"{name}.mat", inst_map=instances, type_map=np.zeros_like(instances),
                 inst_type=inst_type, inst_centroid=np.zeros((len(types), 2)))
        written[name] = (image, instances, np.asarray(types))
    return written


def save_mat(path: Path, **arrays) -> None:
    sio.savemat(path, arrays, do_compression=True)


def write_pannuke(root: Path, n=3, size=32, nested=True, float_images=True, rng=None):
    """One PanNuke fold (official nested layout by default); returns (images, masks, types)."""
    rng = rng or np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, size, size, 3)).astype(np.float64 if float_images else np.uint8)
    masks = np.zeros((n, size, size, 6), dtype=np.float64)
    centres = grid_centres((size, size), 6)
    for i in range(n):
        for k, (r, c) in enumerate(centres):
            channel = (k + i) % 5
            disk = disk_instances((size, size), [(r, c)]) > 0
            # Ids restart per channel, as in the release: (channel, id) names a nucleus.
            masks[i, :, :, channel][disk] = 1 + k // 5
        masks[i, :, :, 5] = (masks[i, :, :, :5].sum(axis=2) == 0)
    types = np.array(["Breast", "Colon", "HeadNeck", "Liver"][:n] + ["Skin"] * max(0, n - 4))
    if nested:
        image_dir = root / "Fold 1" / "images" / "fold1"
        mask_dir = root / "Fold 1" / "masks" / "fold1"
    else:
        image_dir = mask_dir = root
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    np.save(image_dir / "images.npy", images)
    np.save(image_dir / "types.npy", types)
    np.save(mask_dir / "masks.npy", masks)
    return images, masks, types


def write_lizard(root: Path, n=2, size=40, rng=None):
    """A Lizard release folder with non-sequential nucleus ids.

    Returns {name: (image, inst_map, ids, classes)}.
    """
    rng = rng or np.random.default_rng(2)
    labels = root / "lizard_labels" / "Lizard_Labels" / "Labels"
    labels.mkdir(parents=True)
    written = {}
    for k in range(n):
        name = f"consep_{k + 1}"
        folder = root / f"lizard_images{k % 2 + 1}" / f"Lizard_Images{k % 2 + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        image = random_image(rng, (size, size))
        sequential = disk_instances((size, size), grid_centres((size, size), 5))
        ids = np.array([7, 3, 12, 40, 9])  # Lizard's ids need not be 1..N nor sorted
        inst_map = np.where(sequential > 0, ids[sequential - 1], 0).astype(np.int32)
        classes = np.array([1, 2, 3, 6, 5])
        # Rows are stored in a different order from the ids' order in the map.
        order = np.array([2, 0, 4, 1, 3])
        iio.imwrite(folder / f"{name}.png", image)
        save_mat(labels / f"{name}.mat", inst_map=inst_map, id=ids[order].reshape(-1, 1),
                 **{"class": classes[order].reshape(-1, 1)}, bbox=np.zeros((5, 4)),
                 centroid=np.zeros((5, 2)))
        written[name] = (image, inst_map, ids, classes)
    return written


def write_endonuke(root: Path, size=200, with_images=True, rng=None):
    """An EndoNuke release tree (data/dataset/...); returns {label path: (xy, class ids 0..2)}."""
    rng = rng or np.random.default_rng(3)
    dataset = root / "data" / "dataset"
    (dataset / "images").mkdir(parents=True)
    (dataset / "files_lists").mkdir()
    (dataset / "files_lists" / "bulk.txt").write_text("dataset/images/1.png\n")  # not keypoints
    written = {}
    for part, annotator, image_id in [("bulk", "ptg1", "1"), ("bulk", "stud2", "2"),
                                      ("agreement", "ptg1", "3"), ("agreement", "stud1", "3")]:
        folder = dataset / "labels" / part / annotator
        folder.mkdir(parents=True, exist_ok=True)
        n = int(rng.integers(3, 8))
        xy = rng.integers(0, size, size=(n, 2))
        classes = rng.integers(0, 3, size=n)
        lines = [f"{x} {y} {c}" for (x, y), c in zip(xy, classes, strict=True)]
        (folder / f"{image_id}.txt").write_text("\n".join(lines) + "\n")
        if with_images and not (dataset / "images" / f"{image_id}.png").exists():
            iio.imwrite(dataset / "images" / f"{image_id}.png", random_image(rng, (size, size)))
        written[folder / f"{image_id}.txt"] = (xy, classes)
    return written


def consep_sample(size=24, n=3, name="pair", with_maps=False, rng=None) -> Sample:
    """A small masked sample (CoNSeP vocabulary) for the folder-format tests."""
    rng = rng or np.random.default_rng(4)
    instances = disk_instances((size, size), grid_centres((size, size), n))
    classes = (np.arange(n) % 4) + 1
    extra = {}
    if with_maps:
        lut = np.r_[0, classes].astype(np.uint8)
        extra = {"semantic": lut[instances], "distance": (instances > 0).astype(np.float32) * 0.5}
    return Sample(
        image=random_image(rng, (size, size)), instances=instances, classes=classes, vocabulary=CONSEP,
        tissue="colon", magnification=40.0, name=name,
        provenance={"seed": np.int64(7), "prompt": "a prompt", "sampler": {"steps": 10, "eta": 0.0}},
        **extra,
    )


def points_sample(name="points", with_image=True) -> Sample:
    from napari_cosynth.vocabularies import ENDONUKE

    rng = np.random.default_rng(5)
    return Sample(
        image=random_image(rng, (20, 20)) if with_image else None, instances=None,
        classes=np.zeros(0), vocabulary=ENDONUKE, tissue="endometrium", magnification=40.0,
        name=name, points=PointTable(np.array([[1.5, 2.25], [10.0, 19.0]]), np.array([1, 3])),
    )


def truncate(path: Path, keep=0.5) -> None:
    """Cut a file to a fraction of its length, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def two_nuclei_pair(name="pair", provenance=None) -> Sample:
    """A 24 x 24 pair with two square nuclei (epithelial, spindle-shaped) and its points."""
    rng = np.random.default_rng(0)
    instances = np.zeros((24, 24), np.int32)
    instances[2:8, 2:8] = 1
    instances[12:20, 10:16] = 2
    return Sample(
        image=rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), instances=instances,
        classes=np.array([3, 4]), vocabulary=CONSEP, tissue="colon", magnification=20.0, name=name,
        points=PointTable([[4.5, 4.5], [12.5, 15.5]], [3, 4]), provenance=provenance or {},
    )
