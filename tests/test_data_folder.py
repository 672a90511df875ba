import json

import numpy as np
import pytest
import tifffile

from data_fixtures import consep_sample, points_sample, truncate
from napari_cosynth.data import (
    count_pairs,
    open_dataset,
    read_dataset,
    read_sample,
    write_sample,
)
from napari_cosynth.data.folder import FORMAT_VERSION
from napari_cosynth.errors import DatasetError


def test_round_trip_of_a_generated_pair(tmp_path):
    sample = consep_sample(with_maps=True)
    path = write_sample(sample, tmp_path)
    assert path == tmp_path / "pair"
    assert sorted(p.name for p in path.iterdir()) == [
        "classes.csv", "distance.tif", "image.png", "instances.tif", "meta.json", "semantic.tif"]
    back = read_sample(path)
    for field in ("image", "instances", "classes", "semantic", "distance"):
        np.testing.assert_array_equal(getattr(back, field), getattr(sample, field))
    assert back.instances.dtype == np.int32 and back.distance.dtype == np.float32
    assert back.semantic.dtype == np.uint8
    assert back.vocabulary == sample.vocabulary and back.tissue == "colon" and back.magnification == 40.0
    assert back.provenance == {"seed": 7, "prompt": "a prompt", "sampler": {"steps": 10, "eta": 0.0}}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["n_nuclei"] == 3
    assert (path / "classes.csv").read_text().splitlines()[:2] == ["id,class_id,class_name", "1,1,other"]


@pytest.mark.parametrize("with_image", [True, False])
def test_round_trip_of_points_only(tmp_path, with_image):
    sample = points_sample(with_image=with_image)
    back = read_sample(write_sample(sample, tmp_path))
    assert back.instances is None and (back.image is not None) == with_image
    np.testing.assert_array_equal(back.points.xy, sample.points.xy)
    np.testing.assert_array_equal(back.points.classes, sample.points.classes)
    assert not (tmp_path / "points" / "instances.tif").exists()


def test_never_overwrites_and_picks_a_fresh_name(tmp_path):
    first = write_sample(consep_sample(n=1), tmp_path)
    before = (first / "instances.tif").read_bytes()
    second = write_sample(consep_sample(n=3), tmp_path)
    third = write_sample(consep_sample(n=2), tmp_path, name="pair")
    assert [first.name, second.name, third.name] == ["pair", "pair-001", "pair-002"]
    assert (first / "instances.tif").read_bytes() == before
    assert read_sample(second).n_nuclei == 3 and count_pairs(tmp_path) == 3
    assert [s.name for s in read_dataset(tmp_path, "folder")] == ["pair", "pair-001", "pair-002"]


def test_names_are_made_safe(tmp_path):
    assert write_sample(consep_sample(), tmp_path, name="../a b/c").name == "_a_b_c"
    assert write_sample(consep_sample(), tmp_path, name="...").name == "sample"


def test_failed_write_leaves_nothing(tmp_path):
    sample = consep_sample()
    sample.provenance = {"callback": object()}
    with pytest.raises(ValueError, match="provenance cannot be stored as JSON"):
        write_sample(sample, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_hidden_folders_are_ignored_incomplete_pairs_reported(tmp_path):
    write_sample(consep_sample(), tmp_path)
    hidden = tmp_path / ".pair-002.abc.tmp" / "pair-002"
    hidden.mkdir(parents=True)
    (hidden / "image.png").write_bytes(b"")
    assert count_pairs(tmp_path) == 1
    assert open_dataset(tmp_path / "pair", "folder").names == ["pair"]  # a pair folder alone
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "instances.tif").write_bytes(b"")
    with pytest.raises(DatasetError, match="broken: holds pair files but no meta.json"):
        count_pairs(tmp_path)


def _pair(tmp_path, **kw):
    return write_sample(consep_sample(**kw), tmp_path)


def test_class_table_not_matching_instances(tmp_path):
    path = _pair(tmp_path)
    lines = (path / "classes.csv").read_text().splitlines()
    (path / "classes.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match="has 2 rows but instances.tif numbers nuclei up to 3"):
        read_sample(path)


def test_sizes_differ(tmp_path):
    path = _pair(tmp_path)
    instances = tifffile.imread(path / "instances.tif")
    tifffile.imwrite(path / "instances.tif", np.pad(instances, ((0, 1), (0, 0))))
    with pytest.raises(DatasetError, match="must match pixel for pixel"):
        read_sample(path)


@pytest.mark.parametrize(
    "row, message",
    [("3,9,other", "class id 9 is outside 1..4"), ("3,2,epithelial", "names it 'epithelial'"),
     ("4,1,other", "expected id 3")],
)
def test_bad_class_rows(tmp_path, row, message):
    path = _pair(tmp_path)
    lines = (path / "classes.csv").read_text().splitlines()
    (path / "classes.csv").write_text("\n".join([*lines[:-1], row]) + "\n")
    with pytest.raises(DatasetError, match=message):
        read_sample(path)


@pytest.mark.parametrize("file, message", [
    ("image.png", "cannot read the image"),
    ("instances.tif", "cannot read the TIFF"),
    ("meta.json", "cannot read meta.json"),
])
def test_truncated_files(tmp_path, file, message):
    path = _pair(tmp_path, size=64)
    truncate(path / file)
    with pytest.raises(DatasetError, match=message):
        read_sample(path)


def test_missing_listed_file_and_newer_version(tmp_path):
    path = _pair(tmp_path, with_maps=True)
    (path / "distance.tif").unlink()
    with pytest.raises(DatasetError, match="distance.tif: listed in meta.json but missing"):
        read_sample(path)
    meta = json.loads((path / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="update napari-cosynth"):
        read_sample(path)


def test_out_of_range_maps(tmp_path):
    path = _pair(tmp_path, with_maps=True)
    semantic = tifffile.imread(path / "semantic.tif")
    tifffile.imwrite(path / "semantic.tif", np.where(semantic > 0, 7, 0).astype(np.uint8))
    with pytest.raises(DatasetError, match="class id 7, outside 0..4"):
        read_sample(path)
    sample = consep_sample(with_maps=True)
    sample.distance = sample.distance * 3
    with pytest.raises(ValueError, match=r"distance map must lie in \[0, 1\]"):
        write_sample(sample, tmp_path / "other")
