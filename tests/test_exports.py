"""Round trips of the training-data exports through the project's own readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cosynth.data import exports
from napari_cosynth.data.folder import write_sample
from napari_cosynth.data.hovernet_npy import HovernetNpyDataset, read_hovernet_patch
from napari_cosynth.data.registry import open_dataset
from napari_cosynth.errors import CosynthError, DatasetError
from napari_cosynth.sample import Sample
from napari_cosynth.vocabularies import CONSEP, LIZARD


def make_pair(seed: int, shape=(40, 48), vocabulary=CONSEP, n=6, name=None) -> Sample:
    """Random non-overlapping disks with random classes, and a random image."""
    rng = np.random.default_rng(seed)
    h, w = shape
    instances = np.zeros(shape, dtype=np.int32)
    yy, xx = np.mgrid[:h, :w]
    k = 0
    for _ in range(n):
        cy, cx, r = rng.integers(4, h - 4), rng.integers(4, w - 4), rng.integers(2, 5)
        disk = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (instances == 0)
        if disk.any():
            k += 1
            instances[disk] = k
    classes = rng.integers(1, vocabulary.n_classes, size=k)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Sample(image, instances, classes, vocabulary, tissue="colon", magnification=20.0,
                  name=name or f"pair-{seed:06d}")


def assert_same_pair(a: Sample, b: Sample) -> None:
    """Same image, same instances up to renumbering, same class per instance."""
    np.testing.assert_array_equal(a.image, b.image)
    assert (a.instances > 0).sum() == (b.instances > 0).sum()
    np.testing.assert_array_equal(a.instances > 0, b.instances > 0)
    fg = a.instances > 0
    links = np.unique(np.stack([a.instances[fg], b.instances[fg]], axis=1), axis=0)
    # A bijection: every id on either side is linked to exactly one id on the other.
    assert len(links) == len(np.unique(links[:, 0])) == len(np.unique(links[:, 1])) == len(a.classes)
    assert len(b.classes) == len(a.classes)
    np.testing.assert_array_equal(a.classes[links[:, 0] - 1], b.classes[links[:, 1] - 1])


def test_hovernet_patch_round_trip(tmp_path):
    pairs = [make_pair(s) for s in range(3)]
    exports.export_hovernet(pairs, tmp_path / "hv")
    data = np.load(tmp_path / "hv" / "pair-000001.npy")
    assert data.shape == (40, 48, 5) and data.dtype == np.int32
    back = HovernetNpyDataset(tmp_path / "hv")
    assert back.names == [p.name for p in pairs]
    assert back.vocabulary == CONSEP
    for pair, read in zip(pairs, back, strict=True):
        assert_same_pair(pair, read)


def test_hovernet_patch_classes_come_from_the_instances_and_overwriting_is_optional(tmp_path):
    pair = make_pair(7)
    painted = pair.semantic_map().copy()
    painted[pair.instances == 1] = 0  # a semantic map that disagrees with instance 1's class
    pair = pair.with_(semantic=painted)
    path = exports.write_hovernet_patch(pair, tmp_path, "p")
    np.testing.assert_array_equal(np.load(path)[..., 4], pair.with_(semantic=None).semantic_map())
    exports.write_hovernet_patch(pair, tmp_path, "p")  # bulk runs rewrite a patch they redo
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        exports.write_hovernet_patch(pair, tmp_path, "p", overwrite=False)


def test_hovernet_reader_votes_each_nucleus_class_and_refuses_unusable_classes(tmp_path):
    patch = np.zeros((4, 6, 5), np.int32)
    patch[:, :3, 3], patch[:, 3:, 3] = 5, 9  # two nuclei, ids with gaps
    patch[:, :3, 4] = [[2, 2, 0]] * 4  # background pixels do not outvote class 2
    patch[:, 3:, 4] = [[1, 3, 3]] * 4  # the majority wins inside a nucleus
    np.save(tmp_path / "p.npy", patch)
    sample = read_hovernet_patch(tmp_path / "p.npy")
    assert list(sample.classes) == [2, 3] and sample.instances.max() == 2
    for channel, message in ((np.where(patch[..., 4] == 3, 9, patch[..., 4]), "class id 9, outside 0..4"),
                             (np.where(patch[..., 3] == 5, 0, patch[..., 4]), "class 0 .background.")):
        bad = patch.copy()
        bad[..., 4] = channel
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(DatasetError, match=message):
            read_hovernet_patch(tmp_path / "bad.npy")


def test_hovernet_reader_refuses_wrong_shape(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((4, 4, 4), dtype=np.int32))
    with pytest.raises(DatasetError, match=r"bad\.npy.*\(H, W, 5\)"):
        read_hovernet_patch(tmp_path / "bad.npy")


def test_pannuke_fold_round_trip_from_pair_folders(tmp_path):
    pairs = [make_pair(s) for s in range(4)]
    paths = [write_sample(p, tmp_path / "pairs") for p in pairs]
    fold = exports.export_pannuke(paths, tmp_path / "pannuke")
    masks = np.load(fold / "masks.npy")
    assert masks.shape == (4, 40, 48, 6)
    np.testing.assert_array_equal(masks[0, :, :, 5], pairs[0].instances == 0)
    types = np.load(fold / "types.npy", allow_pickle=False)
    assert types.dtype.kind == "U" and list(types) == ["Colon"] * 4
    assert json.loads((fold / "classes.json").read_text())["vocabulary"] == list(CONSEP.names)
    back = open_dataset(fold, "pannuke")
    assert len(back) == 4
    for pair, read in zip(pairs, back, strict=True):
        assert_same_pair(pair, read)
        assert read.tissue == "Colon"


def test_pannuke_refuses_too_many_classes_and_mixed_sizes(tmp_path):
    with pytest.raises(CosynthError, match="PanNuke export holds at most 5"):
        exports.export_pannuke([make_pair(0, vocabulary=LIZARD)], tmp_path / "a")
    with pytest.raises(CosynthError, match="one size"):
        exports.export_pannuke([make_pair(0), make_pair(1, shape=(32, 32))], tmp_path / "b")
    assert not (tmp_path / "b").exists()  # nothing half-written under the final name


def test_lizard_round_trip(tmp_path):
    pairs = [make_pair(s, vocabulary=LIZARD) for s in range(3)]
    folder = exports.export_lizard(pairs, tmp_path / "lizard")
    back = open_dataset(folder, "lizard")
    assert back.names == [p.name for p in pairs]
    for pair, read in zip(pairs, back, strict=True):
        assert_same_pair(pair, read)


def test_lizard_label_fields(tmp_path):
    import scipy.io as sio

    pair = make_pair(5)
    exports.write_lizard_label(pair, tmp_path / "x.mat")
    mat = sio.loadmat(tmp_path / "x.mat")
    n = len(pair.classes)
    assert mat["id"].shape == (n, 1) and mat["class"].shape == (n, 1)
    assert mat["bbox"].shape == (n, 4) and mat["centroid"].shape == (n, 2)
    rows, cols = np.nonzero(pair.instances == 1)
    assert list(mat["bbox"][0]) == [rows.min() + 1, rows.max() + 1, cols.min() + 1, cols.max() + 1]
    np.testing.assert_allclose(mat["centroid"][0], [cols.mean() + 1, rows.mean() + 1])


def test_empty_pair_exports(tmp_path):
    empty = Sample(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.int32), [], CONSEP, name="e")
    back = open_dataset(exports.export_pannuke([empty], tmp_path / "p"), "pannuke")[0]
    assert back.n_nuclei == 0
    assert read_hovernet_patch(exports.write_hovernet_patch(empty, tmp_path / "h")).n_nuclei == 0
    back = open_dataset(exports.export_lizard([empty], tmp_path / "l"), "lizard")[0]
    assert back.n_nuclei == 0
