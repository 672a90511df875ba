"""The CoSynth dock widget: draw a layout, prompt, generate, edit by hand, re-synthesise, export.

The widget holds no generation logic. It converts napari layers to the core's types
(:mod:`.points`, :mod:`.layers`), runs the engine's progress generators in a thread worker
(:mod:`.worker`), shows results as runs of four layers (:mod:`.runs`) and writes curated pairs with
the folder writer (:mod:`.export`). Torch is imported only in worker threads, so opening the widget
never blocks the viewer. Control names are stable (``widget.generate``, ``widget.seed``...) so that
scripts and tests can drive it; ``docs/napari.md`` lists them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QMessageBox, QVBoxLayout, QWidget

from ..errors import CosynthError
from .controls import RANDOM_SEED, REPLACE, build_controls
from .export import export_pair
from .layers import role_of
from .models import DEFAULT_MODEL, LoadedModel, ModelCache, model_path
from .points import (
    describe_layout,
    points_from_layer,
    points_layer_kwargs,
    set_default_class,
)
from .prompting import PromptBox
from .runs import (
    Run,
    add_run,
    consistent_pair,
    current_run,
    recompute_instances,
    replace_run,
    update_meta,
)
from .worker import Runner, call_in_thread, describe_error

log = logging.getLogger(__name__)

N_PREVIEWS = 10  # live previews per run


class CoSynthWidget(QWidget):
    """Dock widget; ``napari_viewer`` is injected by napari (see the manifest)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.models = ModelCache()
        self.loaded: LoadedModel | None = None
        self.runs: list[Run] = []
        self._loaders = []
        self._watched = None
        self._setting = False  # True while the widget sets a control itself
        self._size_from_user = False
        self._counter = 0
        # Asked before a new run replaces layers the user edited; tests substitute an answer.
        self.confirm = self._ask
        self._build()
        self.runner = Runner(self.viewer, status=self.status, on_busy=self._set_busy,
                             on_error=self.notify_error)
        self._connect()
        self._on_layers_changed()
        self._on_model_changed()

    # ---------------------------------------------------------------------------------------- build

    def _build(self) -> None:
        self.controls = build_controls(self._points_choices)
        for control in self.controls:  # widget.generate, widget.seed, ... (stable names)
            setattr(self, control.name, control)
        self.prompter = PromptBox(self.prompt, self.prompt_info)
        self.prompter.refill = self._refresh_prompt
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls.native)

    def _connect(self) -> None:
        events = self.viewer.layers.events
        events.inserted.connect(self._on_layers_changed)
        events.removed.connect(self._on_layers_changed)
        events.inserted.connect(self._on_layer_inserted)
        self.points_layer.changed.connect(self._on_points_layer)
        self.new_points_layer.changed.connect(self._guard(self._on_new_points_layer))
        self.point_class.changed.connect(self._on_point_class)
        self.tissue.changed.connect(self._refresh_prompt)
        self.model.changed.connect(self._on_model_changed)
        self.height.changed.connect(self._on_size_edited)
        self.width.changed.connect(self._on_size_edited)
        self.generate.changed.connect(self._guard(self._on_generate))
        self.cancel.changed.connect(lambda *_: self.runner.cancel())
        self.recompute_instances.changed.connect(self._guard(self._on_recompute))
        self.resynthesize.changed.connect(self._guard(self._on_resynthesize))
        self.export_dir.changed.connect(self._guard(self._refresh_export_info))
        self.export.changed.connect(self._guard(self._on_export))

    def _guard(self, action):
        """Run a button action; an error becomes a notification and the widget stays usable."""

        def run(*_):
            try:
                action()
            except Exception as err:  # noqa: BLE001 - shown to the user (and logged if unexpected)
                self.notify_error(err)

        return run

    # ----------------------------------------------------------------------------------- the model

    def _on_model_changed(self, *_) -> None:
        spec = model_path(self.model.value)
        self.loaded = None
        cached = self.models.get(spec)
        if cached is not None:
            self._model_ready(cached)
            return
        self.model_info.value = f"loading model {spec}..."
        holder = []
        worker = call_in_thread(
            lambda: self.models.load(spec),
            on_result=self._model_ready,
            on_error=lambda err: self._model_failed(spec, err),
            on_finished=lambda: self._loaders.remove(holder[0]),
        )
        holder.append(worker)
        self._loaders.append(worker)

    def _model_ready(self, loaded: LoadedModel) -> None:
        if model_path(self.model.value) != loaded.spec:
            return  # the user picked another model while this one loaded
        self.loaded = loaded
        self._setting = True
        try:
            self.point_class.choices = list(loaded.vocabulary.nucleus_classes)
            self.tissue.choices = list(loaded.tissues) or ["unknown"]
            for box in (self.height, self.width):
                box.step = max(1, loaded.size_multiple)
            self.steps.max = loaded.timesteps
            if loaded.patch_size and not self._size_from_user and not self._reference_image():
                self.height.value = self.width.value = loaded.patch_size
        finally:
            self._setting = False
        self.prompter.context_length = int(getattr(loaded.model.text, "context_length", 77))
        self.model_info.value = loaded.summary()
        if self.device.value == "auto":
            self.device_info.value = f"auto: {loaded.auto_device}"
        self._refresh_layout()
        self._refresh_prompt()

    def _model_failed(self, spec: str, err: BaseException) -> None:
        if model_path(self.model.value) != spec:
            return
        self.model_info.value = "no model loaded"
        hint = "; meanwhile choose a checkpoint folder in 'model'" if spec == DEFAULT_MODEL else ""
        self.notify_error(describe_error(err) + hint)

    def require_model(self) -> LoadedModel:
        if self.loaded is None:
            raise CosynthError(
                f"the model {model_path(self.model.value)!r} is not loaded (yet): wait for it to "
                "load, or choose a checkpoint folder in 'model'"
            )
        return self.loaded

    # ---------------------------------------------------------------------------------- the layout

    def _points_choices(self, _widget=None):
        from napari.layers import Points

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Points)]

    def _on_layers_changed(self, *_) -> None:
        self.points_layer.reset_choices()
        if self._watched is not None and self._watched not in self.viewer.layers:
            self._watch(None)
        if self._watched is None and self.points_layer.value is not None:
            self._watch(self.points_layer.value)
        self._refresh_layout()

    def _on_layer_inserted(self, event) -> None:
        """A reference image opened by the user sets the canvas size (unless the user set one)."""
        layer = event.value
        if self._size_from_user or layer is not self._reference_image():
            return
        self._setting = True
        try:
            self.height.value, self.width.value = (int(v) for v in layer.data.shape[:2])
        finally:
            self._setting = False

    def _reference_image(self):
        from napari.layers import Image

        for layer in self.viewer.layers:
            if isinstance(layer, Image) and role_of(layer.metadata) is None and not layer.multiscale:
                return layer
        return None

    def _on_size_edited(self, *_) -> None:
        if not self._setting:
            self._size_from_user = True
        self._refresh_layout()

    def _on_points_layer(self, layer) -> None:
        self._watch(layer)
        self._refresh_layout()
        self._refresh_prompt()

    def _watch(self, layer) -> None:
        if self._watched is not None:
            self._watched.events.data.disconnect(self._on_points_edited)
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._on_points_edited)

    def _on_points_edited(self, *_) -> None:
        self._refresh_layout()
        self._refresh_prompt()

    def _on_new_points_layer(self) -> None:
        vocabulary = self.require_model().vocabulary
        names = {layer.name for layer in self.viewer.layers}
        name = next(n for n in (f"layout {k}" if k else "layout" for k in range(1000)) if n not in names)
        kwargs = points_layer_kwargs(vocabulary, self.point_class.value, name=name)
        layer = self.viewer.add_points(np.zeros((0, 2)), **kwargs)
        layer.mode = "add"
        self.points_layer.value = layer

    def _on_point_class(self, name) -> None:
        layer = self.points_layer.value
        if name and layer is not None and not self._setting:
            set_default_class(layer, name)
            self._refresh_prompt()

    def layout_points(self):
        """The chosen layer's points as a PointTable of the model's classes (raises CosynthError)."""
        layer = self.points_layer.value
        if layer is None:
            raise CosynthError("no points layer: click 'new points layer' and click nuclei into it")
        return points_from_layer(layer, self.require_model().vocabulary)

    def canvas(self) -> tuple[int, int]:
        return int(self.height.value), int(self.width.value)

    def _refresh_layout(self, *_) -> None:
        if self.loaded is None or self.points_layer.value is None:
            self.layout_info.value = "" if self.loaded is None else "no points layer"
            return
        try:
            self.layout_info.value = describe_layout(self.layout_points(), self.loaded.vocabulary,
                                                     self.canvas())
        except CosynthError as err:
            self.layout_info.value = str(err)

    # ---------------------------------------------------------------------------------- the prompt

    def _refresh_prompt(self, *_) -> None:
        """Fill the prompt from the layout's classes and the tissue, unless the user wrote one."""
        if self.loaded is None:
            return
        try:
            points = self.layout_points()
        except CosynthError:
            self.prompter.check()
            return
        loaded = self.loaded
        self.prompter.fill(points, loaded.vocabulary, self.tissue.value, loaded.prompt_style,
                           loaded.staining)

    # --------------------------------------------------------------------------------- generation

    def seed_value(self) -> int | None:
        text = str(self.seed.value).strip().lower()
        if text in ("", RANDOM_SEED):
            return None
        try:
            seed = int(text)
        except ValueError:
            raise CosynthError(f"seed must be a whole number or '{RANDOM_SEED}', got {text!r}") from None
        if seed < 0:
            raise CosynthError(f"seed must be >= 0, got {seed}")
        return seed

    def _sampler_kwargs(self) -> dict:
        steps = int(self.steps.value)
        return {
            "sampler": self.sampler.value, "steps": steps if self.sampler.value == "fast" else None,
            "guidance": float(self.guidance.value), "seed": self.seed_value(),
            "device": self.device.value, "preview_every": max(1, steps // N_PREVIEWS),
        }

    def _on_generate(self) -> None:
        if self.busy:
            return
        loaded = self.require_model()
        points = self.layout_points()
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
        kwargs = dict(self._sampler_kwargs(), prompt=self.prompter.text(), tissue=self.tissue.value)
        target = self._replace_target()
        number = self._next_run_number()
        name = f"cosynth {number}"

        def make():
            from ..engine.generate import generate

            return generate(loaded.model, loaded.meta, points, shape, **kwargs)

        def show(pairs):
            self._counter = number
            self._show_pair(pairs[0], name, target)

        self.runner.start(make, name, show)

    def _next_run_number(self) -> int:
        """Runs are numbered in the order they finish; a cancelled or failed one takes no number."""
        names = {layer.name.rsplit(" ", 1)[0] for layer in self.viewer.layers}
        number = self._counter + 1
        while f"cosynth {number}" in names:
            number += 1
        return number

    def _replace_target(self) -> Run | None:
        if self.new_run.value != REPLACE or not self.runs or not self.runs[-1].alive(self.viewer):
            return None
        run = self.runs[-1]
        if run.edited and not self.confirm(
            f"You have edited the {' and '.join(sorted(run.edited))} of {run.name}. Replace its "
            "layers with the new run? (No keeps them and adds new layers.)"
        ):
            return None
        return run

    @property
    def busy(self) -> bool:
        return self.runner.busy

    @property
    def last_step(self):
        """The last progress step of the current or latest job (None before its first step)."""
        return self.runner.last_step

    def _set_busy(self, busy: bool) -> None:
        for button in (self.generate, self.resynthesize, self.recompute_instances):
            button.enabled = not busy
        self.cancel.enabled = busy

    def _show_pair(self, pair, name: str, target: Run | None) -> None:
        if target is not None and target.alive(self.viewer):
            run = replace_run(self.viewer, target, pair, name)
            self.runs.remove(target)
        else:
            run = add_run(self.viewer, pair, name, image_layer=self.runner.take_preview())
        self.runs.append(run)
        self._show_provenance(pair)

    def _show_provenance(self, pair) -> None:
        prov = pair.provenance
        self.seed_info.value = f"seed used: {prov.get('seed')}"
        if self.device.value == "auto":
            self.device_info.value = f"auto: {prov.get('device')}"
        else:
            self.device_info.value = f"running on {prov.get('device')}"

    # ----------------------------------------------------------------------------- editing a pair

    def current_run(self) -> Run:
        return current_run(self.viewer, self.runs)

    def _on_recompute(self) -> None:
        run = self.current_run()
        n = recompute_instances(run)
        self.status.value = f"{run.name}: {n} instances from the semantic and distance maps"

    def _on_resynthesize(self) -> None:
        if self.busy:
            return
        loaded = self.require_model()
        run = self.current_run()
        if run.sample.vocabulary != loaded.vocabulary:
            raise CosynthError(
                f"{run.name} has the classes {', '.join(run.sample.vocabulary.nucleus_classes)} but "
                f"the model has {', '.join(loaded.vocabulary.nucleus_classes)}; choose its model"
            )
        pair, edited = consistent_pair(run)
        if edited:  # the classes may have changed: let the engine build the prompt from them
            pair = pair.with_(provenance={k: v for k, v in pair.provenance.items() if k != "prompt"})
        kwargs = dict(self._sampler_kwargs(), tissue=self.tissue.value)

        def make():
            from ..engine.generate import resynthesize

            return resynthesize(loaded.model, loaded.meta, pair, target="image", **kwargs)

        def show(new):
            with run.applying():
                run.layers["image"].data = new.image
            update_meta(run, new)
            self._show_provenance(new)

        self.runner.start(make, run.name, show)

    def _on_export(self) -> None:
        folder = str(self.export_dir.value or "").strip()
        if folder in ("", "."):
            raise CosynthError("choose a folder in 'export to' first")
        run = self.current_run()
        pair, _ = consistent_pair(run)
        pair.provenance.update(edited=sorted(run.edited), exported_by="napari-cosynth widget")
        path, count = export_pair(pair, folder, hovernet=bool(self.hovernet.value))
        self.export_info.value = f"{count} pair(s) in {folder}; last: {Path(path).name}"
        from napari.utils.notifications import show_info

        show_info(f"exported {run.name} to {path}")

    def _refresh_export_info(self, *_) -> None:
        folder = str(self.export_dir.value or "").strip()
        if folder in ("", ".") or not Path(folder).is_dir():
            self.export_info.value = "" if folder in ("", ".") else "new folder"
            return
        from ..data.folder import count_pairs

        self.export_info.value = f"{count_pairs(folder)} pair(s) in {folder}"

    # -------------------------------------------------------------------------------------- errors

    def notify_error(self, err) -> None:
        """Show a problem as a napari notification; the widget stays usable."""
        from napari.utils.notifications import show_error

        if isinstance(err, BaseException) and not isinstance(err, CosynthError):
            log.error("CoSynth: unexpected error", exc_info=err)
        show_error(f"CoSynth: {describe_error(err, self.device.value)}")

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, "CoSynth", question)
        return answer == QMessageBox.StandardButton.Yes
