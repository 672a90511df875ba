import imageio.v3 as iio
import numpy as np
import pytest

from data_fixtures import truncate, write_endonuke
from napari_cosynth.data import open_dataset, read_dataset
from napari_cosynth.errors import DatasetError
from napari_cosynth.vocabularies import ENDONUKE


def test_reads_the_release_tree_as_points_only_samples(tmp_path):
    written = write_endonuke(tmp_path)
    ds = open_dataset(tmp_path, "endonuke")
    # image 3 was labelled twice (agreement study): one sample per keypoint file, in path order
    assert ds.names == ["3-agreement-ptg1", "3-agreement-stud1", "1", "2"]
    assert open_dataset(tmp_path / "data", "endonuke").names == ds.names
    by_source = {}
    for s in ds:
        assert s.instances is None and not s.has_masks and s.vocabulary == ENDONUKE
        assert s.image.shape == (200, 200, 3) and s.magnification == 20.0
        assert s.tissue == "endometrium"
        by_source[s.provenance["source"]] = s
    for path, (xy, classes) in written.items():
        s = by_source[str(path)]
        np.testing.assert_array_equal(s.points.xy, xy)
        np.testing.assert_array_equal(s.points.classes, classes + 1)
        assert s.n_nuclei == len(classes)


def test_images_are_optional(tmp_path):
    write_endonuke(tmp_path, with_images=False)
    s = next(read_dataset(tmp_path, "endonuke"))
    assert s.image is None and s.magnification == 40.0 and len(s.points) > 0


def test_magnification_from_release_tile_width(tmp_path):
    write_endonuke(tmp_path, size=400)
    assert {s.magnification for s in open_dataset(tmp_path, "endonuke")} == {40.0}


def test_flat_folder_with_images_beside_and_empty_file(tmp_path):
    (tmp_path / "a.txt").write_text("1 2 0\n\n3 4 2\n")
    (tmp_path / "b.txt").write_text("")
    iio.imwrite(tmp_path / "a.png", np.zeros((10, 12, 3), np.uint8))
    a, b = open_dataset(tmp_path, "endonuke")
    np.testing.assert_array_equal(a.points.xy, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(a.points.classes, [1, 3])
    assert a.image.shape == (10, 12, 3) and a.magnification == 40.0
    assert b.image is None and len(b.points) == 0


def test_border_clicks_are_clamped_far_points_refused(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((10, 12, 3), np.uint8))
    (tmp_path / "a.txt").write_text("12 10 1\n")
    s = open_dataset(tmp_path, "endonuke")[0]
    np.testing.assert_array_equal(s.points.xy, [[11, 9]])
    (tmp_path / "a.txt").write_text("0 0 1\n30 5 1\n")
    with pytest.raises(DatasetError, match=r"outside the 12x10 .*\(first at x=30"):
        open_dataset(tmp_path, "endonuke")[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 2\n", "line 1: expected 'x y class'"),
        ("1 2 0\nx 2 0\n", "line 2: expected two numbers"),
        ("1 2 3\n", "class 3 is not an EndoNuke class"),
        ("1 nan 0\n", "must be finite"),
    ],
)
def test_bad_lines(tmp_path, text, message):
    (tmp_path / "a.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path, "endonuke")[0]


def test_truncated_image_and_no_keypoint_files(tmp_path):
    write_endonuke(tmp_path)
    truncate(tmp_path / "data" / "dataset" / "images" / "1.png")
    ds = open_dataset(tmp_path, "endonuke")
    with pytest.raises(DatasetError, match="1.png: cannot read the image"):
        ds[ds.names.index("1")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no keypoint files"):
        open_dataset(tmp_path / "empty", "endonuke")
