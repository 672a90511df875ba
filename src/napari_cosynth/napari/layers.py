"""Conversions between a :class:`Sample` and napari layer data tuples."""

from __future__ import annotations

import numpy as np

from ..sample import Sample
from ..vocabularies import class_colors


def class_colormap(n_classes: int) -> dict:
    """A napari ``DirectLabelColormap`` spec mapping class id -> colour (None -> transparent)."""
    colors = {i: tuple(c / 255 for c in rgba) for i, rgba in enumerate(class_colors(n_classes))}
    colors[None] = (0.0, 0.0, 0.0, 0.0)
    return colors


def sample_to_layers(sample: Sample, prefix: str | None = None) -> list[tuple]:
    """Layer data tuples (data, kwargs, type): image, semantic, distance, instances, points."""
    prefix = prefix or sample.name
    vocab = sample.vocabulary
    meta = {"cosynth": {"name": sample.name, "tissue": sample.tissue,
                        "magnification": sample.magnification, "vocabulary": list(vocab.names),
                        "provenance": dict(sample.provenance)}}
    layers = []
    if sample.image is not None:
        layers.append((sample.image, {"name": f"{prefix} image", "rgb": True, "metadata": meta}, "image"))
    if sample.has_masks:
        from napari.utils.colormaps import DirectLabelColormap

        semantic = sample.semantic_map()
        layers.append((semantic, {
            "name": f"{prefix} semantic",
            "colormap": DirectLabelColormap(color_dict=class_colormap(vocab.n_classes)),
            "features": {"index": np.arange(vocab.n_classes), "class": list(vocab.names)},
            "opacity": 0.5, "metadata": meta}, "labels"))
        layers.append((sample.distance_map(), {
            "name": f"{prefix} distance", "colormap": "magma", "contrast_limits": (0.0, 1.0),
            "blending": "additive", "visible": False, "metadata": meta}, "image"))
        ids = np.arange(1, len(sample.classes) + 1)
        layers.append((sample.instances, {
            "name": f"{prefix} instances",
            "features": {"index": ids, "class_id": sample.classes,
                         "class": [vocab.names[c] for c in sample.classes]},
            "opacity": 0.4, "metadata": meta}, "labels"))
    points = sample.point_table()
    if len(points):
        colors = np.asarray(class_colors(vocab.n_classes), dtype=float)[points.classes] / 255
        layers.append((points.xy[:, ::-1].copy(), {
            "name": f"{prefix} points",
            "features": {"class": [vocab.names[c] for c in points.classes]},
            "face_color": colors, "size": 5, "metadata": meta}, "points"))
    return layers
