"""A pair from hand-edited maps: the checks and repairs that make painted labels writable.

Painting in a viewer leaves maps that no reader would accept as they are: erasing and painting leave
gaps in the instance ids, a nucleus painted on background has no class, a distance map can be pushed
outside [0, 1]. :func:`sample_from_maps` turns such maps into a consistent
:class:`~napari_cosynth.sample.Sample`; the napari widget (its export, its writer and its
``resynthesize``) calls it, and any other editor can.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential

from ..errors import CosynthError
from ..sample import PointTable, Sample, Vocabulary
from .instances import vote_classes


def sample_from_maps(
    image: np.ndarray,
    semantic: np.ndarray,
    distance: np.ndarray | None,
    instances: np.ndarray,
    vocabulary: Vocabulary,
    *,
    instance_classes: dict | None = None,
    points: PointTable | None = None,
    tissue: str = "unknown",
    magnification: float = 40.0,
    name: str = "pair",
    provenance: dict | None = None,
) -> Sample:
    """A pair from (possibly hand-edited) maps, made consistent enough to write.

    Instance ids are renumbered 1..N (painting and erasing leave gaps), each instance takes the
    majority class of the semantic map under it (:func:`~.instances.vote_classes`;
    ``instance_classes`` {id: class id} for instances drawn on background), and the distance map is
    clipped to [0, 1].

    Raises
    ------
    CosynthError
        If the maps differ in size, the image is not RGB uint8, the semantic map holds a class id
        the vocabulary lacks, an instance on background has no class, or a layout point lies off
        the pair.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise CosynthError(f"{name}: the image must be RGB uint8, got {image.dtype} {image.shape}")
    shape = image.shape[:2]
    maps = {"semantic": np.asarray(semantic), "instances": np.asarray(instances)}
    if distance is not None:
        maps["distance"] = np.asarray(distance)
    for role, a in maps.items():
        if a.shape != shape:
            raise CosynthError(
                f"{name}: the {role} map is {'x'.join(map(str, a.shape))} but the image is "
                f"{shape[0]}x{shape[1]}; the maps of a pair must match pixel for pixel"
            )
    sem = maps["semantic"]
    if sem.size and (sem.min() < 0 or sem.max() >= vocabulary.n_classes):
        raise CosynthError(
            f"{name}: the semantic map holds label {int(sem.max())}, but the classes are "
            f"0..{vocabulary.n_classes - 1} ({', '.join(vocabulary.names)}); paint with those labels"
        )
    sem = sem.astype(np.uint8)
    inst = maps["instances"]
    if inst.size and inst.min() < 0:
        raise CosynthError(f"{name}: the instance map holds negative label {int(inst.min())}")
    relabelled, forward, _ = relabel_sequential(inst.astype(np.int64))
    fallback = None
    if instance_classes:
        fallback = {int(new): int(instance_classes[int(old)])
                    for old, new in zip(forward.in_values, forward.out_values)
                    if new and int(old) in instance_classes}
    classes = vote_classes(relabelled, sem, fallback)
    dist = None
    if distance is not None:
        dist = np.clip(np.nan_to_num(maps["distance"].astype(np.float32)), 0.0, 1.0)
    if points is not None and points.outside(shape).any():
        raise CosynthError(
            f"{name}: {int(points.outside(shape).sum())} layout point(s) lie outside the "
            f"{shape[0]}x{shape[1]} pair; move them onto it"
        )
    return Sample(image=image, instances=relabelled.astype(np.int32), classes=classes,
                  vocabulary=vocabulary, tissue=tissue, magnification=magnification, name=name,
                  points=points, semantic=sem, distance=dist, provenance=dict(provenance or {}))


def edited_pair(pair: Sample, semantic: np.ndarray, instances: np.ndarray | None = None, *,
                image: np.ndarray | None = None, instance_classes: dict | None = None) -> Sample:
    """``pair`` after its labels were edited, as a model should see it when it redraws the image.

    Without ``instances`` they are recovered from the edited ``semantic`` map and the pair's distance
    map (an erased nucleus disappears, a painted one appears). The maps are made consistent by
    :func:`sample_from_maps`, the distance map is then derived from the instances (the definition the
    model was trained on; the old one still shows erased nuclei), and the layout points are dropped
    (readers and the model then use the instances' centroids, which match the edits). Used by the
    widget's re-synthesis and ``CoSynthPipeline.resynthesize(pair, edited_semantic)``.
    """
    from .distance import distance_map
    from .instances import SeparationParams, instances_from_maps

    semantic = np.asarray(semantic)
    if instances is None:
        distance = np.asarray(pair.distance_map(), dtype=np.float32)
        if semantic.shape != distance.shape:
            raise CosynthError(f"{pair.name}: the edited semantic map is {semantic.shape}, the pair "
                               f"{distance.shape}; edit a map of the pair's size")
        instances, _ = instances_from_maps(semantic.astype(np.uint8), distance,
                                           SeparationParams.for_magnification(pair.magnification))
    out = sample_from_maps(pair.image if image is None else image, semantic, None, instances,
                           pair.vocabulary, instance_classes=instance_classes, points=None,
                           tissue=pair.tissue, magnification=pair.magnification, name=pair.name,
                           provenance=pair.provenance)
    return out.with_(distance=distance_map(out.instances).astype(np.float32))
