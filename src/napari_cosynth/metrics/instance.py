"""Instance segmentation scores: binary Dice, AJI, AJI+, PQ (DQ, SQ) and object Dice.

These are HoVer-Net's definitions (Graham et al., Medical Image Analysis 2019), ported from
``vqdang/hover_net``, file ``metrics/stats_utils.py`` (``get_dice_1``, ``get_fast_aji``,
``get_fast_aji_plus``, ``get_fast_pq``, ``get_fast_dice_2``), so that numbers computed here can be
put beside the ones published with that code and with CoSyn. They are re-implemented rather than
imported because hover_net is not a package (and pulls in OpenCV and matplotlib), and because its
per-instance mask loops grow with nuclei x pixels: one contingency table (every pairwise
intersection from a single ``np.bincount`` over combined ids) was 10x faster on CoNSeP patches
(docs/metrics.md gives the measurement).

Differences from the reference, all deliberate and documented in docs/metrics.md:

* ids may be arbitrary non-negative integers (hover_net asks the caller to ``remap_label`` first;
  we renumber the same way, keeping the order of ids, so tie-breaks are the same);
* 0/0 cases that hover_net turns into NaN or a ``ZeroDivisionError`` are defined: an empty
  prediction on an empty ground truth scores 1.0 everywhere, one empty side scores 0.0;
* SQ divides by TP exactly (hover_net adds 1e-6, so a perfect prediction gave 0.99999999).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["aji", "aji_plus", "dice", "instance_scores", "object_dice", "object_dice_glas", "pq"]

# hover_net's AJI/AJI+ divide intersection by (union + 1e-6) before pairing; we keep it so that
# exact ties between candidate pairs are broken the same way (the larger union wins).
_AJI_EPS = 1.0e-6


def _check_pair(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true)
    pred = np.asarray(pred)
    for name, arr in (("true", true), ("pred", pred)):
        if arr.ndim != 2:
            raise ValueError(f"{name} instance map must be 2-D, got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise ValueError(
                f"{name} instance map must hold integer ids (0 = background), got {arr.dtype}"
            )
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name} instance map holds negative id {int(arr.min())}")
    if true.dtype == bool:
        true = true.astype(np.uint8)
    if pred.dtype == bool:
        pred = pred.astype(np.uint8)
    if true.shape != pred.shape:
        raise ValueError(
            f"true and pred instance maps differ in size: {true.shape} vs {pred.shape}"
        )
    return true, pred


def _renumber(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids mapped to 0 (background) and 1..N in increasing order of the original id; and N."""
    top = int(ids.max(initial=0))
    if top <= 4 * ids.size + 1024:
        # A lookup table is linear in pixels, where np.unique sorts (5-10x slower on a patch).
        present = np.zeros(top + 1, dtype=bool)
        present[ids] = True
        present[0] = False
        lut = np.cumsum(present, dtype=np.int64)
        return lut[ids], int(lut[-1])
    uniq, inverse = np.unique(ids, return_inverse=True)
    if uniq[0] != 0:  # no background pixel: shift so that 0 stays reserved for it
        inverse = inverse + 1
    return inverse.astype(np.int64, copy=False), int(np.count_nonzero(uniq))


class _Overlap:
    """Areas of every true and predicted instance and all their pairwise intersections.

    Instances are renumbered 1..N in increasing id order (hover_net's ``remap_label`` without
    ``by_size``), so row i of ``inter`` is the i-th smallest true id.
    """

    def __init__(self, true: np.ndarray, pred: np.ndarray):
        true, pred = _check_pair(true, pred)
        t, self.n_true = _renumber(true.ravel())
        p, self.n_pred = _renumber(pred.ravel())
        cols = self.n_pred + 1
        joint = np.bincount(t * cols + p, minlength=(self.n_true + 1) * cols)
        joint = joint.reshape(self.n_true + 1, cols).astype(np.float64)
        self.true_area = joint[1:].sum(axis=1)
        self.pred_area = joint[:, 1:].sum(axis=0)
        self.inter = joint[1:, 1:]
        # Union only where the pair overlaps; 0 elsewhere, as in hover_net's prefilled matrices.
        overlap = self.inter > 0
        self.union = np.where(
            overlap, self.true_area[:, None] + self.pred_area[None, :] - self.inter, 0.0
        )

    @property
    def both_empty(self) -> bool:
        return self.n_true == 0 and self.n_pred == 0

    def iou(self, eps: float = 0.0) -> np.ndarray:
        out = np.zeros_like(self.inter)
        np.divide(self.inter, self.union + eps, out=out, where=self.union > 0)
        return out


def _dice(ov: _Overlap) -> float:
    fg_true = ov.true_area.sum()
    fg_pred = ov.pred_area.sum()
    if fg_true + fg_pred == 0:
        return 1.0
    return float(2.0 * ov.inter.sum() / (fg_true + fg_pred))


def _aji_from_pairs(ov: _Overlap, rows: np.ndarray, cols: np.ndarray) -> float:
    if ov.both_empty:
        return 1.0
    overall_inter = ov.inter[rows, cols].sum()
    overall_union = ov.union[rows, cols].sum()
    unpaired_true = np.ones(ov.n_true, dtype=bool)
    unpaired_true[rows] = False
    unpaired_pred = np.ones(ov.n_pred, dtype=bool)
    unpaired_pred[cols] = False
    overall_union += ov.true_area[unpaired_true].sum() + ov.pred_area[unpaired_pred].sum()
    return float(overall_inter / overall_union)


def _aji(ov: _Overlap) -> float:
    if ov.n_true == 0 or ov.n_pred == 0:
        return _aji_from_pairs(ov, np.zeros(0, int), np.zeros(0, int))
    iou = ov.iou(_AJI_EPS)
    # Each true instance takes its best-IoU prediction; a prediction may serve several true
    # instances (the over-penalisation AJI+ was made to remove).
    best = np.argmax(iou, axis=1)
    rows = np.flatnonzero(iou[np.arange(ov.n_true), best] > 0.0)
    return _aji_from_pairs(ov, rows, best[rows])


def _aji_plus(ov: _Overlap) -> float:
    if ov.n_true == 0 or ov.n_pred == 0:
        return _aji_from_pairs(ov, np.zeros(0, int), np.zeros(0, int))
    iou = ov.iou(_AJI_EPS)
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] > 0.0
    return _aji_from_pairs(ov, rows[keep], cols[keep])


def _pq(ov: _Overlap, match_iou: float) -> dict[str, float]:
    if match_iou < 0.0:
        raise ValueError(f"match_iou must be >= 0, got {match_iou}")
    if ov.both_empty:
        return {"dq": 1.0, "sq": 1.0, "pq": 1.0}
    iou = ov.iou()
    if match_iou >= 0.5:
        # Above 0.5 a true and a predicted instance can each have at most one partner, so
        # thresholding alone gives the unique, maximal matching.
        rows, cols = np.nonzero(iou > match_iou)
    else:
        rows, cols = linear_sum_assignment(-iou)
        keep = iou[rows, cols] > match_iou
        rows, cols = rows[keep], cols[keep]
    tp = len(rows)
    fp = ov.n_pred - tp
    fn = ov.n_true - tp
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(iou[rows, cols].sum() / tp) if tp else 0.0
    return {"dq": float(dq), "sq": sq, "pq": float(dq * sq)}


def _object_dice(ov: _Overlap) -> float:
    if ov.both_empty:
        return 1.0
    overlap = ov.inter > 0
    if not overlap.any():
        return 0.0
    total = (ov.true_area[:, None] + ov.pred_area[None, :])[overlap].sum()
    return float(2.0 * ov.inter.sum() / total)


def _glas_dice(ov: _Overlap) -> float:
    if ov.both_empty:
        return 1.0
    if ov.n_true == 0 or ov.n_pred == 0:
        return 0.0

    def one_side(inter, area_a, area_b):
        # Each object of side a against its most-overlapping object of side b, area-weighted.
        best = np.argmax(inter, axis=1)
        hit = inter[np.arange(len(area_a)), best]
        d = np.where(hit > 0, 2.0 * hit / (area_a + area_b[best]), 0.0)
        return float((area_a * d).sum() / area_a.sum())

    return 0.5 * (one_side(ov.inter, ov.true_area, ov.pred_area)
                  + one_side(ov.inter.T, ov.pred_area, ov.true_area))


def dice(true: np.ndarray, pred: np.ndarray) -> float:
    """Binary foreground Dice, ``2|T ∩ P| / (|T| + |P|)`` over all nucleus pixels.

    hover_net's ``get_dice_1``. Instance ids are ignored (any non-zero pixel is foreground).

    Parameters
    ----------
    true, pred : (H, W) integer arrays
        Instance maps, 0 = background, other ids arbitrary.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both maps are empty, 0.0 when exactly one is.
    """
    return _dice(_Overlap(true, pred))


def aji(true: np.ndarray, pred: np.ndarray) -> float:
    """Aggregated Jaccard Index, MoNuSeg's version (hover_net's ``get_fast_aji``).

    Each true instance is paired with the predicted instance of highest IoU (a prediction may be
    reused); AJI = sum of paired intersections / (sum of paired unions + areas of every true
    instance without an overlapping prediction + areas of predictions paired with nothing).

    Parameters
    ----------
    true, pred : (H, W) integer arrays
        Instance maps, 0 = background, other ids arbitrary.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both maps are empty, 0.0 when exactly one is.
    """
    return _aji(_Overlap(true, pred))


def aji_plus(true: np.ndarray, pred: np.ndarray) -> float:
    """AJI+ (hover_net's ``get_fast_aji_plus``): AJI with a one-to-one pairing.

    The pairing maximises the summed IoU (Hungarian method); pairs without overlap are dropped
    and their members counted as unpaired.

    Parameters
    ----------
    true, pred : (H, W) integer arrays
        Instance maps, 0 = background, other ids arbitrary.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both maps are empty, 0.0 when exactly one is.
    """
    return _aji_plus(_Overlap(true, pred))


def pq(true: np.ndarray, pred: np.ndarray, match_iou: float = 0.5) -> dict[str, float]:
    """Panoptic quality, hover_net's ``get_fast_pq``: ``{"dq": DQ, "sq": SQ, "pq": DQ * SQ}``.

    A true and a predicted instance are a pair (TP) when their IoU > ``match_iou``; for
    ``match_iou >= 0.5`` such pairs are unique, below that the Hungarian method picks a maximal
    one-to-one pairing first. DQ = TP / (TP + FP/2 + FN/2), SQ = mean IoU of the pairs.

    Parameters
    ----------
    true, pred : (H, W) integer arrays
        Instance maps, 0 = background, other ids arbitrary.
    match_iou : float
        IoU threshold (strictly greater than), >= 0.

    Returns
    -------
    dict
        ``dq``, ``sq``, ``pq`` in [0, 1]. All 1.0 when both maps are empty; with no pair at all
        SQ is 0.0 (as in hover_net), so PQ is 0.0.
    """
    return _pq(_Overlap(true, pred), match_iou)


def object_dice(true: np.ndarray, pred: np.ndarray) -> float:
    """Object-level ("ensemble") Dice for instance separation: hover_net's ``get_fast_dice_2``.

    Sums over every overlapping (true, predicted) pair: ``2 Σ|T_i ∩ P_j| / Σ(|T_i| + |P_j|)``.
    A true nucleus split into two predictions, or two nuclei merged into one, enter the
    denominator twice, so unlike binary Dice this drops when touching nuclei are not separated.
    Nuclei that overlap nothing (missed or spurious) do not enter it: it scores separation, not
    detection. This is the object Dice we report as the separation "mDice" (docs/metrics.md).

    Parameters
    ----------
    true, pred : (H, W) integer arrays
        Instance maps, 0 = background, other ids arbitrary.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both maps are empty, 0.0 when nothing overlaps (including one side
        empty).
    """
    return _object_dice(_Overlap(true, pred))


def object_dice_glas(true: np.ndarray, pred: np.ndarray) -> float:
    """Object-level Dice of the GlaS challenge (Sirinukunwattana et al., MedIA 2017).

    ``1/2 [Σ_i γ_i D(T_i, P*(T_i)) + Σ_j σ_j D(T*(P_j), P_j)]`` where ``P*(T_i)`` is the prediction
    overlapping ``T_i`` most (Dice 0 if none), ``γ_i`` the area share of ``T_i`` among true objects and
    likewise for predictions. Unlike :func:`object_dice`, missed and spurious objects count (as 0),
    and a tiny contact between a nucleus and its neighbour's prediction costs nothing, which suits
    a mean-Dice reading of separation quality.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both maps are empty, 0.0 when exactly one is.
    """
    return _glas_dice(_Overlap(true, pred))


def instance_scores(
    true: np.ndarray, pred: np.ndarray, match_iou: float = 0.5
) -> dict[str, float]:
    """Every score above from one contingency table.

    Returns
    -------
    dict
        ``dice``, ``aji``, ``aji_plus``, ``dq``, ``sq``, ``pq``, ``object_dice``, ``object_dice_glas``,
        plus ``n_true`` and ``n_pred`` (instance counts).
    """
    ov = _Overlap(true, pred)
    scores = {"dice": _dice(ov), "aji": _aji(ov), "aji_plus": _aji_plus(ov)}
    scores.update(_pq(ov, match_iou))
    scores["object_dice"] = _object_dice(ov)
    scores["object_dice_glas"] = _glas_dice(ov)
    scores["n_true"] = ov.n_true
    scores["n_pred"] = ov.n_pred
    return scores
