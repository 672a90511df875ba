"""How well instances can be recovered from maps: distance-based watershed vs connected components.

CoSyn's argument for generating a distance map is that connected components of the semantic map merge
touching nuclei. This measures both recoveries on real annotations, where the semantic and distance
maps are derived from the true instances, so the figures bound what a perfect generator could reach.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..labels.instances import (
    SeparationParams,
    connected_components,
    instances_from_maps,
)
from ..metrics.instance import instance_scores

ROW_METRICS = ("object_dice_glas", "object_dice", "aji", "pq", "dq", "sq")


def separation_report(path, format: str, *, magnification: float | None = None,
                      params: SeparationParams | None = None) -> dict:
    """Mean object Dice, AJI and PQ of both recoveries over the samples with masks in a dataset.

    ``params`` defaults to :meth:`SeparationParams.for_magnification` of the samples.
    """
    from ..data.registry import read_dataset

    rows = {"distance": [], "conventional": []}
    skipped = 0
    mag = None
    for sample in read_dataset(path, format, magnification=magnification):
        mag = sample.magnification
        if not sample.has_masks:
            skipped += 1
            continue
        semantic = sample.semantic_map()
        used = params or SeparationParams.for_magnification(sample.magnification)
        by_distance, _ = instances_from_maps(semantic, sample.distance_map(), used)
        by_components, _ = connected_components(semantic)
        rows["distance"].append(instance_scores(sample.instances, by_distance))
        rows["conventional"].append(instance_scores(sample.instances, by_components))
    n = len(rows["distance"])
    if n == 0:
        from ..errors import CosynthError

        raise CosynthError(f"{path}: no sample with instance masks to measure separation on "
                           f"({skipped} points-only samples)")
    report = {"dataset": str(path), "format": format, "magnification": mag, "n_samples": n}
    for name, scores in rows.items():
        report[name] = {m: float(np.mean([s[m] for s in scores])) for m in ROW_METRICS}
    report["params"] = asdict(used)
    return report
