"""CoSynthPipeline: a loaded model, its card and a device; the one object every caller draws pairs with.

In the style of diffusers' pipelines::

    from napari_cosynth import CoSynthPipeline
    pipe = CoSynthPipeline.from_pretrained("default")          # or a checkpoint / training run folder
    pairs = pipe(points, prompt=None, size=(128, 128), seed=0, n=1)
    for progress in pipe.generate(points, seed=0): ...         # the generator form, for GUIs
    new = pipe.resynthesize(pair, edited_semantic)              # image redrawn to match edited labels

The napari widget, ``cosynth generate``, bulk generation, the evaluations and the downstream experiment
all hold one of these. Seeds follow :mod:`napari_cosynth.seeds`: pair ``i`` of base seed ``s`` is the
same pair whichever of them draws it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from ...errors import CheckpointError, CosynthError
from ...limits import check_generation_memory
from ...progress import run_to_end
from ...sample import PointTable, Sample
from ...seeds import new_seed, pair_seed
from .card import ModelCard
from .conditions import GenerationProgress, as_device
from .settings import SamplerSettings


def resolve_pretrained(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint folder of ``"default"`` (a bundled model), a checkpoint folder, or a training run
    folder (its newest complete checkpoint)."""
    from ..networks.checkpoint import resolve_model
    from ..training.train import latest_checkpoint

    path = Path(name_or_path).expanduser()
    if (path / "checkpoints").is_dir():
        newest = latest_checkpoint(path)
        if newest is None:
            raise CheckpointError(f"{path} is a training run without a complete checkpoint yet")
        return newest
    return resolve_model(name_or_path)


class CoSynthPipeline:
    """A joint model ready to draw image-label pairs.

    Parameters
    ----------
    model : CoSynNet
        The network (``from_pretrained`` loads one).
    card : ModelCard
        What the model says about itself.
    device : str or torch.device
        Where sampling runs ("cpu", "cuda", "mps" or "auto"); the model moves there at the first draw.
    settings : SamplerSettings, optional
        The sampler every call uses unless it passes its own (UniPC, 20 steps, guidance 2).
    """

    def __init__(self, model, card: ModelCard, device="cpu", settings: SamplerSettings | None = None):
        self.model = model
        self.card = card
        self.device = as_device(device)
        self.settings = settings or SamplerSettings()

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default", device="cpu",
                        settings: SamplerSettings | None = None) -> CoSynthPipeline:
        """Load ``"default"``, a checkpoint folder or a training run folder; never unpickles.

        Raises
        ------
        CheckpointError
            A missing bundled model, a file that is not a safe checkpoint, weights that do not match
            their config; the message says what to do.
        """
        from ..networks.checkpoint import load_model

        folder = resolve_pretrained(name_or_path)
        model, meta = load_model(folder, device="cpu")
        return cls(model, ModelCard.from_meta(meta, fallback_id=Path(folder).name), device, settings)

    # ------------------------------------------------------------------------------------ properties

    @property
    def vocabulary(self):
        return self.card.vocabulary

    @property
    def size_multiple(self) -> int:
        """Canvas sides must be multiples of this (the UNet's downsampling)."""
        return int(self.model.size_multiple)

    def with_settings(self, settings: SamplerSettings) -> CoSynthPipeline:
        """The same model (shared, not copied) with other default sampler settings."""
        return type(self)(self.model, self.card, self.device, settings)

    def to(self, device) -> CoSynthPipeline:
        """Sample on ``device`` from now on."""
        self.device = as_device(device)
        return self

    def canvas(self, size: Sequence[int] | int | None = None) -> tuple[int, int]:
        """(H, W) of a request: ``size`` when given (an int = a square), else the model's canvas."""
        if size is None:
            return (self.card.canvas, self.card.canvas)
        if isinstance(size, (int, np.integer)):
            return (int(size), int(size))
        try:
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise CosynthError(f"size must be (height, width), got {size!r}") from None
        return (h, w)

    # ------------------------------------------------------------------------------------ generation

    def generate(
        self,
        points: PointTable | Sequence[PointTable] | None = None,
        *,
        prompt: str | Sequence[str] | None = None,
        size: Sequence[int] | int | None = None,
        seed: int | None = None,
        n: int = 1,
        first_index: int = 0,
        tissue: str | None = None,
        settings: SamplerSettings | None = None,
        known: dict | None = None,
        preview_every: int = 0,
        **sampler: object,
    ) -> Generator[GenerationProgress, None, list[Sample]]:
        """The generator form of a call: yields progress after every step, returns the pairs.

        ``points`` is one layout for all pairs, one per pair, or None: then every pair gets a layout
        with its training data's density and class mix, drawn from the pair's seed. ``sampler`` keyword
        arguments (``sampler``, ``steps``, ``spacing``, ``guidance``, ``eta``) override ``settings`` for
        this call.
        See :func:`napari_cosynth.engine.pipeline.generate.generate` for the rest.
        """
        from .generate import generate

        shape = self.canvas(size)
        self.model.check_size(*shape)
        check_generation_memory(shape, self.model.config.base_channels, self.device, batch=n)
        base = new_seed() if seed is None else seed
        if points is None:
            points = self.layouts(shape, base, n, first_index)
        return generate(self.model, self.card, points, shape, settings=self._settings(settings, sampler),
                        prompt=prompt, tissue=tissue, seed=base, n=n, first_index=first_index,
                        device=self.device, known=known, preview_every=preview_every)

    def __call__(self, points=None, prompt=None, size=None, *, seed=None, n: int = 1, **kwargs) -> list[Sample]:
        """Draw ``n`` pairs and return them (see :meth:`generate` for the arguments)."""
        return run_to_end(self.generate(points, prompt=prompt, size=size, seed=seed, n=n, **kwargs))

    def layouts(self, shape: tuple[int, int], seed: int, n: int = 1, first_index: int = 0) -> list[PointTable]:
        """Point layouts like the training data's (density, class mix), one per pair, from the pairs' seeds."""
        from ...layouts.hardcore import layout_like_training_data

        return [layout_like_training_data(self.card.training_data, self.vocabulary, shape,
                                          self.card.magnification, rng=pair_seed(seed, first_index + k))
                for k in range(n)]

    # ---------------------------------------------------------------------------------- re-synthesis

    def resynthesize_steps(
        self,
        pair: Sample,
        edited_semantic: np.ndarray | None = None,
        *,
        target: str = "image",
        region: np.ndarray | None = None,
        prompt: str | None = None,
        tissue: str | None = None,
        seed: int | None = None,
        settings: SamplerSettings | None = None,
        preview_every: int = 0,
        **sampler: object,
    ) -> Generator[GenerationProgress, None, Sample]:
        """The generator form of :meth:`resynthesize`."""
        from ...labels.edited import edited_pair
        from .resynthesize import resynthesize

        if edited_semantic is not None:
            pair = edited_pair(pair, edited_semantic)
        return resynthesize(self.model, self.card, pair, target=target, region=region,
                            settings=self._settings(settings, sampler), prompt=prompt, tissue=tissue,
                            seed=seed, device=self.device, preview_every=preview_every)

    def resynthesize(self, pair: Sample, edited_semantic: np.ndarray | None = None, **kwargs) -> Sample:
        """Redraw one side of ``pair`` to match the other (by default: a new image for its labels).

        ``edited_semantic`` replaces the pair's semantic map first (hand-edited labels); the instances,
        the distance map and the points follow it (:func:`napari_cosynth.labels.edited.edited_pair`),
        so an erased nucleus is erased from every map the model is shown. See
        :func:`napari_cosynth.engine.pipeline.resynthesize.resynthesize` for ``target``, ``region``
        and the rest.
        """
        return run_to_end(self.resynthesize_steps(pair, edited_semantic, **kwargs))

    def _settings(self, settings: SamplerSettings | None, overrides: dict) -> SamplerSettings:
        unknown = sorted(set(overrides) - {f.name for f in fields(SamplerSettings)})
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}")
        settings = settings or self.settings
        return settings.with_(**overrides) if overrides else settings

    def __repr__(self) -> str:
        return f"CoSynthPipeline({self.card.summary()}, device={self.device})"
