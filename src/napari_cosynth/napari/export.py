"""Curated pairs out of napari: layers -> :class:`Sample` -> the folder format (and HoVer-Net .npy).

Shared by the widget's ``export`` button and the npe2 writer. The layers of a pair are found by the
role in their metadata (set by :mod:`.layers`), else by the end of their name ("... semantic",
"... instances", "... distance"), so pairs opened from disk or renamed by the user still export.
Only the napari side lives here: the arrays become a pair through the core's
:func:`~napari_cosynth.labels.edited.sample_from_maps`, and the files are written by the core's
writers (:func:`~napari_cosynth.data.folder.write_sample`,
:func:`~napari_cosynth.data.exports.write_hovernet_patch`, the one HoVer-Net writer bulk generation
uses too). Nothing is ever overwritten: the folder writer picks a free name and writes atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CosynthError
from ..labels.edited import sample_from_maps
from ..sample import PointTable, Sample, Vocabulary
from .layers import ROLES, role_of, vocabulary_of


@dataclass
class LayerView:
    """The parts of a napari layer the export reads (a layer, or a writer's layer data tuple)."""

    name: str
    kind: str  # "image", "labels", "points"
    data: np.ndarray
    metadata: dict
    features: dict | None = None

    @classmethod
    def of(cls, layer) -> LayerView:
        """From a napari layer."""
        return cls(layer.name, type(layer).__name__.lower(), layer.data, dict(layer.metadata),
                   layer.features if len(layer.features.columns) else None)

    @classmethod
    def from_tuple(cls, data, meta: dict, kind: str) -> LayerView:
        """From a layer data tuple as npe2 passes it to writers."""
        return cls(meta.get("name", kind), kind, data, dict(meta.get("metadata") or {}),
                   meta.get("features"))


def assign_roles(layers: list[LayerView]) -> dict[str, LayerView]:
    """Which layer is the image, semantic, distance and instance map of the pair (and the layout).

    Raises
    ------
    CosynthError
        If two layers claim one role, or no RGB image or no labels layer is among them.
    """
    found: dict[str, LayerView] = {}
    for layer in layers:
        role = role_of(layer.metadata) or _role_from(layer)
        if role is None:
            continue
        if role in found:
            raise CosynthError(
                f"both {found[role].name!r} and {layer.name!r} look like the {role} of a pair; "
                "select the layers of one pair only"
            )
        found[role] = layer
    if "image" not in found:
        raise CosynthError("a pair needs an RGB image layer; select the image with its label layers")
    if "semantic" not in found and "instances" not in found:
        raise CosynthError(
            "a pair needs a semantic or an instance labels layer (names ending in 'semantic' / "
            "'instances'); select them with the image"
        )
    return found


def _role_from(layer: LayerView) -> str | None:
    data = np.asarray(layer.data) if layer.kind != "points" else None
    if layer.kind == "points":
        return "layout"
    if layer.kind == "image":
        if data.ndim == 3 and data.shape[-1] == 3:
            return "image"
        return "distance" if data.ndim == 2 else None
    if layer.kind == "labels":
        name = layer.name.lower()
        if name.endswith("semantic"):
            return "semantic"
        if name.endswith("instances"):
            return "instances"
    return None


def _vocabulary(found: dict[str, LayerView]) -> Vocabulary:
    for layer in found.values():
        vocab = vocabulary_of(layer.metadata)
        if vocab is not None:
            return vocab
    semantic = found.get("semantic")
    if semantic is not None and semantic.features is not None and "class" in semantic.features:
        names = [str(n) for n in semantic.features["class"]]
        if names and names[0] == "background":
            return Vocabulary(tuple(names))
    raise CosynthError(
        "the layers do not say which classes the labels stand for; export pairs made or opened by "
        "the CoSynth widget, whose layers carry their class vocabulary"
    )


def _feature_classes(layer: LayerView | None) -> dict | None:
    """{instance id: class id} from an instance layer's features table, if it has one."""
    if layer is None or layer.features is None:
        return None
    features = layer.features
    if "index" not in features or "class_id" not in features:
        return None
    return {int(i): int(c) for i, c in zip(features["index"], features["class_id"])}


def pair_from_layers(
    layers: list[LayerView],
    *,
    points: PointTable | None = None,
    name: str | None = None,
    provenance: dict | None = None,
) -> Sample:
    """Assemble a writable pair from the layers of one pair.

    Parameters
    ----------
    layers : list of LayerView
        The pair's layers: an RGB image, a semantic and/or an instance labels layer, optionally a
        distance image and a points layout.
    points : PointTable, optional
        The layout to store (default: the points layer among ``layers``, if any).
    name : str, optional
        Pair name (default: from the image layer's name).
    provenance : dict, optional
        Recorded in meta.json; default: the provenance in the layers' metadata.

    Returns
    -------
    Sample
        Instance ids renumbered 1..N, classes voted from the semantic map; a missing semantic map
        comes from the instances and their classes, missing instances from the semantic and
        distance maps.
    """
    from ..labels.instances import connected_components, instances_from_maps
    from ..labels.semantic import semantic_map

    found = assign_roles(layers)
    vocab = _vocabulary(found)
    image = np.asarray(found["image"].data)
    meta = (found["image"].metadata.get("cosynth") or {})
    distance = np.asarray(found["distance"].data) if "distance" in found else None
    if "instances" in found:
        instances = np.asarray(found["instances"].data)
        known = _feature_classes(found["instances"])
        if "semantic" in found:
            semantic = np.asarray(found["semantic"].data)
        else:
            if not known:
                raise CosynthError(
                    f"instance layer {found['instances'].name!r} has no class per instance "
                    "(features 'index', 'class_id'); export it with its semantic layer"
                )
            ids = np.arange(int(instances.max(initial=0))) + 1
            semantic = semantic_map(instances, np.array([known.get(int(i), 0) for i in ids]))
    else:
        semantic = np.asarray(found["semantic"].data)
        known = None
        instances = (instances_from_maps(semantic, distance)[0] if distance is not None
                     else connected_components(semantic)[0])
    if points is None and "layout" in found:
        from .points import points_from_layer

        points = points_from_layer(_PointsLike(found["layout"]), vocab)
    label = name or found["image"].name.removesuffix(" image").strip() or "pair"
    return sample_from_maps(
        image, semantic, distance, instances, vocab, instance_classes=known, points=points,
        tissue=str(meta.get("tissue", "unknown")), magnification=float(meta.get("magnification", 40.0)),
        name=label, provenance=provenance if provenance is not None else meta.get("provenance"),
    )


class _PointsLike:
    """Adapter so :func:`points_from_layer` reads a LayerView like a napari Points layer."""

    def __init__(self, view: LayerView):
        import pandas as pd

        self.name = view.name
        self.data = view.data
        self.ndim = np.asarray(view.data).shape[-1] if np.asarray(view.data).ndim == 2 else 0
        self.features = pd.DataFrame(view.features if view.features is not None else {})


def export_pair(sample: Sample, folder: str | Path, *, hovernet: bool = False) -> tuple[Path, int]:
    """Write ``sample`` as a new pair under ``folder``; return its path and the folder's pair count.

    Parameters
    ----------
    sample : Sample
        A pair with image and instances.
    folder : path
        The dataset folder (created if missing). An existing pair is never overwritten: a taken name
        gets a numbered suffix.
    hovernet : bool
        Also write ``folder/hovernet/<pair>.npy``, HoVer-Net's training patch layout: (H, W, 5)
        int32 holding R, G, B, the instance map and each nucleus's class
        (:func:`~napari_cosynth.data.exports.write_hovernet_patch`).
    """
    from ..data.exports import write_hovernet_patch
    from ..data.folder import count_pairs, write_sample

    if sample.image is None or not sample.has_masks:
        raise CosynthError(f"{sample.name}: a pair needs an image and labels to be exported")
    path = write_sample(sample, folder)
    if hovernet:
        write_hovernet_patch(sample, Path(folder) / "hovernet", path.name, overwrite=False)
    return path, count_pairs(folder)


__all__ = ["ROLES", "LayerView", "assign_roles", "export_pair", "pair_from_layers"]
