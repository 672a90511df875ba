"""Tests of resampling samples and point tables to another magnification."""

from pathlib import Path

import numpy as np
import pytest
from scipy import io as sio

from napari_cosynth.errors import ConfigError
from napari_cosynth.labels.distance import distance_map
from napari_cosynth.labels.points import point_map
from napari_cosynth.labels.resample import resample_points, resample_sample
from napari_cosynth.labels.semantic import semantic_map
from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.vocabularies import CONSEP

CONSEP_TRAIN = Path("/work/shared/data/consep/train")


def toy_sample(h=16, w=20, **extra) -> Sample:
    inst = np.zeros((h, w), np.int32)
    inst[2:8, 2:8] = 1
    inst[8, 16] = 2  # one pixel on an even row and column: half size reads odd ones only
    inst[10:16, 10:14] = 3
    image = np.zeros((h, w, 3), np.uint8)
    image[::2, :, 0] = 200  # horizontal stripes in red: area averaging gives exactly 100
    image[..., 1] = 50
    return Sample(image, inst, np.array([1, 2, 4]), CONSEP, tissue="colon", name="toy",
                  provenance={"seed": 7}, **extra)


def test_shrinking_40x_to_20x_halves_the_size_and_drops_vanished_nuclei():
    s = toy_sample()
    out = resample_sample(s, 20.0)
    assert out.magnification == 20.0 and out.shape == (8, 10) and out.image.shape == (8, 10, 3)
    assert out.instances.dtype == np.int32
    assert sorted(np.unique(out.instances).tolist()) == [0, 1, 2]
    assert out.classes.tolist() == [1, 4]  # the one-pixel nucleus (class 2) left the table
    assert (out.image[..., 0] == 100).all() and (out.image[..., 1] == 50).all()
    kept = (out.tissue, out.name, out.provenance, out.vocabulary)
    assert kept == ("colon", "toy", {"seed": 7}, CONSEP)
    assert s.magnification == 40.0 and s.shape == (16, 20)  # the input is left alone


def test_nearest_neighbour_labels_keep_nuclei_in_place():
    out = resample_sample(toy_sample(), 20.0)
    np.testing.assert_array_equal(out.instances[1:4, 1:4], 1)
    np.testing.assert_array_equal(out.instances[5:8, 5:7], 2)


def test_enlarging_20x_to_40x_doubles_labels_exactly_and_keeps_a_flat_image_flat():
    s = toy_sample().with_(magnification=20.0)
    out = resample_sample(s, 40.0)
    assert out.shape == (32, 40)
    for dy in (0, 1):
        for dx in (0, 1):
            np.testing.assert_array_equal(out.instances[dy::2, dx::2], s.instances)
    assert out.classes.tolist() == [1, 2, 4]
    assert (out.image[..., 1] == 50).all()


@pytest.mark.parametrize("h, w, target", [(255, 257, 20.0), (100, 60, 13.0), (20, 17, 100.0)])
def test_output_size_is_the_rounded_scaled_size(h, w, target):
    out = resample_sample(toy_sample(h, w), target)
    factor = target / 40.0
    assert out.shape == (round(h * factor), round(w * factor)) == out.image.shape[:2]


def test_semantic_and_distance_maps_follow_the_instances():
    s = toy_sample()
    s = s.with_(semantic=semantic_map(s.instances, s.classes), distance=distance_map(s.instances))
    out = resample_sample(s, 26.0)
    np.testing.assert_array_equal(out.semantic, semantic_map(out.instances, out.classes))
    np.testing.assert_array_equal(out.distance, distance_map(out.instances))
    assert out.distance.dtype == np.float32


def test_points_of_a_sample_land_on_the_canvas_at_odd_sizes():
    s = toy_sample(257, 255, points=PointTable([[0, 0], [254, 256], [100.0, 50.0]], [1, 2, 3]))
    out = resample_sample(s, 20.0)
    pm = point_map(out.points, out.shape)  # raises if any point left the canvas
    assert np.count_nonzero(pm) == 3 and out.points.classes.tolist() == [1, 2, 3]
    expected = [(100.5 * 128 / 255) - 0.5, (50.5 * 128 / 257) - 0.5]
    np.testing.assert_allclose(out.points.xy[2], expected)


def test_points_only_samples_get_scaled_points():
    pts = PointTable([[10.0, 20.0], [0.0, 3.0]], [1, 2])
    s = Sample(None, None, np.zeros(0), CONSEP, points=pts, magnification=40.0, name="endo")
    out = resample_sample(s, 20.0)
    assert out.instances is None and out.image is None and out.magnification == 20.0
    np.testing.assert_allclose(out.points.xy, [[4.75, 9.75], [0.0, 1.25]])
    with_image = s.with_(image=np.full((30, 12, 3), 9, np.uint8))
    out = resample_sample(with_image, 20.0)
    assert out.image.shape == (15, 6, 3) and (out.image == 9).all()
    point_map(out.points, out.shape)


def test_resample_points_uses_the_pixel_centre_mapping():
    pts = PointTable([[0.0, 0.0], [3.0, 5.0]], [1, 2])
    np.testing.assert_allclose(resample_points(pts, 2.0).xy, [[0.5, 0.5], [6.5, 10.5]])
    np.testing.assert_allclose(resample_points(pts, 0.5).xy, [[0.0, 0.0], [1.25, 2.25]])
    assert resample_points(pts, 2.0).classes.tolist() == [1, 2]
    assert len(resample_points(PointTable.empty(), 0.5)) == 0
    with pytest.raises(ConfigError, match="positive"):
        resample_points(pts, 0.0)


def test_same_magnification_is_an_unchanged_copy():
    s = toy_sample()
    out = resample_sample(s, 40)
    assert out is not s and out.magnification == 40.0
    np.testing.assert_array_equal(out.instances, s.instances)


@pytest.mark.parametrize("target", [0.0, -20.0, float("nan"), float("inf")])
def test_bad_magnifications_raise(target):
    with pytest.raises(ConfigError, match="magnification"):
        resample_sample(toy_sample(), target)


def test_a_result_with_no_pixels_raises():
    with pytest.raises(ConfigError, match="closer to 40"):
        resample_sample(toy_sample(), 0.5)


def test_real_consep_patch_to_20x():
    path = CONSEP_TRAIN / "Labels" / "train_10_000.mat"
    if not path.exists():
        pytest.skip(f"real CoNSeP data not available at {path}")
    from skimage.io import imread

    mat = sio.loadmat(path)
    image = imread(CONSEP_TRAIN / "Images" / "train_10_000.jpg")
    s = Sample(image, mat["inst_map"], mat["inst_type"].ravel(), CONSEP, tissue="colon")
    out = resample_sample(s, 20.0)
    assert out.shape == (128, 128) and out.image.dtype == np.uint8
    assert 60 <= len(out.classes) <= 68 and out.instances.max() == len(out.classes)
    # Every surviving nucleus keeps its class; the nearest-neighbour grid reads pixel (2i+1, 2j+1).
    kept = np.unique(s.instances[1::2, 1::2])[1:]
    assert out.classes.tolist() == s.classes[kept - 1].tolist()
    # Area average: each output pixel is the mean of its 2x2 block.
    block = s.image[:2, :2].astype(float).mean(axis=(0, 1))
    np.testing.assert_allclose(out.image[0, 0], np.round(block))
