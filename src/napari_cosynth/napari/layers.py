"""Conversions between a :class:`Sample` and napari layers (data tuples out, numpy arrays in).

A pair is shown as four layers, named after the pair or the run that made it: the RGB image, the
semantic map (Labels with the class colours, class names in its features), the distance map (Image)
and the instances (Labels whose features table maps each id to its class). Each layer's metadata
carries ``{"cosynth": {"role": ..., "vocabulary": ..., "provenance": ...}}`` so the widget, the writer
and the export can find the parts of a pair again whatever the user renames them to.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential

from ..errors import CosynthError
from ..sample import PointTable, Sample, Vocabulary
from ..vocabularies import class_colors

ROLES = ("image", "semantic", "distance", "instances")


def class_colormap(n_classes: int) -> dict:
    """A napari ``DirectLabelColormap`` spec mapping class id -> colour (None -> transparent)."""
    colors = {i: tuple(c / 255 for c in rgba) for i, rgba in enumerate(class_colors(n_classes))}
    colors[None] = (0.0, 0.0, 0.0, 0.0)
    return colors


def semantic_features(vocabulary: Vocabulary) -> dict:
    """Features of a semantic Labels layer: label value (class id) -> class name."""
    return {"index": np.arange(vocabulary.n_classes), "class": list(vocabulary.names)}


def instance_features(classes: np.ndarray, vocabulary: Vocabulary) -> dict:
    """Features of an instance Labels layer: instance id -> class id and class name."""
    classes = np.asarray(classes, dtype=np.int64)
    return {
        "index": np.arange(1, len(classes) + 1),
        "class_id": classes,
        "class": [vocabulary.names[c] for c in classes],
    }


def layer_meta(sample: Sample, role: str, run: str | None = None) -> dict:
    """The ``metadata`` of one layer of a pair (its role, vocabulary, tissue and provenance)."""
    return {"cosynth": {
        "role": role, "run": run, "name": sample.name, "tissue": sample.tissue,
        "magnification": sample.magnification, "vocabulary": list(sample.vocabulary.names),
        "provenance": dict(sample.provenance),
    }}


def sample_to_layers(
    sample: Sample, prefix: str | None = None, *, include_points: bool = True, run: str | None = None
) -> list[tuple]:
    """Layer data tuples (data, kwargs, type): image, semantic, distance, instances, points.

    Parameters
    ----------
    sample : Sample
        The pair to show.
    prefix : str, optional
        Start of every layer name (default: the sample's name).
    include_points : bool
        Also return its point table as an editable layout layer (see :mod:`.points`).
    run : str, optional
        Name of the widget run that made the pair, kept in each layer's metadata.
    """
    from .points import points_layer_data

    prefix = prefix or sample.name
    vocab = sample.vocabulary
    layers = []
    if sample.image is not None:
        layers.append((sample.image, {"name": f"{prefix} image", "rgb": True,
                                      "metadata": layer_meta(sample, "image", run)}, "image"))
    if sample.has_masks:
        from napari.utils.colormaps import DirectLabelColormap

        layers.append((np.asarray(sample.semantic_map(), dtype=np.uint8), {
            "name": f"{prefix} semantic",
            "colormap": DirectLabelColormap(color_dict=class_colormap(vocab.n_classes)),
            "features": semantic_features(vocab),
            "opacity": 0.5, "metadata": layer_meta(sample, "semantic", run)}, "labels"))
        layers.append((np.asarray(sample.distance_map(), dtype=np.float32), {
            "name": f"{prefix} distance", "colormap": "magma", "contrast_limits": (0.0, 1.0),
            "blending": "additive", "visible": False,
            "metadata": layer_meta(sample, "distance", run)}, "image"))
        layers.append((sample.instances, {
            "name": f"{prefix} instances",
            "features": instance_features(sample.classes, vocab),
            # Created visible: napari (0.9) cannot write into a Labels layer through its undo
            # history (data_setitem) before the layer was first drawn.
            "opacity": 0.9,
            "metadata": layer_meta(sample, "instances", run)}, "labels"))
    points = sample.point_table()
    if include_points and len(points):
        data, kwargs, kind = points_layer_data(points, vocab, name=f"{prefix} points")
        kwargs["metadata"] = layer_meta(sample, "layout", run)
        layers.append((data, kwargs, kind))
    return layers


def role_of(metadata: dict | None) -> str | None:
    """The pair role recorded in a layer's metadata, if any."""
    return ((metadata or {}).get("cosynth") or {}).get("role")


def vocabulary_of(metadata: dict | None) -> Vocabulary | None:
    """The class vocabulary recorded in a layer's metadata, if any."""
    names = ((metadata or {}).get("cosynth") or {}).get("vocabulary")
    return Vocabulary(tuple(names)) if names else None


def vote_classes(instances: np.ndarray, semantic: np.ndarray, fallback: dict | None = None) -> np.ndarray:
    """The class of each instance 1..N: the most frequent nucleus class of ``semantic`` under it.

    An instance drawn where the semantic map is background takes ``fallback[id]`` (e.g. the class
    recorded in the instance layer's features); without one it is an error naming the instance.
    """
    n = int(instances.max(initial=0))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    from ..labels.instances import class_votes

    votes = class_votes(instances, np.asarray(semantic).astype(np.int64), n)[1:, 1:]
    classes = np.zeros(n, dtype=np.int64)
    voted = votes.sum(axis=1) > 0
    classes[voted] = np.argmax(votes[voted], axis=1) + 1
    for i in np.flatnonzero(~voted):
        if fallback and int(fallback.get(i + 1, 0)) > 0:
            classes[i] = int(fallback[i + 1])
        else:
            raise CosynthError(
                f"instance {i + 1} lies where the semantic map is background, so its class is "
                "unknown; paint its class into the semantic layer or recompute the instances"
            )
    return classes


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
    """A pair from (possibly hand-edited) layer arrays, made consistent enough to write.

    Instance ids are renumbered 1..N (painting and erasing leave gaps), each instance takes the
    majority class of the semantic map under it (``instance_classes`` {id: class id} for instances
    drawn on background), and the distance map is clipped to [0, 1].

    Raises
    ------
    CosynthError
        If the maps differ in size, the image is not RGB uint8, or the semantic map holds a class id
        the vocabulary lacks.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise CosynthError(f"{name}: the image layer must be RGB uint8, got {image.dtype} {image.shape}")
    shape = image.shape[:2]
    maps = {"semantic": np.asarray(semantic), "instances": np.asarray(instances)}
    if distance is not None:
        maps["distance"] = np.asarray(distance)
    for role, a in maps.items():
        if a.shape != shape:
            raise CosynthError(
                f"{name}: the {role} layer is {'x'.join(map(str, a.shape))} but the image is "
                f"{shape[0]}x{shape[1]}; the layers of a pair must match pixel for pixel"
            )
    sem = maps["semantic"]
    if sem.size and (sem.min() < 0 or sem.max() >= vocabulary.n_classes):
        raise CosynthError(
            f"{name}: the semantic layer holds label {int(sem.max())}, but the classes are "
            f"0..{vocabulary.n_classes - 1} ({', '.join(vocabulary.names)}); paint with those labels"
        )
    sem = sem.astype(np.uint8)
    inst = maps["instances"]
    if inst.size and inst.min() < 0:
        raise CosynthError(f"{name}: the instance layer holds negative label {int(inst.min())}")
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
