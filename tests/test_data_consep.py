from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from data_fixtures import disk_instances, save_mat, truncate, write_consep
from napari_cosynth.data import count_samples, open_dataset, read_dataset
from napari_cosynth.data.consep import ConsepDataset
from napari_cosynth.errors import DatasetError
from napari_cosynth.vocabularies import CONSEP

REAL = Path("/work/shared/data/consep")


def test_reads_merged_scheme_pairs(tmp_path):
    written = write_consep(tmp_path, [[1, 2, 3], [4, 4], []])
    samples = list(read_dataset(tmp_path, "consep"))
    assert [s.name for s in samples] == ["patch_0", "patch_1", "patch_2"]
    for s in samples:
        image, instances, types = written[s.name]
        np.testing.assert_array_equal(s.image, image)
        np.testing.assert_array_equal(s.instances, instances)
        np.testing.assert_array_equal(s.classes, types)
        assert s.vocabulary == CONSEP and s.tissue == "colon" and s.magnification == 40.0
        assert s.points is None and s.instances.dtype == np.int32
    assert samples[2].n_nuclei == 0


def test_random_access_and_names(tmp_path):
    write_consep(tmp_path, [[1], [2, 2], [3, 3, 3]], image_suffix=".jpg")
    ds = open_dataset(tmp_path, "consep")
    assert len(ds) == 3 == count_samples(tmp_path, "consep")
    assert ds.names == ["patch_0", "patch_1", "patch_2"]
    assert ds[-1].n_nuclei == 3 and ds[1].name == "patch_1"
    with pytest.raises(IndexError):
        ds[3]


def test_original_seven_classes_are_merged_for_the_whole_folder(tmp_path):
    # patch_1 holds only ids <= 4, but the folder uses the 7-class scheme: its 4 (malignant
    # epithelial) must become epithelial (3), not spindle-shaped.
    write_consep(tmp_path, [[1, 2, 5, 6, 7], [3, 4]])
    ds = ConsepDataset(tmp_path)
    assert ds.scheme == "original"
    np.testing.assert_array_equal(ds[0].classes, [1, 2, 4, 4, 4])
    np.testing.assert_array_equal(ds[1].classes, [3, 3])


def test_forced_scheme_and_unknown_scheme(tmp_path):
    write_consep(tmp_path, [[3, 4]])
    assert ConsepDataset(tmp_path).scheme == "merged"
    np.testing.assert_array_equal(ConsepDataset(tmp_path, scheme="original")[0].classes, [3, 3])
    with pytest.raises(DatasetError, match="unknown CoNSeP class scheme"):
        ConsepDataset(tmp_path, scheme="nine")


def test_gaps_in_ids_are_renumbered_keeping_classes(tmp_path):
    write_consep(tmp_path, [[1]])
    instances = disk_instances((32, 32), [(5, 5), (20, 20)])
    instances[instances == 2] = 5  # ids 1 and 5 present, 2..4 absent
    save_mat(tmp_path / "Labels" / "patch_0.mat", inst_map=instances,
             inst_type=np.array([[2], [1], [1], [1], [4]]))
    s = open_dataset(tmp_path, "consep")[0]
    assert set(np.unique(s.instances)) == {0, 1, 2}
    np.testing.assert_array_equal(s.classes, [2, 4])
    assert s.instances[20, 20] == 2


def test_untyped_nuclei_become_other(tmp_path):
    write_consep(tmp_path, [[0, 2, 0]])
    s = open_dataset(tmp_path, "consep")[0]
    np.testing.assert_array_equal(s.classes, [1, 2, 1])
    assert s.provenance["untyped_as_other"] == 2


def test_class_table_shorter_than_instances(tmp_path):
    write_consep(tmp_path, [[1, 2, 3]])
    instances = disk_instances((32, 32), [(5, 5), (5, 15), (5, 25)])
    save_mat(tmp_path / "Labels" / "patch_0.mat", inst_map=instances, inst_type=np.array([[1], [2]]))
    with pytest.raises(DatasetError, match="inst_type has only 2 rows") as err:
        open_dataset(tmp_path, "consep")[0]
    assert "patch_0.mat" in str(err.value)


def test_image_and_label_sizes_differ(tmp_path):
    write_consep(tmp_path, [[1]])
    iio.imwrite(tmp_path / "Images" / "patch_0.png", np.zeros((30, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="must match pixel for pixel"):
        open_dataset(tmp_path, "consep")[0]


def test_class_outside_the_vocabulary(tmp_path):
    write_consep(tmp_path, [[1, 9]])
    with pytest.raises(DatasetError, match="class id 9"):
        open_dataset(tmp_path, "consep")


def test_mat_missing_a_key(tmp_path):
    write_consep(tmp_path, [[1]])
    save_mat(tmp_path / "Labels" / "patch_0.mat", inst_map=np.zeros((32, 32), np.int32))
    with pytest.raises(DatasetError, match="no 'inst_type' key .*holds inst_map"):
        open_dataset(tmp_path, "consep")


def test_truncated_mat(tmp_path):
    write_consep(tmp_path, [[1, 2], [1]])
    truncate(tmp_path / "Labels" / "patch_1.mat")
    with pytest.raises(DatasetError, match="patch_1.mat: cannot read the .mat file"):
        list(read_dataset(tmp_path, "consep"))


def test_truncated_image(tmp_path):
    write_consep(tmp_path, [[1, 2]])
    truncate(tmp_path / "Images" / "patch_0.png")
    with pytest.raises(DatasetError, match="patch_0.png: cannot read the image"):
        open_dataset(tmp_path, "consep")[0]


def test_image_without_label_and_label_without_image(tmp_path):
    write_consep(tmp_path, [[1], [2]])
    (tmp_path / "Labels" / "patch_1.mat").unlink()
    with pytest.raises(DatasetError, match="image without a label file"):
        open_dataset(tmp_path, "consep")
    (tmp_path / "Images" / "patch_1.png").unlink()
    (tmp_path / "Images" / "patch_0.png").unlink()
    with pytest.raises(DatasetError, match="label file without an image"):
        open_dataset(tmp_path, "consep")


def test_layout_errors_say_what_to_pass(tmp_path):
    write_consep(tmp_path / "Train", [[1]])
    write_consep(tmp_path / "Test", [[1]])
    with pytest.raises(DatasetError, match="holds the splits Test, Train; pass one split folder"):
        open_dataset(tmp_path, "consep")
    (tmp_path / "Train" / "Labels" / "patch_0.mat").unlink()
    (tmp_path / "Train" / "Labels").rmdir()
    with pytest.raises(DatasetError, match="Labels/ is missing"):
        open_dataset(tmp_path / "Train", "consep")


def test_rgba_and_float_inst_map(tmp_path):
    # Original CoNSeP tiles are RGBA PNGs; some exports store inst_map as double.
    write_consep(tmp_path, [[1, 2]])
    rgba = np.full((32, 32, 4), 255, np.uint8)
    iio.imwrite(tmp_path / "Images" / "patch_0.png", rgba)
    instances = disk_instances((32, 32), [(5, 5), (20, 20)]).astype(np.float64)
    save_mat(tmp_path / "Labels" / "patch_0.mat", inst_map=instances, inst_type=np.array([[1.0], [2.0]]))
    s = open_dataset(tmp_path, "consep")[0]
    assert s.image.shape == (32, 32, 3) and s.n_nuclei == 2


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="shared CoNSeP data not present")
def test_real_consep_counts_and_a_patch():
    assert count_samples(REAL / "train", "consep") == 432
    assert count_samples(REAL / "test", "consep") == 112
    ds = open_dataset(REAL / "test", "consep")
    s = ds[0]
    assert ds.scheme == "merged"
    assert s.image.shape == (256, 256, 3) and s.instances.shape == (256, 256)
    assert s.n_nuclei == int(s.instances.max()) > 0
