"""Redraw one side of a pair so that it matches the other: re-synthesis after editing labels.

RePaint-style replacement (Lugmayr et al., CVPR 2022): the kept maps are put back at the right noise
level after every step, optionally with RePaint's resampling jumps (``SamplerSettings.resample``).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import torch

from ...errors import CosynthError
from ...labels.instances import SeparationParams, instances_from_maps, one_class_per_nucleus
from ...labels.points import point_map
from ...limits import check_seed
from ...sample import Sample
from ...seeds import new_seed
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
    prompts_for,
    run_provenance,
    to_device,
    to_images,
)
from .settings import SamplerSettings

TARGETS = ("image", "labels")


def resynthesize(
    model,
    card: ModelCard,
    pair: Sample,
    *,
    target: str = "image",
    region: np.ndarray | None = None,
    settings: SamplerSettings | None = None,
    prompt: str | None = None,
    tissue: str | None = None,
    seed: int | None = None,
    device="cpu",
    preview_every: int = 0,
) -> Generator[GenerationProgress, None, Sample]:
    """Redraw one side of a pair so that it matches the other (RePaint-style replacement).

    Parameters
    ----------
    model, card
        As for :func:`.generate.generate`.
    pair : Sample
        The pair to work on. Its semantic and distance maps are the stored ones or, when absent,
        those its instances imply; its image is needed for ``target="labels"`` or a ``region``.
        Its points (stored, or the centroids of its instances) condition the model.
    target : {"image", "labels"}
        ``"image"``: keep the semantic and distance maps, draw a new image that matches them (the
        napari widget's "re-synthesise the image from my edited labels"). ``"labels"``: keep the
        image, draw new semantic and distance maps for it.
    region : bool array (H, W), optional
        Redraw the target only inside this region and keep it outside; the other side is kept
        everywhere.
    settings : SamplerSettings, optional
        As for :func:`.generate.generate`; ``settings.resample`` > 1 adds RePaint's resampling jumps
        (every step but the last taken that many times; each one more costs a model call per step;
        see :mod:`napari_cosynth.engine.diffusion.repaint`).
    prompt, tissue, seed, device, preview_every
        As for :func:`.generate.generate`; the prompt defaults to the pair's recorded one, else one
        built from its points. The seed is the pair's own (``pair_seed(seed, 0) == seed``).

    Returns
    -------
    generator
        Yields :class:`GenerationProgress` and returns the new pair (``StopIteration.value``): kept
        maps exactly as given, instances recovered from the final maps (the pair's own instances
        when only the image was redrawn and its maps came from them), and provenance recording
        ``resynthesized`` = target.
    """
    if target not in TARGETS:
        raise CosynthError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    settings = settings or SamplerSettings()
    h, w = check_shape(model, pair.shape)
    device = as_device(device)
    vocabulary = card.vocabulary
    if pair.vocabulary != vocabulary:
        raise CosynthError(
            f"{pair.name}: its classes ({', '.join(pair.vocabulary.nucleus_classes)}) are not the "
            f"model's ({', '.join(vocabulary.nucleus_classes)})"
        )
    semantic = np.asarray(pair.semantic_map())
    distance = np.asarray(pair.distance_map(), dtype=np.float32)
    if (target == "labels" or region is not None) and pair.image is None:
        raise CosynthError(f"{pair.name}: has no image to keep; give a pair with an image")
    points = pair.point_table()
    check_points(points, (h, w), vocabulary, f"{pair.name}: points")
    if prompt is None:
        prompt = pair.provenance.get("prompt")
    seed = new_seed() if seed is None else check_seed(seed)
    tissue = tissue or (pair.tissue if pair.tissue != "unknown" else None) or card.default_tissue
    prompts = prompts_for(prompt, [points], card, tissue, [seed])
    tokens = model.text.tokenize(prompts)

    kept = {"semantic": semantic, "distance": distance} if target == "image" else {"image": pair.image}
    known = known_tensors(kept, 1, (h, w), vocabulary)
    if region is not None:
        region = np.asarray(region)
        if region.shape != (h, w) or region.dtype != bool:
            raise CosynthError(
                f"region must be a boolean {h}x{w} mask, got {region.dtype} {region.shape}"
            )
        # The target is held outside the region, the other side everywhere (one mask per map).
        if target == "image":
            redrawn = {"image": pair.image}
        else:
            redrawn = {"semantic": semantic, "distance": distance}
        outside = torch.from_numpy(~region)[None, None]
        known_target = known_tensors(redrawn, 1, (h, w), vocabulary)
        masks = {**dict.fromkeys(known), **dict.fromkeys(known_target, outside)}
        known = {**known, **known_target, "mask": masks}

    provenance = {
        "seed": seed, **run_provenance(card, settings, device),
        "resynthesized": target, "region": region is not None, "prompt": prompts[0],
        "source": pair.name,
    }
    model.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    pm = torch.from_numpy(point_map(points, (h, w)).astype(np.int64))[None].to(device)
    with eval_mode(model), torch.no_grad():
        cond, uncond = encode(model, pm, tokens.to(device), float(settings.guidance))
    steps_iter = sample(
        model, cond, uncond, (1, h, w), kind=settings.sampler, steps=settings.steps,
        guidance=float(settings.guidance), eta=settings.eta, spacing=settings.spacing, generator=generator,
        known=to_device(known, device), preview_every=preview_every, schedule=card.config.diffusion,
        resample=settings.resample,
    )
    return _finish(steps_iter, model, card, preview_every, pair, target, semantic, distance, points,
                   provenance)


def _finish(steps_iter, model, card, preview_every, pair, target, semantic, distance, points, provenance):
    with eval_mode(model):
        output = yield from drive(steps_iter, preview_every)
    image, new_semantic, new_distance = (a[0] for a in to_images(output))
    if target == "image":
        # The sampler's last replacement returns the kept maps exactly; take the caller's arrays
        # themselves so their dtypes survive too.
        new_semantic, new_distance = semantic, distance
        maps_from_instances = pair.has_masks and pair.semantic is None and pair.distance is None
        if maps_from_instances:
            instances, classes = pair.instances, pair.classes
        else:
            # The kept maps are the caller's (perhaps hand-edited): the semantic map has the last word.
            instances, classes = instances_from_maps(
                new_semantic.astype(np.uint8), new_distance,
                SeparationParams.for_magnification(pair.magnification))
    else:
        image = pair.image
        instances, classes = instances_from_maps(new_semantic, new_distance, card.separation)
        new_semantic, provenance["nuclei_with_mixed_classes"] = one_class_per_nucleus(
            instances, classes, new_semantic)
    return pair.with_(
        image=image,
        instances=instances,
        classes=classes,
        semantic=np.asarray(new_semantic, dtype=np.uint8),
        distance=np.asarray(new_distance, dtype=np.float32),
        points=points,
        provenance={**provenance},
    )
