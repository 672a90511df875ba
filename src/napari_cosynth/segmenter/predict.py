"""Applying a trained segmenter: whole-image inference, instance recovery, predicted pairs on disk.

Patches in this project are small (CoNSeP tiles are 500 x 500 at 20x, generated pairs 128 x 128),
so each image goes through the network whole, reflect-padded to the encoder's size multiple, instead
of in overlapping windows. Instances are recovered from the predicted class and distance maps by the
toolkit's marker-controlled watershed with the separation parameters tuned for the magnification,
the same step that turns the diffusion model's generated maps into nuclei.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import CosynthError, DatasetError
from ..labels.instances import SeparationParams, instances_from_maps
from ..sample import Sample
from .model import SegmenterNet, load_segmenter, to_tensor


@torch.no_grad()
def predict_maps(model: SegmenterNet, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class map and distance map of one (H, W, 3) uint8 image.

    Returns
    -------
    semantic : (H, W) uint8, the arg-max class
    distance : (H, W) float32 in [0, 1]
    """
    h, w = image.shape[:2]
    m = model.config.size_multiple
    ph, pw = (-h) % m, (-w) % m
    # Reflect padding keeps tissue texture at the border where zeros would look like background;
    # an image thinner than the pad falls back to edge replication (reflect needs pad < size).
    mode = "reflect" if ph < h and pw < w else "edge"
    padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)
    device = next(model.parameters()).device
    logits, distance = model(to_tensor(padded).to(device))
    semantic = logits[0, :, :h, :w].argmax(0).to(torch.uint8).cpu().numpy()
    return semantic, distance[0, :h, :w].clamp(0, 1).float().cpu().numpy()


def predict_sample(model: SegmenterNet, meta: dict, sample: Sample,
                   params: SeparationParams | None = None) -> Sample:
    """The segmenter's prediction for ``sample``'s image, as a Sample of the same name and size.

    ``sample`` must be at the segmenter's magnification (``meta['magnification']``); the result
    holds the image, recovered instances and classes, and the predicted semantic and distance maps.
    """
    if sample.image is None:
        raise DatasetError(sample.name, "has no image to segment")
    if float(sample.magnification) != float(meta["magnification"]):
        raise CosynthError(
            f"{sample.name} is at {sample.magnification}x but the segmenter was trained at "
            f"{meta['magnification']}x; resample the data (--mag {meta['magnification']:g})"
        )
    semantic, distance = predict_maps(model, sample.image)
    params = params or SeparationParams.for_magnification(float(meta["magnification"]))
    instances, classes = instances_from_maps(semantic, distance, params)
    return Sample(
        image=sample.image, instances=instances, classes=classes, vocabulary=meta["vocabulary"],
        tissue=sample.tissue, magnification=sample.magnification, name=sample.name,
        semantic=semantic, distance=distance,
        provenance={"segmenter": meta.get("path"), "segmenter_step": meta.get("step"), "source": sample.name},
    )


def predict_samples(
    model: SegmenterNet, meta: dict, samples: Iterable[Sample]
) -> Iterator[tuple[Sample, Sample]]:
    """Yield ``(sample, prediction)`` for every sample, checking the class vocabulary first."""
    for sample in samples:
        if sample.vocabulary != meta["vocabulary"]:
            raise DatasetError(
                sample.name,
                f"has classes {list(sample.vocabulary.nucleus_classes)} but the segmenter predicts "
                f"{list(meta['vocabulary'].nucleus_classes)}; use data with the segmenter's vocabulary",
            )
        yield sample, predict_sample(model, meta, sample)


def predict_dataset(model_dir: str | Path, data: str | Path, format: str, out: str | Path, *,
                    magnification: float | None = None, device: str = "cpu") -> dict:
    """Segment every image of a dataset and write the predictions as folder-format pairs.

    Parameters
    ----------
    model_dir
        A segmenter folder or a training run folder (its newest checkpoint).
    data, format
        The images to segment (labels, where present, are not used).
    out
        Output folder; must not already hold pairs (predictions are never mixed or overwritten).
    magnification
        Resample the data to this magnification; default: the segmenter's.
    device
        torch device name.

    Returns
    -------
    dict
        ``n_pairs``, ``out``, ``segmenter``, ``magnification``.
    """
    from ..data.folder import list_pairs, write_sample
    from ..data.registry import open_dataset
    from ..engine.device import resolve_device

    model, meta = load_segmenter(model_dir, resolve_device(device))
    out = Path(out)
    if out.is_dir() and list_pairs(out):
        raise CosynthError(f"{out} already holds pairs; choose an empty or new --out folder")
    mag = magnification if magnification is not None else meta["magnification"]
    dataset = open_dataset(data, format, magnification=mag)
    n = 0
    for _, prediction in predict_samples(model, meta, _images_only(dataset)):
        write_sample(prediction, out)
        n += 1
    return {"n_pairs": n, "out": str(out), "segmenter": meta["path"], "magnification": float(mag)}


def _images_only(samples: Iterable[Sample]) -> Iterator[Sample]:
    for sample in samples:
        if sample.image is None:
            raise DatasetError(sample.name, "has no image; the segmenter needs images")
        yield sample
