"""What a saved model says about itself, parsed once: the typed model card of a loaded pipeline.

A checkpoint's ``config.json`` is a loose dict written by several versions (older ones lack
``canvas_size``, ``staining`` or ``training_data``). :class:`ModelCard` reads it once, with the
fallbacks of every version in one place, so that the widget, the CLI, bulk generation and the
evaluations ask ``card.vocabulary`` or ``card.canvas`` instead of repeating ``meta.get(...)`` chains.

No torch here: the widget shows a card before any sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ...errors import CheckpointError, ConfigError
from ...labels.instances import SeparationParams
from ...prompts import prompt_for_points
from ...sample import PointTable, Vocabulary
from ..config import CosynthConfig

# Classes a new layout should not start with when the model recorded no class counts.
CATCH_ALL = ("other", "others", "unknown", "miscellaneous")


@dataclass(frozen=True)
class ModelCard:
    """A model's identity, classes, tissues and drawing defaults.

    Attributes
    ----------
    model_id : str
        Recorded in every pair's provenance.
    vocabulary : Vocabulary
        The classes the model draws (id 0 = background).
    tissues : tuple of str
        Tissues of its training data; the first is the default of a built prompt.
    magnification : float
        Objective magnification of its training data (instance recovery depends on it).
    canvas : int
        Side of the canvas it draws when none is asked for.
    prompt_style, staining : str
        How prompts are built for it (``"paper"`` or ``"structured"``), and its stain.
    config : CosynthConfig
        The training configuration (network, diffusion schedule, data).
    separation : SeparationParams
        How instances are cut from maps it generated: :meth:`SeparationParams.for_generated` at its
        magnification, with the fields its ``config.json`` names under ``"separation"`` replaced (how
        noisy a generated distance map is depends on the model, so a bundled model carries the
        settings chosen on its own output; docs/labels.md). Without the entry: the preset, so older
        models' pairs are redrawn as before.
    training_data : dict
        What it was trained on (counts of nuclei per class, image sizes), possibly empty.
    meta : dict
        The raw ``config.json``, for anything else a caller needs to record.
    """

    model_id: str
    vocabulary: Vocabulary
    tissues: tuple[str, ...]
    magnification: float
    canvas: int
    prompt_style: str
    staining: str
    config: CosynthConfig
    separation: SeparationParams
    training_data: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], fallback_id: str = "unknown") -> ModelCard:
        """Parse a checkpoint's ``config.json`` (as :func:`~..networks.checkpoint.load_model` returns it)."""
        config = meta.get("config")
        if not isinstance(config, (dict, CosynthConfig)):
            raise CheckpointError("the model's metadata has no training config; the checkpoint is incomplete")
        config = config if isinstance(config, CosynthConfig) else CosynthConfig.from_dict(config)
        training = meta.get("training_data")
        model_id = str(meta.get("model_id") or fallback_id)
        magnification = float(meta.get("magnification") or 40.0)
        return cls(
            model_id=model_id,
            vocabulary=_vocabulary(meta),
            tissues=tuple(str(t) for t in (meta.get("tissues") or ())),
            magnification=magnification,
            # A bundled model may name its canvas (the default trains on 64 px crops but is meant for
            # 128 px pairs); otherwise its training crop.
            canvas=int(meta.get("canvas_size") or meta.get("patch_size") or config.data.crop_size or 128),
            prompt_style=str(config.data.prompt_style or "paper"),
            staining=str(meta.get("staining") or "H&E"),
            config=config,
            separation=_separation(meta.get("separation"), magnification, model_id),
            training_data=dict(training) if isinstance(training, dict) else {},
            meta=dict(meta),
        )

    @property
    def default_tissue(self) -> str:
        return self.tissues[0] if self.tissues else "unknown"

    @property
    def timesteps(self) -> int:
        """T of the training schedule (the reference sampler takes all of them)."""
        return int(self.config.diffusion.timesteps)

    @property
    def common_class(self) -> str:
        """The class a new layout starts with: the training data's most frequent one.

        Models that recorded no counts fall back on the first class that is not a catch-all
        ("other"), so that a first click is never the rarest class.
        """
        names = list(self.vocabulary.nucleus_classes)
        counts = self.training_data.get("nuclei")
        known = {n: counts[n] for n in names
                 if isinstance(counts, dict) and isinstance(counts.get(n), (int, float))}
        if known:
            return max(known, key=known.get)
        return next((n for n in names if n.lower() not in CATCH_ALL), names[0])

    def prompt_for(self, points: PointTable, tissue: str | None = None, seed: int = 0) -> str:
        """The prompt a pair drawn with ``seed`` gets when none is given: its layout's classes (in an
        order shuffled by the seed), the tissue (the model's first when omitted) and the stain, in
        the model's prompt style. The widget's prompt box shows this very text."""
        return prompt_for_points(points, self.vocabulary, tissue or self.default_tissue,
                                 style=self.prompt_style, staining=self.staining,
                                 rng=np.random.default_rng([int(seed), 0]))

    def summary(self) -> str:
        """One line for the widget, e.g. 'default-v2-step4500: 4 classes, colon, 20x'."""
        parts = [f"{len(self.vocabulary.nucleus_classes)} classes"]
        if self.tissues:
            parts.append(", ".join(self.tissues[:3]) + (" ..." if len(self.tissues) > 3 else ""))
        parts.append(f"{self.magnification:g}x")
        return f"{self.model_id}: " + ", ".join(parts)


def _separation(overrides, magnification: float, model_id: str) -> SeparationParams:
    base = SeparationParams.for_generated(magnification)
    if overrides is None:
        return base
    known = {f.name for f in fields(SeparationParams)}
    if not isinstance(overrides, dict) or not set(overrides) <= known:
        unknown = sorted(set(overrides) - known) if isinstance(overrides, dict) else overrides
        raise CheckpointError(
            f"model {model_id}: 'separation' in config.json must map fields of SeparationParams "
            f"({', '.join(sorted(known))}) to values; got {unknown!r}")
    try:
        return replace(base, **overrides)
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"model {model_id}: bad 'separation' in config.json: {err}") from err


def _vocabulary(meta: dict) -> Vocabulary:
    names = meta.get("vocabulary") or meta.get("classes")
    if isinstance(names, dict):
        names = names.get("names")
    if not names:
        raise CheckpointError("the model's metadata names no class vocabulary; the checkpoint is incomplete")
    names = tuple(str(n) for n in names)
    return Vocabulary(names if names[0] == "background" else ("background", *names))
