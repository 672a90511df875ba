import imageio.v3 as iio
import numpy as np
import pytest

from data_fixtures import save_mat, truncate, write_lizard
from napari_cosynth.data import open_dataset
from napari_cosynth.errors import DatasetError
from napari_cosynth.vocabularies import LIZARD


def _label(root, name):
    return root / "lizard_labels" / "Lizard_Labels" / "Labels" / f"{name}.mat"


def test_reads_the_release_layout_through_the_id_column(tmp_path):
    written = write_lizard(tmp_path, n=3)
    ds = open_dataset(tmp_path, "lizard")
    assert ds.names == ["consep_1", "consep_2", "consep_3"]
    for s in ds:
        image, inst_map, ids, classes = written[s.name]
        np.testing.assert_array_equal(s.image, image)
        assert s.vocabulary == LIZARD and s.magnification == 20.0 and s.tissue == "colon"
        assert s.instances.max() == 5 == s.n_nuclei
        # every renumbered nucleus keeps the class its original id had
        for k in range(1, 6):
            original = np.unique(inst_map[s.instances == k])
            assert len(original) == 1
            assert s.classes[k - 1] == classes[list(ids).index(original[0])]
        np.testing.assert_array_equal(s.instances > 0, inst_map > 0)


def test_rows_without_pixels_are_dropped(tmp_path):
    write_lizard(tmp_path, n=1)
    inst_map = np.zeros((40, 40), np.int32)
    inst_map[2:6, 2:6] = 11
    save_mat(_label(tmp_path, "consep_1"), inst_map=inst_map, id=np.array([[4], [11]]),
             **{"class": np.array([[6], [3]])})
    s = open_dataset(tmp_path, "lizard")[0]
    np.testing.assert_array_equal(s.classes, [3])


def test_id_without_a_row(tmp_path):
    write_lizard(tmp_path, n=1)
    inst_map = np.zeros((40, 40), np.int32)
    inst_map[2:6, 2:6] = 11
    inst_map[10:16, 10:16] = 12
    save_mat(_label(tmp_path, "consep_1"), inst_map=inst_map, id=np.array([[11]]),
             **{"class": np.array([[2]])})
    with pytest.raises(DatasetError, match="nucleus id 12 which has no row in 'id'"):
        open_dataset(tmp_path, "lizard")[0]


def test_id_and_class_lengths_differ(tmp_path):
    write_lizard(tmp_path, n=1)
    save_mat(_label(tmp_path, "consep_1"), inst_map=np.zeros((40, 40), np.int32),
             id=np.array([[1], [2]]), **{"class": np.array([[2]])})
    with pytest.raises(DatasetError, match="'id' has 2 rows but 'class' has 1"):
        open_dataset(tmp_path, "lizard")[0]


def test_class_outside_vocabulary(tmp_path):
    write_lizard(tmp_path, n=1)
    inst_map = np.zeros((40, 40), np.int32)
    inst_map[2:6, 2:6] = 1
    save_mat(_label(tmp_path, "consep_1"), inst_map=inst_map, id=np.array([[1]]),
             **{"class": np.array([[7]])})
    with pytest.raises(DatasetError, match="class id 7, outside 1..6"):
        open_dataset(tmp_path, "lizard")[0]


def test_missing_key_truncated_mat_and_size_mismatch(tmp_path):
    write_lizard(tmp_path, n=2)
    save_mat(_label(tmp_path, "consep_1"), inst_map=np.zeros((40, 40), np.int32), id=np.zeros((0, 1)))
    ds = open_dataset(tmp_path, "lizard")
    with pytest.raises(DatasetError, match="no 'class' key"):
        ds[0]
    truncate(_label(tmp_path, "consep_2"))
    with pytest.raises(DatasetError, match="cannot read the .mat file"):
        ds[1]
    write_lizard(tmp_path / "again", n=1)
    iio.imwrite(tmp_path / "again" / "lizard_images1" / "Lizard_Images1" / "consep_1.png",
                np.zeros((41, 40, 3), np.uint8))
    with pytest.raises(DatasetError, match="must match pixel for pixel"):
        open_dataset(tmp_path / "again", "lizard")[0]


def test_image_without_label(tmp_path):
    write_lizard(tmp_path, n=2)
    _label(tmp_path, "consep_2").unlink()
    with pytest.raises(DatasetError, match="image without a label file"):
        open_dataset(tmp_path, "lizard")


def test_no_labels_folder(tmp_path):
    (tmp_path / "lizard_images1" / "Lizard_Images1").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no Labels folder"):
        open_dataset(tmp_path, "lizard")
