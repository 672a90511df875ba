"""Detection and classification scores on nucleus centroids: F_d, Acc and per-class F1.

Ported from HoVer-Net (Graham et al. 2019), ``vqdang/hover_net``: the pairing is
``metrics/stats_utils.py:pair_coordinates`` and the pooled scores are ``compute_stats.py:
run_nuclei_type_stat``, the evaluation CoSyn's downstream table (F_d, Acc) follows. Written here
because hover_net is not an installable package; the counting is pooled over images in an
accumulator so that a folder of thousands of pairs never has to be held in memory.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ..sample import PointTable, Vocabulary

__all__ = ["DetectionCounts", "pair_centroids", "radius_for"]

# hover_net's pairing radius for CoNSeP/PanNuke at 40x (about 3 microns at 0.25 micron/px).
RADIUS_AT_40X = 12.0

# compute_stats.py's weights on (FP_c, FN_c, FP_d, FN_d): a misclassified detection costs twice an
# undetected or spurious one.
_F1_WEIGHTS = (2.0, 2.0, 1.0, 1.0)


def radius_for(magnification: float) -> float:
    """Pairing radius in pixels: 12 px at 40x, scaled linearly (6 px at 20x).

    Parameters
    ----------
    magnification : float
        Objective magnification of the images (e.g. 40.0 for CoNSeP, 20.0 for Lizard).
    """
    mag = float(magnification)
    if not np.isfinite(mag) or mag <= 0:
        raise ValueError(f"magnification must be a positive number, got {magnification!r}")
    return RADIUS_AT_40X * mag / 40.0


def pair_centroids(
    true_xy: np.ndarray, pred_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one pairing of true and predicted centroids (hover_net's ``pair_coordinates``).

    The Hungarian method minimises the summed Euclidean distance over all points; pairs farther
    apart than ``radius`` are then dropped and their members count as unpaired. (The assignment
    is made before the radius is applied, exactly as in hover_net.)

    Parameters
    ----------
    true_xy, pred_xy : (N, 2), (M, 2) float arrays
        Coordinates, in the same pixel frame (x, y order does not matter, both must agree).
    radius : float
        Largest distance, in pixels, at which two points still pair (inclusive).

    Returns
    -------
    pairs : (P, 2) int64 array
        Rows ``(index into true_xy, index into pred_xy)``, sorted by true index.
    unpaired_true, unpaired_pred : int64 arrays
        Indices left without a partner, ascending.
    """
    a = np.asarray(true_xy, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a non-negative number of pixels, got {radius!r}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("centroid coordinates must be finite (found NaN or inf)")
    if len(a) and len(b):
        dist = cdist(a, b)
        rows, cols = linear_sum_assignment(dist)
        keep = dist[rows, cols] <= radius
        rows, cols = rows[keep], cols[keep]
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    pairs = np.stack([rows, cols], axis=1).astype(np.int64).reshape(-1, 2)
    unpaired_true = np.setdiff1d(np.arange(len(a)), rows).astype(np.int64)
    unpaired_pred = np.setdiff1d(np.arange(len(b)), cols).astype(np.int64)
    return pairs, unpaired_true, unpaired_pred


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


class DetectionCounts:
    """Pools paired and unpaired nuclei over many images, then scores them together.

    Pooling (rather than averaging per-image scores) is what hover_net's ``compute_stats.py``
    does, so an image with three nuclei weighs three nuclei, not one image.

    Examples
    --------
    >>> counts = DetectionCounts()
    >>> counts.add(true_points, pred_points, radius=radius_for(40))   # doctest: +SKIP
    >>> counts.result(vocabulary)["f_d"]                               # doctest: +SKIP
    """

    def __init__(self):
        self._paired_true: list[np.ndarray] = []
        self._paired_pred: list[np.ndarray] = []
        self._unpaired_true: list[np.ndarray] = []
        self._unpaired_pred: list[np.ndarray] = []
        self.n_images = 0

    def add(self, true: PointTable, pred: PointTable, radius: float) -> None:
        """Pair the centroids of one image and record the classes of each outcome.

        Parameters
        ----------
        true, pred : PointTable
            Ground-truth and predicted centroids with their class ids.
        radius : float
            Pairing radius in pixels (see :func:`radius_for`).
        """
        pairs, ut, up = pair_centroids(true.xy, pred.xy, radius)
        self._paired_true.append(true.classes[pairs[:, 0]])
        self._paired_pred.append(pred.classes[pairs[:, 1]])
        self._unpaired_true.append(true.classes[ut])
        self._unpaired_pred.append(pred.classes[up])
        self.n_images += 1

    @staticmethod
    def _cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def result(self, vocabulary: Vocabulary) -> dict:
        """Pooled scores.

        Parameters
        ----------
        vocabulary : Vocabulary
            Names the classes; every class id seen must be one of its nucleus classes.

        Returns
        -------
        dict
            ``f_d`` = 2TP / (2TP + FP + FN); ``acc`` = paired nuclei whose classes agree / paired
            nuclei; ``f1`` = {class name: F1_c}, hover_net's per-class F1 with weights
            (2, 2, 1, 1); and the counts ``tp``, ``fp``, ``fn``, ``n_images``. A ratio whose
            denominator is zero is ``None``: ``f_d`` with no nuclei on either side, ``acc`` with
            no pairs, ``f1[c]`` for a class present on neither side.
        """
        pt, pp = self._cat(self._paired_true), self._cat(self._paired_pred)
        ut, up = self._cat(self._unpaired_true), self._cat(self._unpaired_pred)
        for where, ids in (("true points", np.concatenate([pt, ut])),
                           ("predicted points", np.concatenate([pp, up]))):
            vocabulary.check_ids(ids, where)
        tp, fp, fn = len(pt), len(up), len(ut)
        out: dict = {
            "f_d": _ratio(2 * tp, 2 * tp + fp + fn),
            "acc": _ratio(int((pt == pp).sum()), tp),
            "f1": {},
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "n_images": self.n_images,
        }
        for c, name in enumerate(vocabulary.names):
            if c == 0:
                continue
            out["f1"][name] = _class_f1(pt, pp, ut, up, c)
        return out


def _class_f1(pt, pp, ut, up, c) -> float | None:
    """hover_net's ``_f1_type``: F1 of class c over paired and unpaired nuclei.

    Only pairs where either side is class c count, so TN_c (neither side c) is always 0 there;
    it is kept in the formula to match the paper's F_c. hover_net calls this with the unpaired
    true and predicted arrays swapped, which changes nothing because both carry weight 1.
    """
    involved = (pt == c) | (pp == c)
    t, p = pt[involved], pp[involved]
    tp_c = int(((t == c) & (p == c)).sum())
    tn_c = int(((t != c) & (p != c)).sum())
    fp_c = int(((t != c) & (p == c)).sum())
    fn_c = int(((t == c) & (p != c)).sum())
    fp_d = int((up == c).sum())
    fn_d = int((ut == c).sum())
    w = _F1_WEIGHTS
    num = 2 * (tp_c + tn_c)
    den = num + w[0] * fp_c + w[1] * fn_c + w[2] * fp_d + w[3] * fn_d
    return _ratio(num, den)
