"""The CoSynth dock widget: draw a layout, prompt, generate, edit by hand, re-synthesise, export.

The widget holds no generation logic. It converts napari layers to the core's types
(:mod:`.points`, :mod:`.layers`), runs the generator forms of the loaded
:class:`~napari_cosynth.engine.pipeline.pipeline.CoSynthPipeline` (``pipe.generate``,
``pipe.resynthesize_steps``) in a thread worker (:mod:`.worker`) with one
:class:`~napari_cosynth.engine.pipeline.settings.SamplerSettings` built from its controls, shows
results as runs of four layers (:mod:`.runs`) and writes curated pairs with the folder writer
(:mod:`.export`). What follows the user's choices by itself, the model being loaded
(:mod:`.model_slot`) and the layout being drawn (:mod:`.layout_tracker`), lives in two helpers the
widget owns; here are the container, the buttons and the runs. Torch is imported only in worker
threads, so opening the widget never blocks the viewer.

The ``seed`` field is the base seed of :mod:`napari_cosynth.seeds`: a run's pair is pair 0 of that
seed, the same pair ``cosynth generate --seed S`` draws from the same points, prompt and settings.
Control names are stable (``widget.generate``, ``widget.seed``...) so that scripts and tests can drive
it; ``docs/napari.md`` lists them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QMessageBox, QVBoxLayout, QWidget

from ..errors import CosynthError
from .controls import MAX_WIDTH, REPLACE, build_controls, parse_seed, preview_every, sampler_settings
from .export import export_pair
from .layout_tracker import LayoutTracker, points_layers
from .model_slot import ModelSlot
from .models import ModelCache
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
from .worker import Runner, describe_error

if TYPE_CHECKING:
    from ..engine.pipeline.pipeline import CoSynthPipeline

log = logging.getLogger(__name__)


class CoSynthWidget(QWidget):
    """Dock widget; ``napari_viewer`` is injected by napari (see the manifest)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.models = ModelCache()
        self.runs: list[Run] = []
        self._counter = 0
        # Asked before a new run replaces layers the user edited; tests substitute an answer.
        self.confirm = self._ask
        self._build()
        self.runner = Runner(self.viewer, status=self.status, on_busy=self._set_busy,
                             on_error=self.notify_error,
                             on_layer_added=lambda: self.layout_tracker.raise_layout())
        self.model_slot = ModelSlot(self.controls, self.models, on_error=self.notify_error)
        self.layout_tracker = LayoutTracker(self.viewer, self.controls, self.prompter, self.model_slot)
        self.model_slot.on_ready = self.layout_tracker.adopt
        self._connect()
        self.model_slot.load_chosen()

    # ---------------------------------------------------------------------------------------- build

    def _build(self) -> None:
        self.controls = build_controls(lambda _widget=None: points_layers(self.viewer))
        for control in self.controls:  # widget.generate, widget.seed, ... (stable names)
            setattr(self, control.name, control)
        self.prompter = PromptBox(self.prompt, self.prompt_info)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls.root_native_widget)  # the scroll area around the controls
        self.controls.native.layout().setSpacing(3)  # compact: most of it shows on a laptop screen
        self.controls.native.layout().addStretch()  # spare height goes below the controls, not between
        self.setMaximumWidth(MAX_WIDTH)

    def _connect(self) -> None:
        """The buttons; the model slot and the layout tracker follow their own controls."""
        self.new_points_layer.changed.connect(self._guard(self.layout_tracker.new_points_layer))
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

    # ------------------------------------------------------------------- the model and the layout

    @property
    def loaded(self) -> CoSynthPipeline | None:
        """The chosen model's pipeline once loaded (None while it loads, or when it failed)."""
        return self.model_slot.loaded

    def require_model(self) -> CoSynthPipeline:
        return self.model_slot.require_model()

    def layout_points(self):
        """The chosen layer's points as a PointTable of the model's classes (raises CosynthError)."""
        return self.layout_tracker.points()

    def canvas(self) -> tuple[int, int]:
        return self.layout_tracker.canvas()

    # --------------------------------------------------------------------------------- generation

    def seed_value(self) -> int | None:
        """The ``seed`` field as a base seed; None for ``random`` (raises CosynthError)."""
        return parse_seed(self.seed.value)

    def _on_generate(self) -> None:
        if self.busy:
            return
        pipe = self.require_model()
        points, shape = self.layout_tracker.points_for_run()
        settings, every = sampler_settings(self.controls), preview_every(self.controls)
        seed = self.seed_value()
        if seed is None:  # drawn here, so that the prompt box can show the prompt this run uses
            from ..seeds import new_seed

            seed = new_seed()
        prompt, tissue, device = self.layout_tracker.prompt_for_run(seed), self.tissue.value, self.device.value
        target = self._replace_target()
        number = self._next_run_number()
        name = f"cosynth {number}"

        def make():  # in the worker thread: resolving the device may import torch
            return pipe.to(device).generate(points, prompt=prompt, size=shape, seed=seed, tissue=tissue,
                                            settings=settings, preview_every=every)

        def show(pairs):
            self._counter = number
            self._show_pair(pairs[0], name, target)

        # A replacing run previews in the image layer it will overwrite, with the old labels hidden.
        preview = {} if target is None else {
            "preview_into": target.layers["image"],
            "hide_while_previewing": [layer for role, layer in target.layers.items() if role != "image"]}
        self.runner.start(make, name, show, **preview)

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
            self.layout_tracker.raise_layout()
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
        pipe = self.require_model()
        run = self.current_run()
        if run.sample.vocabulary != pipe.vocabulary:
            raise CosynthError(
                f"{run.name} has the classes {', '.join(run.sample.vocabulary.nucleus_classes)} but "
                f"the model has {', '.join(pipe.vocabulary.nucleus_classes)}; choose its model"
            )
        pair, edited = consistent_pair(run)
        if edited:  # the classes may have changed: let the engine build the prompt from them
            pair = pair.with_(provenance={k: v for k, v in pair.provenance.items() if k != "prompt"})
        settings, every = sampler_settings(self.controls), preview_every(self.controls)
        seed, tissue, device = self.seed_value(), self.tissue.value, self.device.value

        def make():  # in the worker thread: resolving the device may import torch
            return pipe.to(device).resynthesize_steps(pair, target="image", tissue=tissue, seed=seed,
                                                      settings=settings, preview_every=every)

        def show(new):
            with run.applying():
                run.layers["image"].data = new.image
            update_meta(run, new)
            self._show_provenance(new)

        self.runner.start(make, run.name, show, preview_into=run.layers["image"])

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
