"""From a point table and a prompt to finished image-label pairs: the one generation path of CLI and GUI.

Checks the request (canvas size, points on the canvas, known class ids, prompt length), encodes the
conditions once, runs the joint sampler, and turns its tensors into :class:`~napari_cosynth.sample.Sample`
pairs: a uint8 image, the semantic and distance maps, instances recovered from them by the label
toolkit, the points and a provenance record (seed, prompt, sampler settings, model id, version,
device) that is enough to draw the same pair again.

:func:`resynthesize` is the fixed-map variant: it redraws the image of an (edited) label pair, or the
labels of an image, optionally only inside a region.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ... import __version__
from ...errors import CosynthError
from ...limits import check_seed
from ...labels.instances import SeparationParams, instances_from_maps, one_class_per_nucleus
from ...labels.points import point_map
from ...prompts import prompt_for_points
from ...sample import PointTable, Sample, Vocabulary
from ..diffusion.sampler import SampleOutput, sample
from ..diffusion.sampler_names import DEFAULT_SAMPLER, check_sampler, default_steps

TARGETS = ("image", "labels")


@dataclass
class GenerationProgress:
    """``step`` of ``total`` sampler steps done; ``preview`` as numpy maps when the sampler gave one.

    ``preview`` holds ``image`` (n, H, W, 3) uint8, ``distance`` (n, H, W) float32 in [0, 1] and
    ``semantic`` (n, H, W) uint8 predictions of the final pairs.
    """

    step: int
    total: int
    preview: dict | None = None

    def postfix(self) -> str:
        return f"step {self.step}/{self.total}"


# ------------------------------------------------------------------------------------- model metadata


def model_vocabulary(meta: dict) -> Vocabulary:
    """The class vocabulary a checkpoint was trained with (from its metadata)."""
    names = meta.get("vocabulary") or meta.get("classes")
    if isinstance(names, dict):
        names = names.get("names")
    if not names:
        raise CosynthError("the model's metadata names no class vocabulary; the checkpoint is incomplete")
    names = tuple(names)
    return Vocabulary(names if names[0] == "background" else ("background", *names))


def default_canvas(meta: dict) -> int:
    """The side of the canvas a model draws when none is asked for.

    A bundled model may name one (``canvas_size``: the default model trains on 64 px crops but is
    meant for 128 px pairs); otherwise its training crop, else 128.
    """
    data = (meta.get("config") or {}).get("data") or {}
    return int(meta.get("canvas_size") or meta.get("patch_size") or data.get("crop_size") or 128)


def separation_params(meta_or_magnification) -> SeparationParams:
    """Instance-recovery parameters for maps a model generated at its magnification."""
    if isinstance(meta_or_magnification, dict):
        meta_or_magnification = meta_or_magnification.get("magnification") or 40.0
    return SeparationParams.for_generated(float(meta_or_magnification))


def _config_of(meta: dict):
    from ..config import CosynthConfig

    return CosynthConfig.from_dict(meta["config"])


def _default_tissue(meta: dict) -> str:
    tissues = meta.get("tissues") or []
    return tissues[0] if tissues else "unknown"


def _new_seed() -> int:
    # 63 bits: fits torch's manual_seed and numpy's SeedSequence, and JSON readers' int64.
    return int.from_bytes(os.urandom(8), "little") >> 1


def _as_device(device) -> torch.device:
    from ..device import resolve_device

    return resolve_device(str(device)) if not isinstance(device, torch.device) else device


# ----------------------------------------------------------------------------------------- validation


def check_points(points: PointTable, shape: tuple[int, int], vocabulary: Vocabulary, where: str = "points"):
    """Raise a CosynthError if a point lies off the ``shape`` canvas or has an unknown class id."""
    points.require_on_canvas(shape, where)
    if len(points):
        try:
            vocabulary.check_ids(points.classes, where)
        except ValueError as err:
            raise CosynthError(str(err)) from None


def _per_pair(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise CosynthError(f"{len(value)} {what} given for n={n} pairs; give one, or one per pair")
        return list(value)
    return [value] * n


# ------------------------------------------------------------------------------------------ conditions


def encode(model, point_maps: torch.Tensor, tokens: torch.Tensor, guidance: float):
    """Conditions of a batch, and the prompt-free ones guidance needs (None when guidance is 1).

    The unconditional pass drops the prompt only, as CoSyn does; the point map always conditions.
    """
    b = point_maps.shape[0]
    cond = model.encode_conditions(point_maps, tokens)
    uncond = None
    if guidance != 1.0:
        drop = torch.ones(b, dtype=torch.bool, device=point_maps.device)
        uncond = model.encode_conditions(point_maps, tokens, drop_text=drop)
    return cond, uncond


def to_images(output: SampleOutput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampler tensors -> (image uint8 (B,H,W,3), semantic uint8 (B,H,W), distance float32 [0,1])."""
    image = ((output.image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    distance = ((output.distance.float().clamp(-1, 1) + 1) / 2)[:, 0]
    return (
        image.permute(0, 2, 3, 1).cpu().numpy(),
        output.labels.to(torch.uint8).cpu().numpy(),
        distance.cpu().numpy().astype(np.float32),
    )


def _preview(preview: dict | None) -> dict | None:
    if preview is None:
        return None
    image, semantic, distance = to_images(
        SampleOutput(preview["image"], preview["distance"], preview["labels"])
    )
    return {"image": image, "semantic": semantic, "distance": distance}


def _drive(steps, preview_every: int) -> Generator[GenerationProgress, None, SampleOutput]:
    while True:
        try:
            s = next(steps)
        except StopIteration as stop:
            return stop.value
        yield GenerationProgress(s.step, s.total, _preview(s.preview) if preview_every else None)


# -------------------------------------------------------------------------------------------- generate


def generate(
    model,
    meta: dict,
    points: PointTable | Sequence[PointTable],
    shape: tuple[int, int],
    *,
    prompt: str | Sequence[str] | None = None,
    tissue: str | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    guidance: float = 2.0,
    eta: float | None = None,
    seed: int | None = None,
    n: int = 1,
    device="cpu",
    known: dict | None = None,
    preview_every: int = 0,
) -> Generator[GenerationProgress, None, list[Sample]]:
    """Draw ``n`` image-label pairs for a point layout and a prompt.

    Parameters
    ----------
    model : CoSynNet
        A loaded model (``load_model``); moved to ``device`` and put in eval mode while sampling.
    meta : dict
        The checkpoint metadata from ``load_model`` (vocabulary, tissues, magnification, config,
        model id).
    points : PointTable or list of n PointTables
        Nucleus centroids (x, y) in pixels with class ids of the model's vocabulary; one layout for
        all pairs or one per pair.
    shape : (H, W)
        Canvas size; must suit the UNet (``model.check_size``).
    prompt : str or list of n str, optional
        Text prompt; built from the points' classes, the tissue and the model's prompt style when
        omitted (class order shuffled by the seed).
    tissue : str, optional
        Tissue for a built prompt; the model's first tissue when omitted.
    sampler : str
        One of :data:`napari_cosynth.engine.diffusion.sampler_names.SAMPLERS` (see
        :func:`napari_cosynth.engine.diffusion.sampler.sample`); the default is ``DEFAULT_SAMPLER``.
    steps : int, optional
        Sampler steps (default 20; 50 for ``"fast"``); the reference sampler always takes all T.
    guidance : float
        Classifier-free guidance scale on the prompt (1 = off; CoSyn uses 2).
    eta : float, optional
        DDIM noise scale in [0, 1] for ``sampler="ddim"`` (0 when omitted).
    seed : int, optional
        Seed of every random draw; drawn at random and recorded in the provenance when omitted.
    n : int
        Number of pairs, sampled as one batch.
    device : str or torch.device
        "cpu", "cuda", "mps" or "auto".
    known : dict, optional
        Maps to hold fixed (see :func:`resynthesize` for the common uses): any of ``"image"`` uint8
        (H, W, 3), ``"semantic"`` int (H, W), ``"distance"`` float (H, W) in [0, 1], each for all
        pairs or with a leading n axis, and ``"mask"`` bool (H, W): where to hold them (everywhere
        when absent).
    preview_every : int
        Attach a numpy preview to the progress every this many steps (0 = never).

    Returns
    -------
    generator
        Yields :class:`GenerationProgress` after every sampler step and returns the list of n
        :class:`~napari_cosynth.sample.Sample` pairs (``StopIteration.value``; see
        :func:`run_to_end`). Each pair holds ``image``, ``semantic``, ``distance`` (float32 in
        [0, 1]), ``instances`` and ``classes`` (recovered from the maps), ``points`` and a
        ``provenance`` dict. The request is checked when ``generate`` is called, before any step.

    Raises
    ------
    CosynthError
        A canvas the UNet cannot take, points off the canvas, unknown class ids, a prompt longer
        than the text encoder's context (with its token count), bad sampler settings.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CosynthError(f"n must be a positive number of pairs, got {n!r}")
    check_sampler(sampler, steps, eta, guidance)
    h, w = _check_shape(model, shape)
    device = _as_device(device)
    vocabulary = model_vocabulary(meta)
    tables = _per_pair(points, n, "point tables")
    for k, table in enumerate(tables):
        if not isinstance(table, PointTable):
            raise CosynthError(f"points must be a PointTable, got {type(table).__name__}")
        check_points(table, (h, w), vocabulary, "points" if n == 1 else f"points of pair {k}")
    seed = _new_seed() if seed is None else check_seed(seed)
    tissue = tissue or _default_tissue(meta)
    prompts = _prompts(prompt, tables, vocabulary, tissue, meta, seed, n)
    # Tokenising here raises PromptTooLongError (with the token count) before any work is done.
    tokens = model.text.tokenize(prompts)
    point_maps = torch.from_numpy(np.stack([point_map(t, (h, w)) for t in tables]).astype(np.int64))
    known_t = _known_tensors(known, n, (h, w), vocabulary)
    n_steps = _resolved_steps(sampler, steps, meta)
    provenance = {
        "seed": seed,
        "sampler": sampler,
        "steps": n_steps,
        "guidance": float(guidance),
        **({} if eta is None else {"eta": float(eta)}),
        "model_id": meta.get("model_id", "unknown"),
        "version": __version__,
        "device": str(device),
        "n": n,
    }
    if known_t:
        provenance["fixed"] = sorted(k for k in known_t if k != "mask")
        provenance["fixed_region"] = "mask" in known_t

    model.to(device)
    diffusion = _config_of(meta).diffusion
    generator = torch.Generator(device=device).manual_seed(seed)
    with _eval_mode(model), torch.no_grad():
        cond, uncond = encode(model, point_maps.to(device), tokens.to(device), float(guidance))
    steps_iter = sample(
        model, cond, uncond, (n, h, w), kind=sampler, steps=steps, guidance=float(guidance), eta=eta,
        generator=generator, known=_to_device(known_t, device) or None,
        preview_every=preview_every, schedule=diffusion,
    )
    return _finish_generate(steps_iter, model, preview_every, tables, prompts, tissue, vocabulary,
                            meta, provenance)


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode (no dropout) for the duration, then the caller's mode again (a training run's)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _finish_generate(steps_iter, model, preview_every, tables, prompts, tissue, vocabulary, meta,
                     provenance):
    with _eval_mode(model):
        output = yield from _drive(steps_iter, preview_every)
    images, semantics, distances = to_images(output)
    pairs = []
    for i in range(len(tables)):
        instances, classes = instances_from_maps(semantics[i], distances[i], separation_params(meta))
        semantic, mixed = one_class_per_nucleus(instances, classes, semantics[i])
        pairs.append(
            Sample(
                image=images[i],
                instances=instances,
                classes=classes,
                vocabulary=vocabulary,
                tissue=tissue,
                magnification=float(meta.get("magnification") or 40.0),
                name=f"pair-{provenance['seed']}-{i}",
                points=tables[i],
                semantic=semantic,
                distance=distances[i],
                provenance={**provenance, "index": i, "prompt": prompts[i],
                            "nuclei_with_mixed_classes": mixed},
            )
        )
    return pairs


def _check_shape(model, shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise CosynthError(f"shape must be (height, width), got {shape!r}") from None
    if h < 1 or w < 1:
        raise CosynthError(f"shape must be positive, got {h}x{w}")
    model.check_size(h, w)
    return h, w


def _prompts(prompt, tables, vocabulary, tissue, meta, seed, n) -> list[str]:
    if prompt is not None:
        prompts = _per_pair(prompt, n, "prompts")
        for p in prompts:
            if not isinstance(p, str):
                raise CosynthError(f"a prompt must be text, got {type(p).__name__}")
        return prompts
    config = meta.get("config") or {}
    style = (config.get("data") or {}).get("prompt_style", "paper")
    staining = meta.get("staining", "H&E")
    return [
        prompt_for_points(t, vocabulary, tissue, style=style, staining=staining,
                          rng=np.random.default_rng([seed, i]))
        for i, t in enumerate(tables)
    ]


def _resolved_steps(sampler: str, steps: int | None, meta: dict) -> int:
    if sampler == "reference":
        return int(((meta.get("config") or {}).get("diffusion") or {}).get("timesteps", 1000))
    return default_steps(sampler) if steps is None else int(steps)


def _to_device(known: dict, device) -> dict:
    out = {}
    for k, v in known.items():
        if isinstance(v, dict):
            out[k] = {m: None if t is None else t.to(device) for m, t in v.items()}
        else:
            out[k] = v.to(device)
    return out


def _known_tensors(known: dict | None, n: int, shape: tuple[int, int], vocabulary: Vocabulary) -> dict:
    """User-unit fixed maps -> the sampler's tensors (image/distance in [-1, 1], labels int64)."""
    if not known:
        return {}
    allowed = ("image", "semantic", "distance", "mask")
    unknown = sorted(set(known) - set(allowed))
    if unknown:
        raise CosynthError(f"fixed maps: unknown key(s) {unknown}; use any of {list(allowed)}")
    h, w = shape

    def batch(a, tail, what):
        a = np.asarray(a)
        if a.shape == (h, w, *tail):
            a = np.broadcast_to(a, (n, h, w, *tail))
        if a.shape != (n, h, w, *tail):
            raise CosynthError(
                f"fixed maps: {what} has shape {a.shape}; expected {(h, w, *tail)} or {(n, h, w, *tail)}"
            )
        return np.ascontiguousarray(a)

    out = {}
    if known.get("image") is not None:
        a = batch(known["image"], (3,), "image")
        if a.dtype != np.uint8:
            raise CosynthError(f"fixed maps: image must be RGB uint8, got {a.dtype}")
        out["image"] = torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    if known.get("semantic") is not None:
        a = batch(known["semantic"], (), "semantic")
        if not np.issubdtype(a.dtype, np.integer):
            raise CosynthError(f"fixed maps: semantic must hold integer class ids, got {a.dtype}")
        bad = a[(a < 0) | (a >= vocabulary.n_classes)]
        if bad.size:
            raise CosynthError(
                f"fixed maps: semantic holds class id {int(bad[0])}, outside 0..{vocabulary.n_classes - 1} "
                f"({', '.join(vocabulary.names)})"
            )
        out["labels"] = torch.from_numpy(a.astype(np.int64))
    if known.get("distance") is not None:
        a = batch(known["distance"], (), "distance").astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise CosynthError("fixed maps: distance must be finite and lie in [0, 1]")
        out["distance"] = torch.from_numpy(a[:, None] * 2.0 - 1.0)
    if known.get("mask") is not None:
        a = batch(known["mask"], (), "mask")
        if a.dtype != bool:
            raise CosynthError(f"fixed maps: mask must be boolean, got {a.dtype}")
        out["mask"] = torch.from_numpy(a[:, None].copy())
    if not any(k in out for k in ("image", "labels", "distance")):
        raise CosynthError("fixed maps: give at least one of image, semantic, distance to hold fixed")
    return out


# ---------------------------------------------------------------------------------------- resynthesize


def resynthesize(
    model,
    meta: dict,
    pair: Sample,
    *,
    target: str = "image",
    region: np.ndarray | None = None,
    prompt: str | None = None,
    tissue: str | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    guidance: float = 2.0,
    eta: float | None = None,
    seed: int | None = None,
    device="cpu",
    preview_every: int = 0,
    resample: int = 1,
) -> Generator[GenerationProgress, None, Sample]:
    """Redraw one side of a pair so that it matches the other (RePaint-style replacement).

    Parameters
    ----------
    model, meta
        As for :func:`generate`.
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
    prompt, tissue, sampler, steps, guidance, eta, seed, device, preview_every
        As for :func:`generate`; the prompt defaults to the pair's recorded one, else one built from
        its points.
    resample : int
        RePaint's resampling jumps: take every sampler step but the last this many times (1 = no
        jumps; each one more costs a model call per step). See :mod:`napari_cosynth.engine.diffusion.repaint`.

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
    check_sampler(sampler, steps, eta, guidance)
    h, w = _check_shape(model, pair.shape)
    device = _as_device(device)
    vocabulary = model_vocabulary(meta)
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
    seed = _new_seed() if seed is None else check_seed(seed)
    tissue = tissue or (pair.tissue if pair.tissue != "unknown" else None) or _default_tissue(meta)
    prompts = _prompts(prompt, [points], vocabulary, tissue, meta, seed, 1)
    tokens = model.text.tokenize(prompts)

    kept = {"semantic": semantic, "distance": distance} if target == "image" else {"image": pair.image}
    known = _known_tensors(kept, 1, (h, w), vocabulary)
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
        known_target = _known_tensors(redrawn, 1, (h, w), vocabulary)
        masks = {**dict.fromkeys(known), **dict.fromkeys(known_target, outside)}
        known = {**known, **known_target, "mask": masks}

    n_steps = _resolved_steps(sampler, steps, meta)
    provenance = {
        "seed": seed, "sampler": sampler, "steps": n_steps, "guidance": float(guidance),
        **({} if eta is None else {"eta": float(eta)}),
        **({} if resample == 1 else {"resample": resample}),
        "model_id": meta.get("model_id", "unknown"), "version": __version__, "device": str(device),
        "resynthesized": target, "region": region is not None, "prompt": prompts[0],
        "source": pair.name,
    }
    model.to(device)
    diffusion = _config_of(meta).diffusion
    generator = torch.Generator(device=device).manual_seed(seed)
    pm = torch.from_numpy(point_map(points, (h, w)).astype(np.int64))[None].to(device)
    with _eval_mode(model), torch.no_grad():
        cond, uncond = encode(model, pm, tokens.to(device), float(guidance))
    steps_iter = sample(
        model, cond, uncond, (1, h, w), kind=sampler, steps=steps, guidance=float(guidance), eta=eta,
        generator=generator, known=_to_device(known, device), preview_every=preview_every,
        schedule=diffusion, resample=resample,
    )
    return _finish_resynthesize(steps_iter, model, preview_every, pair, target, semantic, distance,
                                points, provenance)


def _finish_resynthesize(steps_iter, model, preview_every, pair, target, semantic, distance, points,
                         provenance):
    with _eval_mode(model):
        output = yield from _drive(steps_iter, preview_every)
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
        instances, classes = instances_from_maps(new_semantic, new_distance,
                                                 separation_params(pair.magnification))
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


def run_to_end(progress: Generator):
    """Drive a :func:`generate` / :func:`resynthesize` generator to the end; return its result."""
    while True:
        try:
            next(progress)
        except StopIteration as stop:
            return stop.value
