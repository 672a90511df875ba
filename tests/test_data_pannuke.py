import numpy as np
import pytest

from data_fixtures import truncate, write_pannuke
from napari_cosynth.data import open_dataset, read_dataset
from napari_cosynth.data.pannuke import merge_channels
from napari_cosynth.errors import DatasetError
from napari_cosynth.vocabularies import PANNUKE


def test_reads_the_official_nested_layout(tmp_path):
    images, masks, types = write_pannuke(tmp_path, n=3)
    ds = open_dataset(tmp_path, "pannuke")
    assert len(ds) == 3 and ds.names == ["fold1_00000", "fold1_00001", "fold1_00002"]
    for i, s in enumerate(ds):
        np.testing.assert_array_equal(s.image, images[i].astype(np.uint8))
        assert s.image.dtype == np.uint8 and s.tissue == types[i]
        assert s.vocabulary == PANNUKE and s.magnification == 40.0
        # six nuclei per patch, ids repeating across channels, each keeps its channel as class
        assert s.n_nuclei == 6 and s.instances.max() == 6
        for k in range(1, 7):
            pixels = s.instances == k
            channels = np.flatnonzero(masks[i][pixels].sum(axis=0)[:5])
            assert list(channels + 1) == [s.classes[k - 1]]
        np.testing.assert_array_equal(s.instances > 0, masks[i, :, :, :5].sum(axis=2) > 0)


def test_flat_fold_folder_and_uint8_images(tmp_path):
    images, _, _ = write_pannuke(tmp_path, n=2, nested=False, float_images=False)
    s = next(read_dataset(tmp_path, "pannuke"))
    np.testing.assert_array_equal(s.image, images[0])


def test_arrays_are_memory_mapped(tmp_path):
    write_pannuke(tmp_path, n=2)
    ds = open_dataset(tmp_path, "pannuke")
    assert isinstance(ds._images, np.memmap) and isinstance(ds._masks, np.memmap)


def test_overlapping_channels_keep_the_lower_channel():
    masks = np.zeros((8, 8, 6))
    masks[1:4, 1:4, 0] = 3
    masks[2:6, 2:6, 2] = 3  # same id, other channel, overlapping
    instances, classes = merge_channels(masks, "m.npy")
    np.testing.assert_array_equal(classes, [1, 3])
    assert instances[2, 2] == 1 and instances[5, 5] == 2


def test_several_folds_are_ambiguous(tmp_path):
    write_pannuke(tmp_path / "a", n=2)
    write_pannuke(tmp_path / "b", n=2)
    with pytest.raises(DatasetError, match="found 2 images.npy files .*pass one fold's folder"):
        open_dataset(tmp_path, "pannuke")


def test_missing_file(tmp_path):
    write_pannuke(tmp_path, n=2)
    (tmp_path / "Fold 1" / "images" / "fold1" / "types.npy").unlink()
    with pytest.raises(DatasetError, match="no types.npy found"):
        open_dataset(tmp_path, "pannuke")


def test_object_types_are_refused_not_unpickled(tmp_path):
    write_pannuke(tmp_path, n=2)
    np.save(tmp_path / "Fold 1" / "images" / "fold1" / "types.npy", np.array(["Breast", 3], dtype=object))
    with pytest.raises(DatasetError, match="refuses to"):
        open_dataset(tmp_path, "pannuke")


def test_truncated_npy(tmp_path):
    write_pannuke(tmp_path, n=2)
    truncate(tmp_path / "Fold 1" / "masks" / "fold1" / "masks.npy")
    with pytest.raises(DatasetError, match="masks.npy: cannot read the .npy file"):
        open_dataset(tmp_path, "pannuke")


def test_counts_and_sizes_must_agree(tmp_path):
    images, _masks, types = write_pannuke(tmp_path, n=3)
    folder = tmp_path / "Fold 1" / "images" / "fold1"
    np.save(folder / "types.npy", types[:2])
    with pytest.raises(DatasetError, match="different numbers of patches .*types.npy 2"):
        open_dataset(tmp_path, "pannuke")
    np.save(folder / "types.npy", types)
    np.save(folder / "images.npy", images[:, :30])
    with pytest.raises(DatasetError, match="must match pixel for pixel"):
        open_dataset(tmp_path, "pannuke")


def test_bad_values(tmp_path):
    images, masks, _ = write_pannuke(tmp_path, n=2)
    folder = tmp_path / "Fold 1"
    images[1, 0, 0, 0] = 300.0
    np.save(folder / "images" / "fold1" / "images.npy", images)
    masks[0, 0, 0, 1] = 0.5
    np.save(folder / "masks" / "fold1" / "masks.npy", masks)
    ds = open_dataset(tmp_path, "pannuke")
    with pytest.raises(DatasetError, match="whole numbers"):
        ds[0]
    with pytest.raises(DatasetError, match="outside 0..255"):
        ds[1]
