"""The conditions of a request, checked and encoded: points, prompts, fixed maps, the model's inputs.

Shared by :mod:`.generate` and :mod:`.resynthesize`: every check that raises a user's error happens here,
before any sampler step, and the numpy <-> tensor conversions of maps live in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ...errors import CosynthError
from ...progress import relay
from ...sample import PointTable, Vocabulary
from ..diffusion.sampler import SampleOutput
from .card import ModelCard


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



# ----------------------------------------------------------------------------------------- validation


def check_points(points: PointTable, shape: tuple[int, int], vocabulary: Vocabulary, where: str = "points"):
    """Raise a CosynthError if a point lies off the ``shape`` canvas or has an unknown class id."""
    points.require_on_canvas(shape, where)
    if len(points):
        try:
            vocabulary.check_ids(points.classes, where)
        except ValueError as err:
            raise CosynthError(str(err)) from None


def per_pair(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise CosynthError(f"{len(value)} {what} given for n={n} pairs; give one, or one per pair")
        return list(value)
    return [value] * n


def check_shape(model, shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise CosynthError(f"shape must be (height, width), got {shape!r}") from None
    if h < 1 or w < 1:
        raise CosynthError(f"shape must be positive, got {h}x{w}")
    model.check_size(h, w)
    return h, w


def prompts_for(prompt, tables: list[PointTable], card: ModelCard, tissue: str, seeds: list[int]) -> list[str]:
    """The prompt of every pair: the given one(s), else one built from its points, shuffled by its seed."""
    n = len(tables)
    if prompt is not None:
        prompts = per_pair(prompt, n, "prompts")
        for p in prompts:
            if not isinstance(p, str):
                raise CosynthError(f"a prompt must be text, got {type(p).__name__}")
        return prompts
    return [card.prompt_for(t, tissue, seed) for t, seed in zip(tables, seeds)]


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


def drive(steps, preview_every: int) -> Generator[GenerationProgress, None, SampleOutput]:
    """The sampler's steps as :class:`GenerationProgress`, with numpy previews when asked for."""
    return (yield from relay(
        steps, lambda s: GenerationProgress(s.step, s.total, _preview(s.preview) if preview_every else None)))


def run_provenance(card: ModelCard, settings, device: torch.device) -> dict:
    """What every generated or redrawn pair records of how it was made, besides its seed and prompt."""
    from ... import __version__

    return {
        **settings.provenance(card.timesteps),
        "model_id": card.model_id,
        "version": __version__,
        "device": str(device),
        # Float sums split over other thread counts round differently (a grey level here and there).
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        # How instances were cut from the generated maps (a model may carry its own settings).
        "instance_recovery": asdict(card.separation),
    }


def as_device(device) -> torch.device:
    from ..device import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(str(device))


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode (no dropout) for the duration, then the caller's mode again (a training run's)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def to_device(known: dict, device) -> dict:
    out = {}
    for k, v in known.items():
        if isinstance(v, dict):
            out[k] = {m: None if t is None else t.to(device) for m, t in v.items()}
        else:
            out[k] = v.to(device)
    return out


def known_tensors(known: dict | None, n: int, shape: tuple[int, int], vocabulary: Vocabulary) -> dict:
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


