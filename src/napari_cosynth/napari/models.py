"""The widget's loaded models: one CoSynthPipeline per checkpoint, shared by the loader and the runs.

Loading imports torch and reads the weights, so it always runs in a worker thread; the cache hands the
same pipeline to every later run. A lock keeps two workers (the widget's background load and an early
click on ``generate``) from loading one checkpoint twice. Everything the widget shows of a model (its
classes, tissues, canvas, first class, one-line summary) is read from the pipeline's typed
:class:`~napari_cosynth.engine.pipeline.card.ModelCard`.

No torch at import: the widget module imports this one.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.pipeline.pipeline import CoSynthPipeline

DEFAULT_MODEL = "default"


def model_path(spec: str | Path) -> str:
    """The widget's ``model`` value as the engine's model name: 'default' or a checkpoint path."""
    text = str(spec).strip()
    # An empty file field shows as "." once magicgui has made it a Path, and a typed "default"
    # comes back made absolute against the working directory.
    if text in ("", ".", DEFAULT_MODEL):
        return DEFAULT_MODEL
    path = Path(text)
    if path.name == DEFAULT_MODEL and not path.exists():
        return DEFAULT_MODEL
    return text


@functools.cache
def auto_device() -> str:
    """What ``device: auto`` resolves to on this machine (probes CUDA: call it in a worker thread)."""
    from ..engine.device import resolve_device

    return str(resolve_device("auto"))


class ModelCache:
    """The loaded pipeline, by model name or path (the latest one only, to bound memory)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pipelines: dict[str, CoSynthPipeline] = {}

    def get(self, spec: str) -> CoSynthPipeline | None:
        """The pipeline of ``spec`` if it was loaded already (never loads)."""
        return self._pipelines.get(model_path(spec))

    def load(self, spec: str) -> CoSynthPipeline:
        """Load ``spec`` on the CPU (once); each run moves it to the device the widget names.

        Raises
        ------
        CheckpointError
            Missing bundled model, a file that is not a safe checkpoint, weights that do not match
            their config: the engine's messages, which say what to do.
        """
        from ..engine.pipeline.pipeline import CoSynthPipeline

        key = model_path(spec)
        with self._lock:
            if key not in self._pipelines:
                pipe = CoSynthPipeline.from_pretrained(key, device="cpu")
                auto_device()  # resolved here, off the main thread, for the widget's device line
                # One model at a time: a run in progress keeps its own reference to its pipeline.
                self._pipelines = {key: pipe}
            return self._pipelines[key]
