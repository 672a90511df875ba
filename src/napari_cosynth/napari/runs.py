"""The widget's runs: which layers hold which generated pair, and whether the user has edited them.

A run is one ``generate`` click that finished: four layers (image, semantic, distance, instances)
named after it. The widget needs to know, per run, which labels the user painted since the pair was
made, for three reasons: a new run must not overwrite edited layers without asking;
``resynthesize`` derives the distance map from edited instances; and the export records what was
edited. Painting, filling and erasing in napari (and ``Labels.data_setitem``) all emit the Labels
layer's ``paint`` event, so that event is the edit signal; the widget's own writes are made inside
:meth:`Run.applying` and do not count.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import CosynthError
from ..labels.edited import sample_from_maps
from ..sample import Sample
from .layers import (
    ROLES,
    instance_features,
    layer_meta,
    role_of,
    sample_to_layers,
)


@dataclass
class Run:
    """One generated pair on screen."""

    name: str
    layers: dict  # role -> napari layer
    sample: Sample
    edited: set = field(default_factory=set)  # roles the user ever painted in this run
    dirty: set = field(default_factory=set)  # roles painted since the maps were last made consistent
    _applying: int = 0
    _handlers: dict = field(default_factory=dict)

    def alive(self, viewer) -> bool:
        """All four layers are still in the viewer."""
        return all(layer in viewer.layers for layer in self.layers.values())

    @contextlib.contextmanager
    def applying(self):
        """Edits made inside this block are the widget's own, not the user's."""
        self._applying += 1
        try:
            yield
        finally:
            self._applying -= 1

    def watch(self) -> None:
        """Track the user's paint events on the label layers."""
        for role in ("semantic", "instances"):
            if role in self.layers:
                self._handlers[role] = self._painted(role)
                self.layers[role].events.paint.connect(self._handlers[role])

    def unwatch(self) -> None:
        for role, handler in self._handlers.items():
            self.layers[role].events.paint.disconnect(handler)
        self._handlers = {}

    def _painted(self, role: str):
        def on_paint(event=None):
            if self._applying:
                return
            self.edited.add(role)
            self.dirty.add(role)

        return on_paint


def add_run(viewer, sample: Sample, name: str, image_layer=None) -> Run:
    """Add a pair's four layers to the viewer as a new run.

    ``image_layer`` (the live preview of the run) becomes the run's image layer, if given: napari
    takes a noticeable pause to add a layer and another to remove one (a full garbage collection),
    so the preview is kept rather than swapped for a new layer.
    """
    layers = {}
    for data, kwargs, kind in sample_to_layers(sample, prefix=name, include_points=False, run=name):
        role = role_of(kwargs["metadata"])
        if role == "image" and image_layer is not None and image_layer in viewer.layers:
            _update(image_layer, data, kwargs)
            layers[role] = image_layer
        else:
            layers[role] = viewer.add_layer(_create(data, kwargs, kind))
    run = Run(name, layers, sample)
    run.watch()
    return run


def replace_run(viewer, old: Run, sample: Sample, name: str) -> Run:
    """Put a new pair into an earlier run's layers (same place in the list, same display settings).

    The data is swapped in place (adding and removing layers makes napari pause), and the undo history
    of the label layers is cleared with it, so that Ctrl+Z can never paint the old run's pixels into
    the new one.
    """
    old.unwatch()
    layers = {}
    for data, kwargs, kind in sample_to_layers(sample, prefix=name, include_points=False, run=name):
        role = role_of(kwargs["metadata"])
        layer = old.layers[role]
        _update(layer, data, kwargs)
        if kind == "labels":
            _clear_undo(layer)
        layers[role] = layer
    run = Run(name, layers, sample)
    run.watch()
    return run


def _clear_undo(layer) -> None:
    """Empty a Labels layer's undo and redo history.

    napari has no public call for it (``Labels._reset_history`` is private, and the viewer a plugin
    gets warns on private access), but a Labels layer made read-only drops its history; so the layer is
    made read-only and editable again, and its mode (which that resets to pan/zoom) is restored.
    """
    mode = layer.mode
    layer.editable = False
    layer.editable = True
    layer.mode = mode


def _update(layer, data, kwargs) -> None:
    """Give an existing layer a new pair's data, name, metadata and features."""
    layer.data = data
    layer.name = kwargs["name"]
    layer.metadata = kwargs["metadata"]
    if "features" in kwargs:
        layer.features = kwargs["features"]


def _create(data, kwargs, kind):
    from napari.layers import Layer

    layer = Layer.create(data, kwargs, kind)
    if role_of(kwargs.get("metadata")) == "instances":
        layer.contour = 1  # outlines over the semantic fill (not a constructor argument)
    return layer


def set_labels(run: Run, role: str, new: np.ndarray) -> None:
    """Write a whole new label map into a run's layer as one undoable edit (Ctrl+Z restores it)."""
    layer = run.layers[role]
    new = np.asarray(new).astype(layer.data.dtype, copy=False)
    changed = np.nonzero(layer.data != new)
    if changed[0].size:
        with run.applying():
            layer.data_setitem(changed, new[changed])


def set_instances(run: Run, instances: np.ndarray, classes: np.ndarray) -> None:
    """New instances and their id -> class table, undoable like a paint stroke."""
    set_labels(run, "instances", instances)
    run.layers["instances"].features = instance_features(classes, run.sample.vocabulary)


def update_meta(run: Run, sample: Sample) -> None:
    """Record a changed pair (e.g. after a re-synthesis) in the run and in its layers' metadata."""
    run.sample = sample
    for role, layer in run.layers.items():
        layer.metadata = layer_meta(sample, role, run.name)


def current_run(viewer, runs: list[Run]) -> Run:
    """The run of the selected layer, else the latest run still on screen.

    Selecting a layer of a pair opened from disk (the reader's layers carry roles but no run) makes
    a run of that pair, which is appended to ``runs``.
    """
    active = viewer.layers.selection.active
    alive = [run for run in runs if run.alive(viewer)]
    for run in reversed(alive):
        if active in run.layers.values():
            return run
    adopted = adopt_run(viewer, active)
    if adopted is not None:
        runs.append(adopted)
        return adopted
    if alive:
        return alive[-1]
    raise CosynthError(
        "no generated pair to work on: generate one, or open a pair folder and select one of its layers"
    )


def adopt_run(viewer, active) -> Run | None:
    """A run made of the four layers of the opened pair ``active`` belongs to, if it is one."""
    meta = (getattr(active, "metadata", None) or {}).get("cosynth") or {}
    if meta.get("role") not in ROLES or meta.get("run"):
        return None
    layers = {}
    for layer in viewer.layers:
        other = layer.metadata.get("cosynth") or {}
        if other.get("name") == meta.get("name") and other.get("role") in ROLES and not other.get("run"):
            layers[other["role"]] = layer
    if set(layers) != set(ROLES):
        return None
    from .export import LayerView, pair_from_layers

    sample = pair_from_layers([LayerView.of(layer) for layer in layers.values()])
    run = Run(str(meta.get("name", "pair")), layers, sample)
    for layer in layers.values():
        layer.metadata = {"cosynth": {**layer.metadata["cosynth"], "run": run.name}}
    run.watch()
    return run


def recompute_instances(run: Run) -> int:
    """Rebuild the instances from the semantic and distance layers (undoable); return their number."""
    from ..labels.instances import SeparationParams, instances_from_maps

    semantic = np.asarray(run.layers["semantic"].data)
    distance = np.asarray(run.layers["distance"].data, dtype=np.float32)
    instances, classes = instances_from_maps(semantic, distance,
                                             SeparationParams.for_magnification(run.sample.magnification))
    set_instances(run, instances, classes)
    run.dirty.discard("instances")
    return len(classes)


def consistent_pair(run: Run) -> tuple[Sample, bool]:
    """The run's pair as now on screen, its maps made consistent after hand edits.

    Hand-painted instances are kept as drawn; a painted semantic map gets its instances recomputed;
    after any label edit the distance map is derived from the instances (the definition the model was
    trained on) and the layout points are dropped (readers then use the instances' centroids, which
    match the edited labels). Changed layers are updated on screen and the run remembers the pair.

    Returns
    -------
    (pair, edited)
        ``edited`` tells whether labels had been painted since the maps were last consistent.
    """
    from ..labels.edited import edited_pair
    from ..labels.instances import SeparationParams, instances_from_maps

    layers = run.layers
    semantic = np.asarray(layers["semantic"].data)
    distance = np.asarray(layers["distance"].data, dtype=np.float32)
    if "semantic" in run.dirty and "instances" not in run.dirty:
        set_instances(run, *instances_from_maps(semantic, distance,
                                               SeparationParams.for_magnification(run.sample.magnification)))
    features = layers["instances"].features
    known = ({int(i): int(c) for i, c in zip(features["index"], features["class_id"])}
             if {"index", "class_id"} <= set(features.columns) else None)
    edited = bool(run.dirty)
    sample = run.sample
    image, instances = np.asarray(layers["image"].data), np.asarray(layers["instances"].data)
    if not edited:
        pair = sample_from_maps(image, semantic, distance, instances, sample.vocabulary,
                                instance_classes=known, points=sample.points, tissue=sample.tissue,
                                magnification=sample.magnification, name=sample.name,
                                provenance=sample.provenance)
    else:
        pair = edited_pair(sample, semantic, instances, image=image, instance_classes=known)
        with run.applying():
            layers["distance"].data = pair.distance
        set_instances(run, pair.instances, pair.classes)
        run.dirty.clear()
        run.sample = pair
    return pair, edited
