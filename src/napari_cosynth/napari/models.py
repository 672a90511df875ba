"""The widget's loaded models: one load per checkpoint, shared by the loader and the generation workers.

Loading imports torch and reads the weights, so it always runs in a worker thread; the cache hands the
same model to every later run. A lock keeps two workers (the widget's background load and an early
click on ``generate``) from loading one checkpoint twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..sample import Vocabulary

DEFAULT_MODEL = "default"
CATCH_ALL = ("other", "others", "unknown", "miscellaneous")


@dataclass
class LoadedModel:
    """A model, its checkpoint metadata and what the widget shows of it."""

    spec: str
    model: object
    meta: dict
    vocabulary: Vocabulary
    tissues: tuple[str, ...] = ()
    prompt_style: str = "paper"
    staining: str = "H&E"
    patch_size: int | None = None
    size_multiple: int = 1
    timesteps: int = 1000
    auto_device: str = "cpu"  # what device "auto" resolves to on this machine

    @property
    def model_id(self) -> str:
        return str(self.meta.get("model_id", self.spec))

    @property
    def common_class(self) -> str:
        """The class a new layout starts with: the training data's most frequent one.

        Models that recorded no counts fall back on the first class that is not a catch-all
        ("other"), so that a first click is never the rarest class.
        """
        names = list(self.vocabulary.nucleus_classes)
        record = self.meta.get("training_data")
        counts = record.get("nuclei") if isinstance(record, dict) else None
        known = {n: counts[n] for n in names
                 if isinstance(counts, dict) and isinstance(counts.get(n), (int, float))}
        if known:
            return max(known, key=known.get)
        return next((n for n in names if n.lower() not in CATCH_ALL), names[0])

    def summary(self) -> str:
        """One line for the widget, e.g. 'default: 4 classes, colon, 20x'."""
        parts = [f"{len(self.vocabulary.nucleus_classes)} classes"]
        if self.tissues:
            parts.append(", ".join(self.tissues[:3]) + (" ..." if len(self.tissues) > 3 else ""))
        if self.meta.get("magnification"):
            parts.append(f"{float(self.meta['magnification']):g}x")
        return f"{self.model_id}: " + ", ".join(parts)


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


class ModelCache:
    """The loaded checkpoint, by model name or path (the latest one only, to bound memory)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}

    def get(self, spec: str) -> LoadedModel | None:
        """The loaded model for ``spec`` if it was loaded already (never loads)."""
        return self._models.get(model_path(spec))

    def load(self, spec: str) -> LoadedModel:
        """Load ``spec`` on the CPU (once); the engine moves it to the run's device.

        Raises
        ------
        CheckpointError
            Missing bundled model, a file that is not a safe checkpoint, weights that do not match
            their config: the engine's messages, which say what to do.
        """
        key = model_path(spec)
        with self._lock:
            if key not in self._models:
                loaded = _load(key)
                # One model at a time: a run in progress keeps its own reference to its model.
                self._models = {key: loaded}
            return self._models[key]


def _load(spec: str) -> LoadedModel:
    from ..engine.networks.checkpoint import load_model, resolve_model
    from ..engine.device import resolve_device
    from ..engine.pipeline.generate import default_canvas, model_vocabulary

    model, meta = load_model(resolve_model(spec), device="cpu")
    config = meta.get("config") or {}
    multiple = getattr(model, "size_multiple", 1)
    return LoadedModel(
        spec=spec,
        model=model,
        meta=meta,
        vocabulary=model_vocabulary(meta),
        tissues=tuple(meta.get("tissues") or ()),
        prompt_style=str((config.get("data") or {}).get("prompt_style", "paper")),
        staining=str(meta.get("staining", "H&E")),
        patch_size=default_canvas(meta),
        size_multiple=int(multiple() if callable(multiple) else multiple),
        timesteps=int((config.get("diffusion") or {}).get("timesteps", 1000)),
        auto_device=str(resolve_device("auto")),
    )
