"""The layout the widget generates from: its points layer, its canvas size, and what follows their edits.

The user draws the layout in napari, so the widget cannot read it once at the start: it follows the
chosen points layer (its clicks, its removal), keeps ``layout_info`` and the prompt in step with it,
and sizes the canvas from what the user shows it. The canvas size comes from the user when they set
it, else from a reference image they opened, else from the model's canvas (``card.canvas``). The
prompt it fills is the one the pipeline builds for the layout and the run's seed.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..errors import CosynthError
from .controls import parse_seed
from .layers import role_of
from .points import describe_layout, points_from_layer, points_layer_kwargs, set_default_class


def points_layers(viewer) -> list[tuple[str, object]]:
    """The viewer's points layers as (name, layer) choices of ``points_layer``."""
    from napari.layers import Points

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Points)]


class LayoutTracker:
    """The ``points_layer`` choice, the canvas (``height``, ``width``), ``layout_info`` and the prompt.

    The prompt follows the layout, the ``tissue`` and the ``seed`` (whose shuffle of the classes it
    shows; with ``seed`` = random, the last run's seed).

    Parameters
    ----------
    viewer : napari.Viewer
        Whose layers are watched.
    controls : magicgui Container
        The widget's controls.
    prompter : PromptBox
        Refilled when the layout, its classes or the tissue change.
    models : ModelSlot
        The pipeline whose classes the layout's points are read as.
    """

    def __init__(self, viewer, controls, prompter, models):
        self.viewer = viewer
        self.points_layer, self.point_class = controls["points_layer"], controls["point_class"]
        self.tissue, self.layout_info = controls["tissue"], controls["layout_info"]
        self.height, self.width = controls["height"], controls["width"]
        self.seed = controls["seed"]
        self.last_seed = 0  # the base seed of the latest run (what a "random" seed field shows)
        self.prompter = prompter
        self.models = models
        self._watched = None  # the points layer whose edits refresh the layout
        self._setting = False  # True while the widget sets a control itself
        self._size_from_user = False
        prompter.refill = self.refresh_prompt
        events = viewer.layers.events
        events.inserted.connect(self._on_layers_changed)
        events.removed.connect(self._on_layers_changed)
        events.inserted.connect(self._on_layer_inserted)
        self.points_layer.changed.connect(self._on_points_layer)
        self.point_class.changed.connect(self._on_point_class)
        self.tissue.changed.connect(self.refresh_prompt)
        self.seed.changed.connect(self.refresh_prompt)
        self.height.changed.connect(self._on_size_edited)
        self.width.changed.connect(self._on_size_edited)
        self._on_layers_changed()

    # ------------------------------------------------------------------------------- what it reads

    def points(self):
        """The chosen layer's points as a PointTable of the model's classes (raises CosynthError)."""
        layer = self.points_layer.value
        if layer is None:
            raise CosynthError("no points layer: click 'new points layer' and click nuclei into it")
        return points_from_layer(layer, self.models.require_model().vocabulary)

    def canvas(self) -> tuple[int, int]:
        return int(self.height.value), int(self.width.value)

    def points_for_run(self):
        """The points and the canvas shape, checked for a run: some points, all on the canvas."""
        points = self.points()
        if len(points) == 0:
            raise CosynthError(
                f"points layer {self.points_layer.value.name!r} is empty: click nuclei into it first"
            )
        shape = self.canvas()
        outside = int(points.outside(shape).sum())
        if outside:
            raise CosynthError(
                f"{outside} of {len(points)} points lie outside the {shape[0]}x{shape[1]} canvas; "
                "move them onto it or enlarge height/width"
            )
        return points, shape

    # --------------------------------------------------------------------------- following the user

    def adopt(self, pipe) -> None:
        """Offer a newly loaded pipeline's classes and tissues, and fit the canvas to its model."""
        card = pipe.card
        with self._quietly():
            self.point_class.choices = list(card.vocabulary.nucleus_classes)
            self.point_class.value = card.common_class
            self.tissue.choices = list(card.tissues) or ["unknown"]
            for box in (self.height, self.width):
                box.step = max(1, pipe.size_multiple)
            if not self._size_from_user and not self._reference_image():
                self.height.value = self.width.value = card.canvas
        self.prompter.context_length = int(pipe.model.text.context_length)
        self.refresh_layout()
        self.refresh_prompt()

    def new_points_layer(self) -> None:
        """Add an empty layout layer with the model's classes, in add mode, and choose it."""
        vocabulary = self.models.require_model().vocabulary
        names = {layer.name for layer in self.viewer.layers}
        name = next(n for n in (f"layout {k}" if k else "layout" for k in range(1000)) if n not in names)
        kwargs = points_layer_kwargs(vocabulary, self.point_class.value, name=name)
        layer = self.viewer.add_points(np.zeros((0, 2)), **kwargs)
        layer.mode = "add"
        self.points_layer.value = layer

    def raise_layout(self) -> None:
        """Put the chosen points layer back on top, over the layers a run just added.

        The layout is what the user edits between runs; under an opaque image it would be hidden.
        """
        layer, layers = self.points_layer.value, self.viewer.layers
        if layer is not None and layer in layers and layers.index(layer) != len(layers) - 1:
            layers.move(layers.index(layer), len(layers))

    def refresh_layout(self, *_) -> None:
        pipe = self.models.loaded
        if pipe is None or self.points_layer.value is None:
            self.layout_info.value = "" if pipe is None else "no points layer"
            return
        try:
            self.layout_info.value = describe_layout(self.points(), pipe.vocabulary, self.canvas())
        except CosynthError as err:
            self.layout_info.value = str(err)

    def refresh_prompt(self, *_) -> None:
        """Fill the prompt from the layout's classes, the tissue and the seed, unless the user wrote one."""
        pipe = self.models.loaded
        if pipe is None:
            return
        try:
            points = self.points()
        except CosynthError:
            self.prompter.check()
            return
        self.prompter.fill(points, pipe.card, self.tissue.value, self._prompt_seed())

    def prompt_for_run(self, seed: int) -> str | None:
        """The prompt of a run with base ``seed``: the box refilled for that seed unless the user wrote one.

        The filled text is what the pipeline would build for the pair (its pair 0 keeps the base
        seed), so sending it changes nothing but shows the user the prompt the run uses.
        """
        self.last_seed = seed
        self.refresh_prompt()
        return self.prompter.text()

    def _prompt_seed(self) -> int:
        try:
            seed = parse_seed(self.seed.value)
        except CosynthError:  # being typed; refused with its message when a run starts
            seed = None
        return self.last_seed if seed is None else seed

    @contextmanager
    def _quietly(self):
        """Set controls without taking it as the user's choice (a canvas size, a point class)."""
        self._setting = True
        try:
            yield
        finally:
            self._setting = False

    def _on_layers_changed(self, *_) -> None:
        self.points_layer.reset_choices()
        if self._watched is not None and self._watched not in self.viewer.layers:
            self._watch(None)
        if self._watched is None and self.points_layer.value is not None:
            self._watch(self.points_layer.value)
        self.refresh_layout()

    def _on_layer_inserted(self, event) -> None:
        """A reference image opened by the user sets the canvas size (unless the user set one)."""
        layer = event.value
        if self._size_from_user or layer is not self._reference_image():
            return
        with self._quietly():
            self.height.value, self.width.value = (int(v) for v in layer.data.shape[:2])

    def _reference_image(self):
        from napari.layers import Image

        for layer in self.viewer.layers:
            if isinstance(layer, Image) and role_of(layer.metadata) is None and not layer.multiscale:
                return layer
        return None

    def _on_size_edited(self, *_) -> None:
        if not self._setting:
            self._size_from_user = True
        self.refresh_layout()

    def _on_points_layer(self, layer) -> None:
        self._watch(layer)
        self._on_points_edited()

    def _watch(self, layer) -> None:
        if self._watched is not None:
            self._watched.events.data.disconnect(self._on_points_edited)
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._on_points_edited)

    def _on_points_edited(self, *_) -> None:
        self.refresh_layout()
        self.refresh_prompt()

    def _on_point_class(self, name) -> None:
        layer = self.points_layer.value
        if name and layer is not None and not self._setting:
            set_default_class(layer, name)
            self.refresh_prompt()
