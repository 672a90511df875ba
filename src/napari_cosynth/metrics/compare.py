"""Score one folder of pairs against another (``cosynth metrics TRUE_DIR PRED_DIR``).

Both folders are in the project's folder format: one sub-folder per pair, matched by name. The
instance scores are averaged over pairs (as hover_net's ``compute_stats.py`` averages them over
images); the detection scores are pooled over all nuclei of all pairs (as hover_net pools them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .detection import DetectionCounts, radius_for
from .instance import instance_scores

__all__ = ["INSTANCE_KEYS", "compare_folders"]

INSTANCE_KEYS = ("dice", "aji", "aji_plus", "dq", "sq", "pq", "object_dice", "object_dice_glas")


def _pairs(folder: Path) -> dict[str, Path]:
    """Pair folders by name; a folder that is itself a pair is a set of one."""
    from ..data.folder import list_pairs

    pairs = {p.name: p for p in list_pairs(folder)}
    if not pairs:
        raise DatasetError(folder, "holds no pairs (expected sub-folders <name>/ with meta.json)")
    return pairs


def _missing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def compare_folders(
    true_dir: str | Path, pred_dir: str | Path, *, radius: float | None = None
) -> dict:
    """Instance, detection and classification scores of the pairs in ``pred_dir``.

    Parameters
    ----------
    true_dir, pred_dir : path
        Folders in the folder format; every pair of one must have a namesake in the other. Two
        single pair folders may also be given, and are compared whatever their names.
    radius : float, optional
        Centroid pairing radius in pixels. Default: :func:`radius_for` the magnification recorded
        in each true pair (12 px at 40x).

    Returns
    -------
    dict
        ``n_pairs``; the means over pairs with instance maps on both sides of ``dice``, ``aji``,
        ``aji_plus``, ``dq``, ``sq``, ``pq``, ``object_dice`` (None if no pair has both maps)
        and ``n_instance_pairs``, their number; the pooled ``f_d``, ``acc``, ``f1`` (per class
        name), ``tp``, ``fp``, ``fn`` of :meth:`DetectionCounts.result`; ``radius``, the pairing
        radius used (a sorted list of the distinct radii if the pairs' magnifications differ).

    Raises
    ------
    DatasetError
        A folder is missing or empty, a pair has no counterpart (all such names are listed), two
        counterparts differ in size or class vocabulary, or a pair cannot be read.
    """
    # Imported here: the folder reader pulls in image I/O that the metrics themselves do not need.
    from ..data.folder import is_pair, read_sample

    true_dir, pred_dir = Path(true_dir), Path(pred_dir)
    true_pairs, pred_pairs = _pairs(true_dir), _pairs(pred_dir)
    if is_pair(true_dir) and is_pair(pred_dir):
        # Two single pairs given directly: compare them whatever their names.
        pred_pairs = {true_dir.name: pred_dir}
    true_names, pred_names = sorted(true_pairs), sorted(pred_pairs)
    only_true = sorted(set(true_names) - set(pred_names))
    only_pred = sorted(set(pred_names) - set(true_names))
    if only_true or only_pred:
        problems = []
        if only_true:
            problems.append(f"{len(only_true)} pair(s) with no prediction in {pred_dir}: "
                            f"{_missing(only_true)}")
        if only_pred:
            problems.append(f"{len(only_pred)} prediction(s) with no ground truth in {true_dir}: "
                            f"{_missing(only_pred)}")
        problems.append("pairs are matched by sub-folder name")
        raise DatasetError(pred_dir, "; ".join(problems))

    per_pair: list[dict] = []
    counts = DetectionCounts()
    radii: set[float] = set()
    vocabulary = None
    for name in true_names:
        true = read_sample(true_pairs[name])
        pred = read_sample(pred_pairs[name])
        if vocabulary is None:
            vocabulary = true.vocabulary
        for sample, where in ((true, true_pairs[name]), (pred, pred_pairs[name])):
            if sample.vocabulary != vocabulary:
                raise DatasetError(
                    where,
                    f"classes are {', '.join(sample.vocabulary.nucleus_classes)} but "
                    f"{true_pairs[true_names[0]]} has {', '.join(vocabulary.nucleus_classes)}; "
                    "compare pairs that share one vocabulary",
                )
        if true.shape != pred.shape:
            raise DatasetError(
                pred_pairs[name],
                f"is {pred.shape[0]}x{pred.shape[1]} but its ground truth is "
                f"{true.shape[0]}x{true.shape[1]}",
            )
        if true.has_masks and pred.has_masks:
            per_pair.append(instance_scores(true.instances, pred.instances))
        r = radius if radius is not None else radius_for(true.magnification)
        radii.add(float(r))
        counts.add(true.point_table(), pred.point_table(), r)

    out: dict = {"n_pairs": len(true_names), "n_instance_pairs": len(per_pair)}
    for key in INSTANCE_KEYS:
        out[key] = float(np.mean([s[key] for s in per_pair])) if per_pair else None
    detection = counts.result(vocabulary)
    for key in ("f_d", "acc", "f1", "tp", "fp", "fn"):
        out[key] = detection[key]
    out["radius"] = radii.pop() if len(radii) == 1 else sorted(radii)
    return out
