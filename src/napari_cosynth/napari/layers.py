"""A :class:`Sample` as napari layer data tuples, and the layer metadata that finds its parts again.

A pair is shown as four layers, named after the pair or the run that made it: the RGB image, the
semantic map (Labels with the class colours, class names in its features), the distance map (Image)
and the instances (Labels whose features table maps each id to its class). Each layer's metadata
carries ``{"cosynth": {"role": ..., "vocabulary": ..., "provenance": ...}}`` so the widget, the writer
and the export can find the parts of a pair again whatever the user renames them to. The way back, from
edited layer arrays to a consistent pair, is the core's
:func:`napari_cosynth.labels.edited.sample_from_maps`.
"""

from __future__ import annotations

import numpy as np

from ..sample import Sample, Vocabulary
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
