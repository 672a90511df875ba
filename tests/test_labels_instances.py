"""Tests of instance recovery from (semantic, distance) maps and of the connected-components
baseline."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import io as sio
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_cosynth.errors import ConfigError, CosynthError
from napari_cosynth.labels.distance import distance_map
from napari_cosynth.labels.instances import (
    SeparationParams,
    connected_components,
    instances_from_maps,
    one_class_per_nucleus,
)
from napari_cosynth.labels.semantic import semantic_map
from napari_cosynth.metrics.instance import aji

CONSEP_LABELS = Path("/work/shared/data/consep/train/Labels")


def load_consep(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = CONSEP_LABELS / f"{name}.mat"
    if not path.exists():
        pytest.skip(f"real CoNSeP data not available at {path}")
    mat = sio.loadmat(path)
    return mat["inst_map"].astype(np.int32), mat["inst_type"].reshape(-1).astype(np.int64)


def weighted_object_dice(true: np.ndarray, pred: np.ndarray) -> float:
    """Object-level Dice of Sirinukunwattana et al. 2017 (each object against its most-overlapping
    partner, both directions, area-weighted): an oracle independent of metrics/, which implements
    hover_net's stricter pairwise variant."""
    nt, npred = int(true.max()) + 1, int(pred.max()) + 1
    ov = np.bincount(true.ravel().astype(np.int64) * npred + pred.ravel(), minlength=nt * npred)
    ov = ov.reshape(nt, npred)
    a_true, a_pred, inter = ov.sum(1)[1:], ov.sum(0)[1:], ov[1:, 1:]
    dice = 2 * inter / (a_true[:, None] + a_pred[None, :])
    t = dice[np.arange(len(a_true)), inter.argmax(1)]
    p = dice[inter.argmax(0), np.arange(len(a_pred))]
    return 0.5 * ((t * a_true).sum() / a_true.sum() + (p * a_pred).sum() / a_pred.sum())


def two_touching_disks() -> np.ndarray:
    rr, cc = np.ogrid[:30, :50]
    inst = np.zeros((30, 50), np.int32)
    inst[(rr - 15) ** 2 + (cc - 15) ** 2 <= 81] = 1
    inst[((rr - 15) ** 2 + (cc - 32) ** 2 <= 81) & (inst == 0)] = 2
    return inst


def test_object_dice_helper_scores_identity_one_and_a_merge_lower():
    inst = two_touching_disks()
    assert weighted_object_dice(inst, inst) == pytest.approx(1.0)
    assert weighted_object_dice(inst, (inst > 0).astype(np.int32)) < 0.8


def test_touching_nuclei_are_separated_by_the_distance_map_but_merged_by_the_baseline():
    inst = two_touching_disks()
    sem = semantic_map(inst, np.array([2, 3]))
    out, classes = instances_from_maps(sem, distance_map(inst))
    assert out.dtype == np.int32 and classes.dtype == np.int64
    assert out.max() == 2 and classes.tolist() == [2, 3]
    assert weighted_object_dice(inst, out) > 0.99
    base, base_classes = connected_components(sem)
    assert base.max() == 1 and base_classes.dtype == np.int64 and len(base_classes) == 1


def test_large_nucleus_keeps_its_rim_where_a_small_one_touches_it():
    # Normalised, the small nucleus's rim (1/2) outranks the large one's (1/7): a single flood of
    # the normalised map hands the small one a sliver of the large one along their contact.
    inst = np.zeros((20, 40), np.int32)
    inst[3:17, 2:20] = 1
    inst[8:12, 20:26] = 2
    sem, dist = semantic_map(inst, np.array([1, 2])), distance_map(inst)
    markers, _ = ndi.label(dist > 0.4)
    single = watershed(-dist, markers, mask=sem > 0)
    assert (single != inst).sum() == 4
    for params in (SeparationParams(), SeparationParams(smoothing_sigma=0, flood_smoothed=False)):
        out, _ = instances_from_maps(sem, dist, params)
        np.testing.assert_array_equal(out, inst)


def test_class_is_the_majority_of_the_semantic_map_over_the_instance():
    inst = two_touching_disks()
    sem = semantic_map(inst, np.array([1, 4]))
    sem[(inst == 1) & (np.arange(50)[None, :] < 10)] = 3  # a minority of the left nucleus says 3
    assert 0 < (sem[inst == 1] == 3).sum() < (sem[inst == 1] == 1).sum()
    _, classes = instances_from_maps(sem, distance_map(inst))
    assert classes.tolist() == [1, 4]
    # The baseline merges both disks into one instance, whose class is the most frequent overall.
    _, base_classes = connected_components(sem)
    counts = np.bincount(sem[inst > 0], minlength=5)
    assert base_classes.tolist() == [int(np.argmax(counts[1:]) + 1)]


def test_each_nucleus_is_painted_in_its_voted_class_and_mixtures_are_counted():
    inst = two_touching_disks()
    sem = semantic_map(inst, np.array([1, 4]))
    sem[(inst == 1) & (np.arange(50)[None, :] < 10)] = 3  # the left nucleus holds classes 1 and 3
    sem[0, 0] = 2  # a stray foreground pixel that no instance keeps
    instances, classes = instances_from_maps(sem, distance_map(inst))
    voted, mixed = one_class_per_nucleus(instances, classes, sem)
    assert mixed == 1
    assert voted.dtype == np.uint8
    assert np.array_equal(voted, semantic_map(instances, classes))
    assert set(np.unique(voted[instances == 1])) == {1} and voted[0, 0] == 0
    assert one_class_per_nucleus(instances, classes, voted)[1] == 0


def test_small_fragments_are_removed_and_instances_renumbered_sequentially():
    sem = np.zeros((20, 20), np.uint8)
    sem[2:8, 2:8] = 1
    sem[15, 15] = 2  # a 1-pixel speck of class 2
    sem[12:18, 2:8] = 3
    dist = np.zeros((20, 20), np.float32)
    dist[sem > 0] = 1.0
    out, classes = instances_from_maps(sem, dist, SeparationParams(min_area=5, min_marker_size=1))
    assert sorted(np.unique(out).tolist()) == [0, 1, 2]
    assert out[15, 15] == 0 and classes.tolist() == [1, 3]
    base, base_classes = connected_components(sem, min_size=5)
    assert base.max() == 2 and base_classes.tolist() == [1, 3]


def test_foreground_without_any_marker_still_becomes_one_instance():
    sem = np.zeros((12, 12), np.uint8)
    sem[3:9, 3:9] = 2
    out, classes = instances_from_maps(sem, np.zeros((12, 12), np.float32))
    assert out.max() == 1 and (out > 0).sum() == 36 and classes.tolist() == [2]


def test_empty_maps_give_no_instances():
    out, classes = instances_from_maps(np.zeros((8, 8), np.uint8), np.zeros((8, 8)))
    assert out.shape == (8, 8) and not out.any() and classes.shape == (0,)
    base, base_classes = connected_components(np.zeros((8, 8), np.int32))
    assert not base.any() and base_classes.shape == (0,)


def test_distance_outside_zero_one_is_clipped_not_rejected():
    inst = two_touching_disks()
    sem = semantic_map(inst, np.array([1, 1]))
    dist = distance_map(inst)
    stretched = np.where(inst > 0, dist * 1.5, -0.2)  # overshoots both ends
    a, _ = instances_from_maps(sem, stretched.astype(np.float64))
    b, _ = instances_from_maps(sem, np.clip(stretched, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert a.max() == 2


def test_bad_maps_raise_clear_errors():
    sem = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="distance map is 8x9 but the semantic map is 8x8"):
        instances_from_maps(sem, np.zeros((8, 9)))
    with pytest.raises(ValueError, match="NaN"):
        instances_from_maps(sem, np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="2-D integer class map"):
        instances_from_maps(sem.astype(float), np.zeros((8, 8)))
    with pytest.raises(ValueError, match=">= 0"):
        connected_components(-np.ones((3, 3), np.int32))


@pytest.mark.parametrize(
    "field, value",
    [
        ("smoothing_sigma", -1.0),
        ("flood_smoothed", "yes"),
        ("marker_threshold", 1.0),
        ("marker_threshold", 0.0),
        ("min_marker_size", 0),
        ("min_area", 2.5),
        ("foreground", "distance"),
        ("distance_floor", 1.0),
        ("split_depth", -0.1),
        ("split_depth", 1.0),
        ("split_sigma", float("nan")),
    ],
)
def test_separation_params_reject_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        SeparationParams(**{field: value})


def test_separation_params_are_frozen_and_min_size_is_checked():
    with pytest.raises(AttributeError):
        SeparationParams().min_area = 3
    with pytest.raises(CosynthError, match="min_size"):
        connected_components(np.zeros((3, 3), np.int32), min_size=0)


def test_foreground_rule_semantic_and_distance_trims_pixels_below_the_floor():
    inst = two_touching_disks()
    sem = semantic_map(inst, np.array([1, 2]))
    dist = distance_map(inst)
    params = SeparationParams(foreground="semantic_and_distance", distance_floor=0.15)
    out, classes = instances_from_maps(sem, dist, params)
    assert out.max() == 2 and classes.tolist() == [1, 2]
    assert not out[(inst > 0) & (dist <= 0.15)].any()
    assert out[(inst > 0) & (dist > 0.15)].all()


@pytest.mark.parametrize("name", ["train_10_000", "train_1_005", "train_20_003"])
def test_true_maps_of_real_patches_give_back_the_true_nuclei(name):
    inst, classes = load_consep(name)
    sem = semantic_map(inst, classes)
    out, out_classes = instances_from_maps(sem, distance_map(inst))
    base, _ = connected_components(sem)
    ours, theirs = weighted_object_dice(inst, out), weighted_object_dice(inst, base)
    assert ours > 0.99, f"{name}: object Dice {ours:.3f}"
    assert theirs < ours - 0.05, f"{name}: baseline {theirs:.3f} vs separation {ours:.3f}"
    assert aji(inst, out) > 0.98 and aji(inst, base) < 0.7
    assert base.max() < out.max() <= inst.max()
    # each recovered nucleus takes the class of the true nucleus it overlaps most
    best = ndi.labeled_comprehension(inst, out, np.arange(1, out.max() + 1),
                                     lambda v: np.bincount(v).argmax(), np.int64, 0)
    assert (out_classes == classes[best - 1]).mean() > 0.98


def test_defaults_stay_robust_to_noise_on_a_real_patch():
    # The noise model of benchmarks/tune_separation.py: blurred distance + white noise, 0.5 % of
    # semantic pixels flipped to a random class.
    inst, classes = load_consep("train_10_000")
    rng = np.random.default_rng(1)
    dist = ndi.gaussian_filter(distance_map(inst), 1.0) + rng.normal(0, 0.1, inst.shape)
    dist = np.clip(dist, 0, 1)
    sem = semantic_map(inst, classes)
    flip = rng.random(inst.shape) < 0.005
    sem[flip] = rng.integers(0, 5, int(flip.sum()))
    out, _ = instances_from_maps(sem, dist)
    raw, _ = instances_from_maps(sem, dist, SeparationParams(smoothing_sigma=0, min_marker_size=1))
    assert weighted_object_dice(inst, out) > 0.95
    assert weighted_object_dice(inst, out) > weighted_object_dice(inst, raw) + 0.03
    assert abs(int(out.max()) - int(inst.max())) <= 4


def test_parameters_follow_the_magnification():
    from napari_cosynth.labels.instances import SeparationParams

    assert SeparationParams.for_magnification(40) == SeparationParams()
    p20 = SeparationParams.for_magnification(20)
    assert p20.min_marker_size < SeparationParams().min_marker_size
    p10 = SeparationParams.for_magnification(10)  # nearest preset 20x, areas scaled by 1/4
    assert p10.smoothing_sigma == pytest.approx(p20.smoothing_sigma / 2)
    assert p10.min_area == max(1, round(p20.min_area / 4))
    with pytest.raises(Exception, match="magnification"):
        SeparationParams.for_magnification(0)


def test_generated_maps_take_the_extent_of_their_distance_map_but_never_a_nucleus_of_its_own():
    inst = two_touching_disks()
    truth = distance_map(inst)
    sem = semantic_map(inst, np.array([1, 4]))
    # The generated semantic map draws both nuclei two pixels too small; the distance map has them whole.
    shrunk = ndi.binary_erosion(sem > 0, iterations=2)
    small = np.where(shrunk, sem, 0).astype(np.uint8)
    # A blob in the distance map where the semantic map has nothing must not become a nucleus.
    blob = np.zeros_like(truth)
    blob[2:8, 2:8] = 0.9
    generated = np.maximum(truth, blob)
    params = SeparationParams.for_generated(20.0)
    assert params.foreground == "semantic_or_distance" and params.distance_floor > 0
    plain_inst, _ = instances_from_maps(small, generated, SeparationParams.for_magnification(20.0))
    grown, classes = instances_from_maps(small, generated, params)
    assert sorted(classes.tolist()) == [1, 4]
    for label, cls in enumerate(classes, start=1):  # each grown nucleus lies on its own disk
        assert np.all(sem[grown == label] == cls)
    assert (plain_inst > 0).sum() < (grown > 0).sum() <= (inst > 0).sum()
    assert not grown[2:8, 2:8].any()
    # Real maps (distance 0 wherever the semantic map is 0) are recovered the same either way.
    real_plain, _ = instances_from_maps(sem, truth, SeparationParams.for_magnification(20.0))
    real_gen, _ = instances_from_maps(sem, truth, params)
    assert np.array_equal(real_plain, real_gen)


def peanut(gap: int) -> np.ndarray:
    """Two discs of radius 9 whose centres lie ``gap`` px apart, drawn as ONE nucleus: the way a
    generated map shows two touching nuclei that it did not separate."""
    rr, cc = np.ogrid[:30, :50]
    union = ((rr - 15) ** 2 + (cc - 15) ** 2 <= 81) | ((rr - 15) ** 2 + (cc - 15 - gap) ** 2 <= 81)
    return union.astype(np.int32)


def test_split_depth_cuts_a_marker_region_with_two_peaks_at_its_saddle():
    blob = peanut(12)
    sem = semantic_map(blob, np.array([3]))
    dist = distance_map(blob)  # one normalised map: peaks 1 at the two centres, about 0.74 between
    base = SeparationParams(smoothing_sigma=0.5, marker_threshold=0.6, min_marker_size=5, min_area=2)
    merged, _ = instances_from_maps(sem, dist, base)
    assert merged.max() == 1  # the saddle lies above the marker level: one marker, one nucleus
    split, classes = instances_from_maps(sem, dist, replace(base, split_depth=0.05))
    assert split.max() == 2 and classes.tolist() == [3, 3]
    assert ((split > 0) == (blob > 0)).all()  # cutting moves no pixel in or out of the foreground
    centres = sorted(ndi.center_of_mass(split > 0, split, [1, 2]), key=lambda c: c[1])
    assert np.allclose(centres, [(15, 15 - 1.5), (15, 27 + 1.5)], atol=1.5)


def test_split_depth_leaves_single_nuclei_and_shallow_saddles_whole():
    inst = two_touching_disks()
    sem = semantic_map(inst, np.array([1, 2]))
    params = SeparationParams(smoothing_sigma=0.5, marker_threshold=0.6, min_marker_size=5,
                              min_area=2, split_depth=0.05)
    out, _ = instances_from_maps(sem, distance_map(inst), params)
    assert aji(inst, out) == pytest.approx(1.0, abs=0.02)  # two true nuclei stay two
    blob = peanut(4)  # nearly one disc: the two peaks sink into one ridge
    out, _ = instances_from_maps(semantic_map(blob, np.array([3])), distance_map(blob), params)
    assert out.max() == 1
    # a split whose parts would hold fewer pixels than min_marker_size is not made: the marker
    # region above 0.6 holds 105 pixels, each half about 52
    blob = peanut(12)
    out, _ = instances_from_maps(semantic_map(blob, np.array([3])), distance_map(blob),
                                 replace(params, min_marker_size=80))
    assert out.max() == 1
    out, _ = instances_from_maps(semantic_map(blob, np.array([3])), distance_map(blob),
                                 replace(params, min_marker_size=40))
    assert out.max() == 2
