"""From point tables and prompts to finished image-label pairs: the one generation generator.

Checks the request (canvas size, points on the canvas, known class ids, prompt length), encodes the
conditions once, runs the joint sampler with one random stream per pair (``seeds.pair_seed``), and
turns its tensors into :class:`~napari_cosynth.sample.Sample` pairs: a uint8 image, the semantic and
distance maps, instances recovered from them by the label toolkit, the points and a provenance record
(seed, prompt, sampler settings, model id, version, device) that is enough to draw the same pair again.

Most callers use :class:`~.pipeline.CoSynthPipeline`, which holds the model, its card and a device.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np
import torch

from ...errors import CosynthError
from ...labels.instances import instances_from_maps, one_class_per_nucleus
from ...labels.points import point_map
from ...limits import check_seed
from ...sample import PointTable, Sample
from ...seeds import new_seed, pair_seed
from ..diffusion.sampler import sample
from .card import ModelCard
from .conditions import (
    GenerationProgress,
    as_device,
    check_points,
    check_shape,
    drive,
    encode,
    eval_mode,
    known_tensors,
    per_pair,
    prompts_for,
    run_provenance,
    to_device,
    to_images,
)
from .settings import SamplerSettings


def generate(
    model,
    card: ModelCard,
    points: PointTable | Sequence[PointTable],
    shape: tuple[int, int],
    *,
    settings: SamplerSettings | None = None,
    prompt: str | Sequence[str] | None = None,
    tissue: str | None = None,
    seed: int | None = None,
    n: int = 1,
    first_index: int = 0,
    device="cpu",
    known: dict | None = None,
    preview_every: int = 0,
) -> Generator[GenerationProgress, None, list[Sample]]:
    """Draw ``n`` image-label pairs for point layouts and prompts, as one batch.

    Parameters
    ----------
    model : CoSynNet
        A loaded network; moved to ``device`` and put in eval mode while sampling.
    card : ModelCard
        What the model says about itself (vocabulary, tissues, magnification, prompt style).
    points : PointTable or list of n PointTables
        Nucleus centroids (x, y) in pixels with class ids of the model's vocabulary; one layout for
        all pairs or one per pair.
    shape : (H, W)
        Canvas size; must suit the UNet (``model.check_size``).
    settings : SamplerSettings, optional
        Sampler, steps, guidance, eta (UniPC, 20 steps, guidance 2 when omitted).
    prompt : str or list of n str, optional
        Text prompt; built from the points' classes, the tissue and the model's prompt style when
        omitted (class order shuffled by the pair's seed).
    tissue : str, optional
        Tissue for a built prompt; the model's first tissue when omitted.
    seed : int, optional
        Base seed: pair k is drawn from its own stream seeded ``pair_seed(seed, first_index + k)``, so
        a pair does not depend on the batch it is drawn in. Random (and recorded) when omitted.
    n : int
        Number of pairs, sampled as one batch.
    first_index : int
        Index of the first pair of this batch in a larger request (bulk generation draws pairs
        ``first_index .. first_index + n - 1`` of one base seed).
    device : str or torch.device
        "cpu", "cuda", "mps" or "auto".
    known : dict, optional
        Maps to hold fixed (see :func:`.resynthesize.resynthesize` for the common uses): any of
        ``"image"`` uint8 (H, W, 3), ``"semantic"`` int (H, W), ``"distance"`` float (H, W) in [0, 1],
        each for all pairs or with a leading n axis, and ``"mask"`` bool (H, W): where to hold them.
    preview_every : int
        Attach a numpy preview to the progress every this many steps (0 = never).

    Returns
    -------
    generator
        Yields :class:`GenerationProgress` after every sampler step and returns the list of n pairs
        (``StopIteration.value``; ``progress.run_to_end`` drives it). The request is checked when
        ``generate`` is called, before any step.

    Raises
    ------
    CosynthError
        A canvas the UNet cannot take, points off the canvas, unknown class ids, a prompt longer
        than the text encoder's context (with its token count), bad sampler settings.
    """
    settings = settings or SamplerSettings()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CosynthError(f"n must be a positive number of pairs, got {n!r}")
    if isinstance(first_index, bool) or not isinstance(first_index, int) or first_index < 0:
        raise CosynthError(f"first_index must be a whole number >= 0, got {first_index!r}")
    h, w = check_shape(model, shape)
    device = as_device(device)
    tables = per_pair(points, n, "point tables")
    for k, table in enumerate(tables):
        if not isinstance(table, PointTable):
            raise CosynthError(f"points must be a PointTable, got {type(table).__name__}")
        check_points(table, (h, w), card.vocabulary, "points" if n == 1 else f"points of pair {k}")
    base = new_seed() if seed is None else check_seed(seed)
    seeds = [pair_seed(base, first_index + k) for k in range(n)]
    tissue = tissue or card.default_tissue
    prompts = prompts_for(prompt, tables, card, tissue, seeds)
    # Tokenising here raises PromptTooLongError (with the token count) before any work is done.
    tokens = model.text.tokenize(prompts)
    point_maps = torch.from_numpy(np.stack([point_map(t, (h, w)) for t in tables]).astype(np.int64))
    known_t = known_tensors(known, n, (h, w), card.vocabulary)
    provenance = {"base_seed": base, **run_provenance(card, settings, device), "n": n}
    if known_t:
        provenance["fixed"] = sorted(k for k in known_t if k != "mask")
        provenance["fixed_region"] = "mask" in known_t

    model.to(device)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    with eval_mode(model), torch.no_grad():
        cond, uncond = encode(model, point_maps.to(device), tokens.to(device), float(settings.guidance))
    steps_iter = sample(
        model, cond, uncond, (n, h, w), kind=settings.sampler, steps=settings.steps,
        guidance=float(settings.guidance), eta=settings.eta, spacing=settings.spacing, generator=generators,
        known=to_device(known_t, device) or None, preview_every=preview_every,
        schedule=card.config.diffusion,
    )
    return _finish(steps_iter, model, card, preview_every, tables, prompts, tissue, seeds, first_index,
                   provenance)


def _finish(steps_iter, model, card, preview_every, tables, prompts, tissue, seeds, first_index, provenance):
    with eval_mode(model):
        output = yield from drive(steps_iter, preview_every)
    images, semantics, distances = to_images(output)
    pairs = []
    for k in range(len(tables)):
        instances, classes = instances_from_maps(semantics[k], distances[k], card.separation)
        semantic, mixed = one_class_per_nucleus(instances, classes, semantics[k])
        pairs.append(
            Sample(
                image=images[k],
                instances=instances,
                classes=classes,
                vocabulary=card.vocabulary,
                tissue=tissue,
                magnification=card.magnification,
                name=f"pair-{seeds[k]}",
                points=tables[k],
                semantic=semantic,
                distance=distances[k],
                provenance={"seed": seeds[k], **provenance, "index": first_index + k,
                            "prompt": prompts[k], "nuclei_with_mixed_classes": mixed},
            )
        )
    return pairs
