"""Alignment: does a generated image show the nuclei its generated labels say it shows?

A segmenter trained on real images only is applied to the generated images and scored against the
generated labels. If image and labels agree as well as real images agree with their annotations, the
segmenter scores about as well on generated pairs as on real test images; the gap between the two
Dice figures is the headline number (CoSyn's acceptance target: within 0.05).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError

ROW_KEYS = ("dice", "aji", "pq", "f_d", "acc")


def _score_dataset(model, meta, path, format, magnification) -> dict:
    from ..data.registry import open_dataset
    from ..segmenter.predict import predict_samples
    from ..segmenter.score import score_predictions

    dataset = open_dataset(path, format, magnification=magnification)
    if len(dataset) == 0:
        raise DatasetError(path, f"holds no {format} samples")
    truths, predictions = [], []
    for sample, prediction in predict_samples(model, meta, dataset):
        if not sample.has_masks:
            raise DatasetError(path, f"sample {sample.name} has no instance labels to score against")
        truths.append(sample)
        predictions.append(prediction)
    return score_predictions(truths, predictions, magnification)


def alignment_report(segmenter: str | Path, generated: str | Path, real_test: str | Path,
                     real_format: str, *, generated_format: str = "folder",
                     magnification: float | None = None, device: str = "cpu") -> dict:
    """Score a real-trained segmenter on generated pairs and on real test images.

    Parameters
    ----------
    segmenter
        A segmenter folder or a ``cosynth segmenter train`` run folder (newest checkpoint).
    generated, generated_format
        The generated pairs (their images are segmented, their labels are the truth).
    real_test, real_format
        Real annotated test images.
    magnification
        Resample both datasets to this magnification; default: the segmenter's (the only one it
        can be applied at).
    device
        torch device name.

    Returns
    -------
    dict
        ``generated`` and ``real``: the full :func:`~napari_cosynth.segmenter.score_predictions`
        results; ``table``: Dice, AJI, PQ, F_d, Acc of both rows side by side; ``dice_gap``:
        real Dice minus generated Dice (positive when generated pairs align worse);
        ``segmenter``, ``magnification``, ``n_generated``, ``n_real``.
    """
    from ..engine.device import resolve_device
    from ..segmenter.model import load_segmenter

    model, meta = load_segmenter(segmenter, resolve_device(device))
    mag = float(magnification if magnification is not None else meta["magnification"])
    gen = _score_dataset(model, meta, generated, generated_format, mag)
    real = _score_dataset(model, meta, real_test, real_format, mag)
    return {
        "segmenter": meta["path"],
        "magnification": mag,
        "n_generated": gen["n_images"],
        "n_real": real["n_images"],
        "table": {
            "generated": {k: gen[k] for k in ROW_KEYS},
            "real": {k: real[k] for k in ROW_KEYS},
        },
        "dice_gap": real["dice"] - gen["dice"],
        "generated": gen,
        "real": real,
    }
