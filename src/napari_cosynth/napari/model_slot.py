"""The widget's model slot: the model chosen in ``model``, loaded in the background, or why not.

Loading reads the weights and imports torch, so it runs in a worker thread and the viewer stays
usable meanwhile. Until the chosen model is loaded (or when it failed) the slot holds none, and the
actions that need one say so rather than wait. A load that ends after the user chose another model is
dropped, so a slow checkpoint can never replace the one picked after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CosynthError
from .models import DEFAULT_MODEL, ModelCache, auto_device, model_path
from .worker import call_in_thread, describe_error

if TYPE_CHECKING:
    from ..engine.pipeline.pipeline import CoSynthPipeline


class ModelSlot:
    """Loads the ``model`` control's choice and shows it in ``model_info``, ``device_info``, ``steps``.

    Parameters
    ----------
    controls : magicgui Container
        The widget's controls.
    cache : ModelCache
        Shared with the generation workers, so a model is loaded once.
    on_error : callable(str)
        Shows why a model could not be loaded.

    ``on_ready(pipe)`` is called in the main thread once the chosen model's
    :class:`~napari_cosynth.engine.pipeline.pipeline.CoSynthPipeline` is loaded, for the rest of the
    widget to adapt to its card (classes, tissues, canvas size); the widget sets it.
    """

    def __init__(self, controls, cache: ModelCache, *, on_error):
        self.model, self.device = controls["model"], controls["device"]
        self.model_info, self.device_info = controls["model_info"], controls["device_info"]
        self.steps = controls["steps"]
        self.cache = cache
        self.on_error = on_error
        self.on_ready = lambda pipe: None
        self.loaded: CoSynthPipeline | None = None
        self._loaders = []  # a running worker whose Python object is collected loses its signals
        self.model.changed.connect(self._on_model_changed)

    def load_chosen(self) -> None:
        """Load the model named in ``model`` (at once if it is cached)."""
        self._on_model_changed()

    def require_model(self) -> CoSynthPipeline:
        if self.loaded is None:
            raise CosynthError(
                f"the model {model_path(self.model.value)!r} is not loaded (yet): wait for it to "
                "load, or choose a checkpoint folder in 'model'"
            )
        return self.loaded

    def _on_model_changed(self, *_) -> None:
        spec = model_path(self.model.value)
        self.loaded = None
        cached = self.cache.get(spec)
        if cached is not None:
            self._model_ready(spec, cached)
            return
        self.model_info.value = f"loading model {spec}..."
        holder = []
        worker = call_in_thread(
            lambda: self.cache.load(spec),
            on_result=lambda pipe: self._model_ready(spec, pipe),
            on_error=lambda err: self._model_failed(spec, err),
            on_finished=lambda: self._loaders.remove(holder[0]),
        )
        holder.append(worker)
        self._loaders.append(worker)

    def _model_ready(self, spec: str, pipe: CoSynthPipeline) -> None:
        if model_path(self.model.value) != spec:
            return  # the user picked another model while this one loaded
        self.loaded = pipe
        self.steps.max = pipe.card.timesteps
        self.model_info.value = pipe.card.summary()
        if self.device.value == "auto":
            self.device_info.value = f"auto: {auto_device()}"
        self.on_ready(pipe)

    def _model_failed(self, spec: str, err: BaseException) -> None:
        if model_path(self.model.value) != spec:
            return
        self.model_info.value = "no model loaded"
        hint = "; meanwhile choose a checkpoint folder in 'model'" if spec == DEFAULT_MODEL else ""
        self.on_error(describe_error(err) + hint)
