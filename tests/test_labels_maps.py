"""Tests of the maps labels/ derives from annotations: point table and map, semantic, distance."""

from pathlib import Path

import numpy as np
import pytest
from scipy import io as sio
from scipy import ndimage as ndi

from napari_cosynth.errors import CosynthError
from napari_cosynth.labels.distance import distance_map
from napari_cosynth.labels.points import centroid_table, point_map, points_from_map
from napari_cosynth.labels.semantic import semantic_map
from napari_cosynth.sample import PointTable

CONSEP_LABELS = Path("/work/shared/data/consep/train/Labels")


def load_consep(name: str) -> dict:
    path = CONSEP_LABELS / f"{name}.mat"
    if not path.exists():
        pytest.skip(f"real CoNSeP data not available at {path}")
    return sio.loadmat(path)


def disk(shape, centre, radius):
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius**2


# --- points -------------------------------------------------------------------------------------


def test_centroid_of_a_convex_nucleus_is_its_centre_of_mass():
    inst = np.zeros((20, 30), np.int32)
    inst[4:9, 10:17] = 1  # rows 4..8, cols 10..16: centre (6, 13)
    table = centroid_table(inst, np.array([2]))
    np.testing.assert_allclose(table.xy, [[13.0, 6.0]])
    assert table.classes.tolist() == [2]


def test_c_shaped_nucleus_centroid_moves_to_nearest_pixel_of_that_nucleus():
    inst = np.zeros((21, 21), np.int32)
    inst[2:19, 2:19] = 1
    inst[5:16, 7:19] = 0  # a C open to the right; its centre of mass falls in the hole
    cy, cx = ndi.center_of_mass(inst > 0)
    assert inst[round(cy), round(cx)] == 0
    (x, y), = centroid_table(inst, np.array([1])).xy
    assert inst[int(y), int(x)] == 1 and x == int(x) and y == int(y)
    rr, cc = np.nonzero(inst == 1)
    assert (y - cy) ** 2 + (x - cx) ** 2 == pytest.approx(np.min((rr - cy) ** 2 + (cc - cx) ** 2))


def test_ring_around_a_small_nucleus_both_keep_their_own_point():
    # The ring's centre of mass lies on the inner nucleus: it must move onto the ring itself.
    inst = np.zeros((15, 15), np.int32)
    inst[disk((15, 15), (7, 7), 6)] = 1
    inst[6:9, 6:9] = 2
    table = centroid_table(inst, np.array([1, 3]))
    assert len(table) == 2
    (x1, y1), (x2, y2) = table.xy
    assert inst[int(y1), int(x1)] == 1 and inst[int(y2), int(x2)] == 2
    assert table.classes.tolist() == [1, 3]


def test_ids_without_pixels_get_no_point_and_empty_input_gives_empty_table():
    inst = np.zeros((10, 10), np.int32)
    inst[1:3, 1:3] = 1
    inst[6:9, 6:9] = 3  # id 2 was cropped away
    table = centroid_table(inst, np.array([1, 2, 3]))
    assert table.classes.tolist() == [1, 3]
    assert len(centroid_table(np.zeros((5, 5), np.int32), np.zeros(0))) == 0


def test_two_points_rounding_to_one_pixel_both_stay_in_the_table():
    table = PointTable([[4.2, 3.0], [3.8, 3.1]], [1, 2])
    pm = point_map(table, (8, 8))
    assert len(table) == 2
    assert np.count_nonzero(pm) == 1 and pm[3, 4] in (1, 2)
    assert len(points_from_map(pm)) == 1


def test_point_map_holds_class_at_rounded_centroid_and_round_trips():
    table = PointTable([[0.0, 0.0], [7.0, 5.0], [2.4, 6.6]], [3, 1, 2])
    pm = point_map(table, (8, 9))
    assert pm.dtype == np.uint8 and pm.shape == (8, 9)
    assert pm[0, 0] == 3 and pm[5, 7] == 1 and pm[7, 2] == 2 and np.count_nonzero(pm) == 3
    back = points_from_map(pm)
    assert sorted(zip(back.xy[:, 0], back.xy[:, 1], back.classes, strict=True)) == [
        (0, 0, 3), (2, 7, 2), (7, 5, 1)
    ]


@pytest.mark.parametrize("xy", [[-1.0, 2.0], [2.0, 7.6], [9.0, 0.0]])
def test_point_map_raises_on_points_outside_the_canvas(xy):
    table = PointTable([[1.0, 1.0], xy], [1, 2])
    with pytest.raises(CosynthError, match="outside the 8x9 canvas"):
        point_map(table, (8, 9))


def test_point_map_raises_on_class_zero():
    with pytest.raises(ValueError, match="1..255"):
        point_map(PointTable([[1.0, 1.0]], [0]), (4, 4))


def test_centroids_match_consep_own_centroids_and_lie_on_their_nucleus():
    mat = load_consep("train_10_000")
    inst, classes = mat["inst_map"], mat["inst_type"].ravel()
    table = centroid_table(inst, classes)
    assert len(table) == inst.max() == 68
    np.testing.assert_allclose(table.xy, mat["inst_centroid"], atol=1e-6)
    rows, cols = np.round(table.xy[:, 1]).astype(int), np.round(table.xy[:, 0]).astype(int)
    assert (inst[rows, cols] == np.arange(1, 69)).all()
    pm = point_map(table, inst.shape)
    assert np.count_nonzero(pm) == 68 and (pm[rows, cols] == classes).all()


# --- semantic -----------------------------------------------------------------------------------


def test_semantic_map_paints_each_instance_with_its_class():
    inst = np.array([[0, 1, 1], [2, 2, 0], [0, 0, 4]], np.int32)
    sem = semantic_map(inst, np.array([3, 1, 2, 4]))
    assert sem.dtype == np.uint8
    assert sem.tolist() == [[0, 3, 3], [1, 1, 0], [0, 0, 4]]
    assert not semantic_map(np.zeros((2, 2), np.int32), np.zeros(0)).any()


def test_semantic_map_equals_consep_type_map():
    mat = load_consep("train_1_005")
    sem = semantic_map(mat["inst_map"], mat["inst_type"].ravel())
    np.testing.assert_array_equal(sem, mat["type_map"])


@pytest.mark.parametrize(
    "inst, classes, match",
    [
        (np.array([[0, 3]]), np.array([1, 2]), "id 3 but only 2 classes"),
        (np.array([[0, -1]]), np.array([1]), ">= 0"),
        (np.array([[0, 1]]), np.array([0]), "1..255"),
        (np.array([[0.0, 1.0]]), np.array([1]), "2-D integer"),
    ],
)
def test_semantic_map_rejects_bad_input(inst, classes, match):
    with pytest.raises(ValueError, match=match):
        semantic_map(inst, classes)


# --- distance -----------------------------------------------------------------------------------


def test_distance_of_a_disk_is_one_at_centre_and_one_over_max_on_its_rim():
    inst = disk((41, 41), (20, 20), 10).astype(np.int32)
    d = distance_map(inst)
    assert d.dtype == np.float32 and d.shape == inst.shape
    assert d[20, 20] == 1.0 and d.max() == 1.0 and (d[inst == 0] == 0).all()
    edt = ndi.distance_transform_edt(inst)
    rim = (inst == 1) & (edt == 1)
    np.testing.assert_allclose(d[rim], 1 / edt.max(), rtol=1e-6)
    # distance grows monotonically towards the centre along a radius
    assert (np.diff(d[20, 10:21]) > 0).all()


def test_touching_nuclei_are_normalised_and_separated_each_on_its_own():
    inst = np.zeros((20, 40), np.int32)
    inst[5:15, 2:20] = 1
    inst[7:13, 20:28] = 2  # smaller nucleus touching the first along column 19/20
    d = distance_map(inst)
    assert d[inst == 1].max() == 1.0 and d[inst == 2].max() == 1.0
    # Both sides of the contact sit at their rim value, not at the interior of a merged blob.
    assert d[10, 19] == pytest.approx(1 / 5) and d[10, 20] == pytest.approx(1 / 3)
    merged = ndi.distance_transform_edt(inst > 0)
    assert merged[10, 19] > 1 and merged[10, 20] > 1


def test_nucleus_cut_by_the_image_border_ends_at_the_border():
    big = np.zeros((30, 30), np.int32)
    big[disk((30, 30), (10, 15), 6)] = 1
    crop = big[10:, :]  # cut through the middle of the nucleus
    d = distance_map(crop)
    # The cut nucleus behaves as if the image stopped there: a rim value on the border row,
    # and the same values as the crop of the half-disk drawn on a larger background canvas.
    padded = np.zeros((30, 30), np.int32)
    padded[10:, :] = crop
    np.testing.assert_allclose(d, distance_map(padded)[10:, :])
    half_disk_max = ndi.distance_transform_edt(np.pad(crop > 0, 1)).max()
    assert d[0, 15] == pytest.approx(1 / half_disk_max)


def test_distance_handles_gaps_in_ids_unsigned_maps_and_empty_maps():
    inst = np.zeros((10, 10), np.uint16)
    inst[1:4, 1:4] = 5
    inst[6:9, 6:9] = 9
    d = distance_map(inst)
    assert d[2, 2] == 1.0 and d[7, 7] == 1.0 and d[0, 0] == 0.0
    assert not distance_map(np.zeros((4, 4), np.int32)).any()
    assert distance_map(np.zeros((0, 3), np.int32)).shape == (0, 3)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4)), np.zeros((2, 4, 4), np.int32), -np.ones((3, 3), np.int32)]
)
def test_distance_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        distance_map(bad)


def test_distance_on_consep_patch_matches_whole_image_edt_per_nucleus():
    inst = load_consep("train_10_000")["inst_map"]
    d = distance_map(inst)
    for i in (1, 17, 40, 68):
        mask = inst == i
        edt = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        np.testing.assert_allclose(d[mask], edt[mask] / edt.max(), rtol=1e-6)
    assert (d[inst == 0] == 0).all() and (d[inst > 0] > 0).all()
