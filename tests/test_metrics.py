"""Metrics: known values on hand-made maps, a brute-force cross-check, and a real CoNSeP label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from napari_cosynth.errors import DatasetError
from napari_cosynth.metrics import (
    DetectionCounts,
    aji,
    aji_plus,
    class_proportions,
    compare_folders,
    dice,
    frechet_distance,
    fsd,
    instance_scores,
    object_dice,
    pair_centroids,
    pq,
    radius_for,
)
from napari_cosynth.sample import PointTable, Sample, Vocabulary
from napari_cosynth.vocabularies import CONSEP

CONSEP_LABELS = Path("/work/shared/data/consep/train/Labels")


# ----------------------------------------------------------------------------- hand-made maps


def _merge_case():
    """Two true 2x4 nuclei one row apart; one 5x4 prediction covering both (a merge)."""
    true = np.zeros((8, 6), np.int32)
    true[0:2, 0:4] = 1
    true[3:5, 0:4] = 2
    pred = np.zeros_like(true)
    pred[0:5, 0:4] = 9
    return true, pred


def test_perfect_prediction_scores_one_whatever_the_ids():
    rng = np.random.default_rng(1)
    true = _random_instances(rng, (64, 64), 12)
    pred = np.where(true > 0, true * 7 + 3, 0)  # same nuclei, unrelated ids
    scores = instance_scores(true, pred)
    for key in ("dice", "aji", "aji_plus", "dq", "sq", "pq", "object_dice"):
        assert scores[key] == pytest.approx(1.0, abs=1e-12), key
    assert scores["n_true"] == scores["n_pred"] == len(np.unique(true)) - 1


def test_huge_ids_and_boolean_masks():
    true, pred = _merge_case()
    huge = np.where(pred > 0, 2_000_000_000, 0).astype(np.int64)  # beyond the lookup-table path
    assert instance_scores(true, huge) == instance_scores(true, pred)
    full = np.ones((4, 4), np.int64) * 10**12  # no background pixel at all
    assert instance_scores(full, np.ones((4, 4), bool))["pq"] == 1.0


def test_merge_case_hand_computed():
    true, pred = _merge_case()
    # Each true nucleus: intersection 8, union 20 with the merged prediction.
    assert dice(true, pred) == pytest.approx(2 * 16 / (16 + 20))
    # AJI reuses the prediction for both: (8 + 8) / (20 + 20).
    assert aji(true, pred) == pytest.approx(16 / 40)
    # AJI+ pairs it once: 8 / (20 + 8 for the unpaired second nucleus).
    assert aji_plus(true, pred) == pytest.approx(8 / 28)
    # Ensemble Dice counts the prediction once per overlap: 2 (8 + 8) / ((8 + 20) + (8 + 20)).
    assert object_dice(true, pred) == pytest.approx(32 / 56)
    # IoU 0.4 < 0.5: no TP, 1 FP, 2 FN.
    assert pq(true, pred) == {"dq": 0.0, "sq": 0.0, "pq": 0.0}
    # Below 0.5 the Hungarian pairing takes one pair at IoU 0.4: DQ = 1 / (1 + 0 + 1).
    low = pq(true, pred, match_iou=0.3)
    assert low["dq"] == pytest.approx(1 / 1.5)
    assert low["sq"] == pytest.approx(0.4)
    assert low["pq"] == pytest.approx(0.4 / 1.5)


def test_pq_with_one_false_positive_and_one_false_negative():
    true = np.zeros((10, 10), np.int32)
    true[0:2, 0:4] = 1  # matched at IoU 6/8
    true[5:7, 5:9] = 2  # missed: FN
    pred = np.zeros_like(true)
    pred[0:2, 0:3] = 4
    pred[8:10, 0:2] = 5  # spurious: FP
    out = pq(true, pred)
    assert out["dq"] == pytest.approx(1 / (1 + 0.5 + 0.5))
    assert out["sq"] == pytest.approx(0.75)
    assert out["pq"] == pytest.approx(0.375)


def test_empty_maps_are_defined():
    empty = np.zeros((16, 16), np.int32)
    some = empty.copy()
    some[2:6, 2:6] = 3
    both = instance_scores(empty, empty)
    for key in ("dice", "aji", "aji_plus", "dq", "sq", "pq", "object_dice"):
        assert both[key] == 1.0
    for true, pred in ((empty, some), (some, empty)):
        one = instance_scores(true, pred)
        for key in ("dice", "aji", "aji_plus", "dq", "sq", "pq", "object_dice"):
            assert one[key] == 0.0, key


def test_object_dice_penalises_a_split_that_binary_dice_ignores():
    true = np.zeros((6, 8), np.int32)
    true[1:5, 0:8] = 1
    split = true.copy()
    split[1:5, 4:8] = 2
    assert dice(true, split) == 1.0
    # Both halves overlap the nucleus: 2 (16 + 16) / ((32 + 16) + (32 + 16)).
    assert object_dice(true, split) == pytest.approx(64 / 96)


def test_bad_inputs_are_rejected():
    a = np.zeros((4, 4), np.int32)
    with pytest.raises(ValueError, match="differ in size"):
        dice(a, np.zeros((4, 5), np.int32))
    with pytest.raises(ValueError, match="integer ids"):
        aji(a.astype(float), a)
    with pytest.raises(ValueError, match="negative"):
        pq(a - 1, a)
    with pytest.raises(ValueError, match="2-D"):
        object_dice(a[None], a[None])
    with pytest.raises(ValueError, match="match_iou"):
        pq(a, a, match_iou=-0.1)


# ----------------------------------------------------------------------------- brute-force check


def _random_instances(rng, shape, n):
    """Overlapping-free random discs with ids in random order."""
    out = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k in rng.permutation(n) + 1:
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.integers(2, 6)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (out == 0)
        out[disc] = k
    return out


def _brute(true, pred):
    """Definitions written out pair by pair, with full masks (slow, obviously correct)."""
    t_ids = [i for i in np.unique(true) if i]
    p_ids = [j for j in np.unique(pred) if j]
    t_mask = {i: true == i for i in t_ids}
    p_mask = {j: pred == j for j in p_ids}
    inter = np.array([[np.sum(t_mask[i] & p_mask[j]) for j in p_ids] for i in t_ids], float)
    union = np.array([[np.sum(t_mask[i] | p_mask[j]) for j in p_ids] for i in t_ids], float)
    union[inter == 0] = 0
    iou = np.divide(inter, union + 1e-6, out=np.zeros_like(inter), where=inter > 0)
    out = {}
    # AJI
    num = den = 0.0
    used_t, used_p = set(), set()
    for a, i in enumerate(t_ids):
        b = int(np.argmax(iou[a]))
        if iou[a, b] > 0:
            num += inter[a, b]
            den += union[a, b]
            used_t.add(i)
            used_p.add(p_ids[b])
    den += sum(t_mask[i].sum() for i in t_ids if i not in used_t)
    den += sum(p_mask[j].sum() for j in p_ids if j not in used_p)
    out["aji"] = num / den
    # AJI+
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] > 0
    rows, cols = rows[keep], cols[keep]
    den = union[rows, cols].sum()
    den += sum(t_mask[t_ids[a]].sum() for a in range(len(t_ids)) if a not in rows)
    den += sum(p_mask[p_ids[b]].sum() for b in range(len(p_ids)) if b not in cols)
    out["aji_plus"] = inter[rows, cols].sum() / den
    # PQ
    exact = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    matched = [(a, b) for a in range(len(t_ids)) for b in range(len(p_ids)) if exact[a, b] > 0.5]
    tp = len(matched)
    dq = tp / (tp + 0.5 * (len(p_ids) - tp) + 0.5 * (len(t_ids) - tp))
    sq = sum(exact[a, b] for a, b in matched) / tp
    out.update(dq=dq, sq=sq, pq=dq * sq)
    # Ensemble Dice
    pairs = [(a, b) for a in range(len(t_ids)) for b in range(len(p_ids)) if inter[a, b] > 0]
    out["object_dice"] = 2 * sum(inter[a, b] for a, b in pairs) / sum(
        t_mask[t_ids[a]].sum() + p_mask[p_ids[b]].sum() for a, b in pairs
    )
    out["dice"] = 2 * np.sum((true > 0) & (pred > 0)) / (np.sum(true > 0) + np.sum(pred > 0))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_scores_match_pairwise_definitions(seed):
    rng = np.random.default_rng(seed)
    true = _random_instances(rng, (48, 48), 14)
    # A prediction with shifted, eroded, merged and missing nuclei, and random ids.
    pred = np.roll(true, 1, axis=1)
    pred = np.where(ndi.binary_erosion(pred > 0) | (rng.random(pred.shape) < 0.7), pred, 0)
    pred[pred == 3] = 4
    pred[pred == 5] = 0
    pred = np.where(pred > 0, pred * 11 + 2, 0)
    got = instance_scores(true, pred)
    want = _brute(true, pred)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


# ----------------------------------------------------------------------------- real CoNSeP label


def _consep_label():
    files = sorted(CONSEP_LABELS.glob("*.mat")) if CONSEP_LABELS.is_dir() else []
    if not files:
        pytest.skip("CoNSeP labels not available at /work/shared/data/consep")
    from scipy.io import loadmat

    mat = loadmat(str(files[0]))
    return mat["inst_map"].astype(np.int32), mat["inst_type"].astype(np.int64).ravel()


def test_real_consep_label_against_perturbed_copy():
    inst, _ = _consep_label()
    n = len(np.unique(inst)) - 1
    assert n > 10
    same = instance_scores(inst, np.where(inst > 0, inst + 1000, 0))
    assert same["pq"] == pytest.approx(1.0) and same["aji"] == pytest.approx(1.0)

    # Erode every nucleus by one pixel: masks shrink, none is lost or merged.
    eroded = np.zeros_like(inst)
    for k, box in enumerate(ndi.find_objects(inst), start=1):
        if box is not None:
            core = ndi.binary_erosion(inst[box] == k)
            eroded[box][core] = k
    shrunk = instance_scores(inst, eroded)
    assert 0.6 < shrunk["dice"] < 0.99
    assert shrunk["aji"] < shrunk["dice"]
    # Overlaps are one-to-one, so only nuclei erased entirely by the erosion separate the two.
    assert shrunk["object_dice"] >= shrunk["dice"]
    assert shrunk["sq"] < 1.0

    # Connected components of the foreground merge touching nuclei: binary Dice cannot see it,
    # the instance scores must.
    merged, _ = ndi.label(inst > 0)
    joined = instance_scores(inst, merged)
    assert joined["dice"] == 1.0
    assert joined["n_pred"] < joined["n_true"]
    assert joined["object_dice"] < 1.0 and joined["aji"] < 1.0 and joined["dq"] < 1.0


# ----------------------------------------------------------------------------- detection


def test_radius_scales_with_magnification():
    assert radius_for(40) == 12.0
    assert radius_for(20) == 6.0
    for bad in (0, -20, float("nan")):
        with pytest.raises(ValueError, match="magnification"):
            radius_for(bad)


def test_hungarian_pairing_beats_greedy():
    # Greedy (closest first) pairs t1-p0 at 3 px, leaving t0-p1 13 px apart: one pair.
    # The optimal assignment pairs t0-p0 and t1-p1, 5 px each: two pairs within 6 px.
    true = np.array([[0.0, 0.0], [8.0, 0.0]])
    pred = np.array([[5.0, 0.0], [13.0, 0.0]])
    pairs, ut, up = pair_centroids(true, pred, radius=6)
    assert pairs.tolist() == [[0, 0], [1, 1]]
    assert ut.size == 0 and up.size == 0


def test_radius_applies_after_the_assignment_as_in_hover_net():
    # Distances t0-p0 1, t0-p1 7, t1-p0 8, t1-p1 13. The least total (1 + 13) beats 7 + 8, so
    # hover_net's order (assign, then drop pairs beyond 12 px) keeps one pair where two fit.
    y = np.sqrt(49 - (39 / 18) ** 2)
    true = np.array([[0.0, 0.0], [9.0, 0.0]])
    pred = np.array([[1.0, 0.0], [-39 / 18, y]])
    pairs, ut, up = pair_centroids(true, pred, radius=12)
    assert pairs.tolist() == [[0, 0]]
    assert ut.tolist() == [1] and up.tolist() == [1]


def test_pairing_radius_is_inclusive_and_drops_far_pairs():
    pairs, ut, up = pair_centroids([[0, 0], [50, 50]], [[12, 0], [70, 50]], radius=12)
    assert pairs.tolist() == [[0, 0]]
    assert ut.tolist() == [1] and up.tolist() == [1]
    pairs, ut, up = pair_centroids(np.zeros((0, 2)), [[1, 1]], radius=12)
    assert pairs.shape == (0, 2) and ut.size == 0 and up.tolist() == [0]
    with pytest.raises(ValueError, match="radius"):
        pair_centroids([[0, 0]], [[0, 0]], radius=-1)


def test_detection_counts_pool_images_hand_computed():
    vocab = Vocabulary.of("a", "b", "c")
    counts = DetectionCounts()
    counts.add(
        PointTable([[10, 10], [30, 10], [50, 10]], [1, 2, 1]),
        PointTable([[11, 10], [31, 10], [80, 80]], [1, 1, 2]),
        radius=12,
    )
    counts.add(PointTable([[5, 5]], [2]), PointTable([[6, 5], [100, 100]], [2, 2]), radius=12)
    res = counts.result(vocab)
    # Paired (true, pred) classes: (1,1), (2,1), (2,2); unpaired true [1]; unpaired pred [2, 2].
    assert (res["tp"], res["fp"], res["fn"], res["n_images"]) == (3, 2, 1, 2)
    assert res["f_d"] == pytest.approx(6 / (6 + 2 + 1))
    assert res["acc"] == pytest.approx(2 / 3)
    # Class a: TP 1, FP_c 1, FN_d 1 -> 2 / (2 + 2*1 + 1).
    assert res["f1"]["a"] == pytest.approx(2 / 5)
    # Class b: TP 1, FN_c 1, FP_d 2 -> 2 / (2 + 2*1 + 2).
    assert res["f1"]["b"] == pytest.approx(2 / 6)
    # Class c never occurs: undefined, reported as None.
    assert res["f1"]["c"] is None


def test_detection_counts_undefined_ratios_and_bad_classes():
    vocab = Vocabulary.of("a", "b")
    counts = DetectionCounts()
    counts.add(PointTable.empty(), PointTable.empty(), radius=12)
    res = counts.result(vocab)
    assert res["f_d"] is None and res["acc"] is None
    assert res["f1"] == {"a": None, "b": None}
    counts.add(PointTable([[0, 0]], [1]), PointTable.empty(), radius=12)
    res = counts.result(vocab)
    assert res["f_d"] == 0.0 and res["acc"] is None and res["f1"]["a"] == 0.0
    counts.add(PointTable([[0, 0]], [5]), PointTable([[0, 0]], [1]), radius=12)
    with pytest.raises(ValueError, match="class id 5"):
        counts.result(vocab)


# ----------------------------------------------------------------------------- distribution


def test_class_proportions():
    sem = np.array([[0, 1], [1, 2]])
    assert class_proportions(sem, 4).tolist() == [0.25, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="class id 3"):
        class_proportions(sem + 1, 3)
    with pytest.raises(ValueError, match="integer"):
        class_proportions(sem.astype(float), 3)


def test_frechet_distance_closed_forms():
    # 1-D: (0 - 1)^2 + 1 + 4 - 2 sqrt(1 * 4) = 2.
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0)
    # Diagonal: sum (m1 - m2)^2 + sum (sqrt(v1) - sqrt(v2))^2.
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(want)
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance([1, 2], s, [1, 2], s) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="means differ"):
        frechet_distance([0, 0], s, [0], [[1.0]])


def _semantic_set(rng, n, p):
    """n random 32x32 semantic maps with class probabilities p (background first)."""
    return [rng.choice(len(p), size=(32, 32), p=p) for _ in range(n)]


def test_fsd_scale_singular_classes_and_ordering():
    rng = np.random.default_rng(0)
    real = _semantic_set(rng, 30, [0.7, 0.2, 0.1])
    close = _semantic_set(rng, 30, [0.7, 0.2, 0.1])
    far = _semantic_set(rng, 30, [0.4, 0.1, 0.5])
    near_value = fsd(real, close, 3)
    assert 0 <= near_value < fsd(real, far, 3)
    assert fsd(real, real, 3) == pytest.approx(0.0, abs=1e-6)
    assert fsd(real, close, 3, scale=1) * 1e4 == pytest.approx(near_value, rel=1e-6)
    # A class absent from every map makes both covariances singular; it adds nothing.
    assert fsd(real, close, 5) == pytest.approx(near_value, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        fsd(real[:1], close, 3)


def test_fsd_on_real_consep_splits():
    if not CONSEP_LABELS.is_dir():
        pytest.skip("CoNSeP labels not available")
    from scipy.io import loadmat

    files = sorted(CONSEP_LABELS.glob("*.mat"))[:32]
    real = [loadmat(str(f))["type_map"].astype(np.int64) for f in files]
    # Relabelling every epithelial pixel as inflammatory shifts the class mix a lot.
    shifted = [np.where(s == 3, 2, s) for s in real]
    assert fsd(real[::2], real[1::2], 5) < fsd(real, shifted, 5)


# ----------------------------------------------------------------------------- folder comparison


def _write_pair(root, name, instances, classes, vocab=CONSEP, magnification=40.0):
    from napari_cosynth.data.folder import write_sample

    image = np.full((*instances.shape, 3), 200, np.uint8)
    sample = Sample(image, instances, classes, vocab, tissue="colon",
                    magnification=magnification, name=name)
    return write_sample(sample, root, name)


def _two_nuclei():
    inst = np.zeros((40, 40), np.int32)
    inst[5:13, 5:13] = 1
    inst[20:30, 20:30] = 2
    return inst


def test_compare_folders_identical_and_perturbed(tmp_path):
    inst = _two_nuclei()
    _write_pair(tmp_path / "true", "a", inst, [2, 3])
    _write_pair(tmp_path / "true", "b", inst, [1, 4])
    _write_pair(tmp_path / "pred", "a", inst, [2, 3])
    # Pair b's prediction loses the second nucleus and misclassifies the first.
    _write_pair(tmp_path / "pred", "b", np.where(inst == 2, 0, inst), [4])
    out = compare_folders(tmp_path / "true", tmp_path / "pred")
    assert out["n_pairs"] == out["n_instance_pairs"] == 2
    assert out["radius"] == 12.0
    # Pair a is perfect; pair b keeps nucleus 1 (64 px) and loses nucleus 2 (100 px).
    assert out["dice"] == pytest.approx((1.0 + 2 * 64 / (164 + 64)) / 2)
    assert out["pq"] == pytest.approx((1.0 + 1 / (1 + 0.5)) / 2)
    assert (out["tp"], out["fp"], out["fn"]) == (3, 0, 1)
    assert out["f_d"] == pytest.approx(6 / 7)
    assert out["acc"] == pytest.approx(2 / 3)
    assert set(out["f1"]) == set(CONSEP.nucleus_classes)

    same = compare_folders(tmp_path / "true", tmp_path / "true", radius=3)
    assert same["radius"] == 3.0
    assert all(same[k] == pytest.approx(1.0) for k in ("dice", "aji", "pq", "f_d", "acc"))


def test_compare_folders_reports_missing_counterparts_by_name(tmp_path):
    inst = _two_nuclei()
    for name in ("a", "b"):
        _write_pair(tmp_path / "true", name, inst, [2, 3])
    for name in ("a", "c"):
        _write_pair(tmp_path / "pred", name, inst, [2, 3])
    with pytest.raises(DatasetError) as err:
        compare_folders(tmp_path / "true", tmp_path / "pred")
    assert "no prediction" in str(err.value) and ": b" in str(err.value)
    assert "no ground truth" in str(err.value) and ": c" in str(err.value)


def test_compare_folders_rejects_mismatched_pairs(tmp_path):
    inst = _two_nuclei()
    _write_pair(tmp_path / "true", "a", inst, [2, 3])
    _write_pair(tmp_path / "small", "a", inst[:30, :30], [2, 3])
    with pytest.raises(DatasetError, match="30x30 but its ground truth is 40x40"):
        compare_folders(tmp_path / "true", tmp_path / "small")
    _write_pair(tmp_path / "other", "a", inst, [1, 2], vocab=Vocabulary.of("x", "y"))
    with pytest.raises(DatasetError, match="one vocabulary"):
        compare_folders(tmp_path / "true", tmp_path / "other")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no pairs"):
        compare_folders(tmp_path / "true", tmp_path / "empty")


def test_glas_object_dice_counts_misses_and_ignores_slight_contacts():
    from napari_cosynth.metrics.instance import object_dice, object_dice_glas

    true = np.zeros((10, 20), np.int32)
    true[2:8, 2:8] = 1
    true[2:8, 8:14] = 2
    assert object_dice_glas(true, true) == 1.0
    # a missed nucleus costs half of its side's weight and nothing on the prediction side
    only_first = np.where(true == 1, 1, 0)
    assert object_dice_glas(true, only_first) == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    # boundary shifted one column: the neighbour overlap enters hover_net's dice_2 in full
    shifted = true.copy()
    shifted[2:8, 8] = 1
    assert object_dice_glas(true, shifted) > object_dice(true, shifted)
    merged = (true > 0).astype(np.int32)
    assert object_dice_glas(true, merged) == pytest.approx(2 * 36 / (36 + 72))
