"""Layout adherence: does a model put its nuclei where, and of the class, the input points ask?

CoSyn's first quality test. For every real sample, the model draws a pair from that sample's own point
table and a prompt built from it; the generated instances' centroids are then paired with the input
points by HoVer-Net's rule (:mod:`napari_cosynth.metrics.detection`) to give detection F1 (F_d),
classification accuracy and per-class F1. The generated semantic maps are also compared, as a set,
with the real ones by FSD (:func:`napari_cosynth.metrics.distribution.fsd`), and nuclei are counted
per class on both sides. Definitions: docs/metrics.md; usage: docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CosynthError
from ..labels.instances import one_class_per_nucleus
from ..labels.points import centroid_table
from ..metrics.detection import DetectionCounts, radius_for
from ..metrics.distribution import fsd
from ..sample import PointTable, Sample, Vocabulary

__all__ = [
    "AdherenceProgress",
    "adherence_report",
    "crop_to_multiple",
    "load_for_evaluation",
    "score_centroids",
]


@dataclass
class AdherenceProgress:
    """``step`` of ``total`` samples done; ``name`` is the sample just scored."""

    step: int
    total: int
    name: str = ""

    def postfix(self) -> str:
        return self.name


def crop_to_multiple(sample: Sample, multiple: int) -> tuple[Sample, str | None]:
    """Crop ``sample`` from the top-left to the largest size whose sides are multiples of ``multiple``.

    Returns the sample unchanged (and ``None``) when it already fits; otherwise the cropped sample
    (instances renumbered 1..N, points off the new canvas dropped) and a note saying what was cut.

    Raises
    ------
    CosynthError
        If a side is shorter than ``multiple``, or a points-only sample has no image to give it a size.
    """
    try:
        h, w = sample.shape
    except ValueError as err:
        raise CosynthError(str(err)) from None
    h2, w2 = h // multiple * multiple, w // multiple * multiple
    if h2 == 0 or w2 == 0:
        raise CosynthError(
            f"{sample.name}: {h}x{w} is smaller than the model's smallest size {multiple}x{multiple}"
        )
    if (h2, w2) == (h, w):
        return sample, None
    image = None if sample.image is None else sample.image[:h2, :w2].copy()
    points = None
    if sample.points is not None:
        keep = ~sample.points.outside((h2, w2))
        points = PointTable(sample.points.xy[keep], sample.points.classes[keep])
    if sample.has_masks:
        cropped = sample.instances[:h2, :w2]
        ids = np.unique(cropped)
        ids = ids[ids > 0]
        lut = np.zeros(int(sample.instances.max()) + 1, dtype=np.int32)
        lut[ids] = np.arange(1, len(ids) + 1)
        instances = lut[cropped]
        classes = sample.classes[ids - 1]
    else:
        instances, classes = None, np.zeros(0, dtype=np.int64)
    out = sample.with_(image=image, instances=instances, classes=classes, points=points,
                       semantic=None, distance=None)
    return out, f"{sample.name}: cropped from {h}x{w} to {h2}x{w2} (top-left) to suit the model"


def score_centroids(
    true_tables: Sequence[PointTable],
    pred_tables: Sequence[PointTable],
    vocabulary: Vocabulary,
    magnification: float,
) -> dict:
    """Pooled F_d, accuracy and per-class F1 of predicted centroids against true ones.

    The same counting path :func:`adherence_report` uses (HoVer-Net pairing, radius
    :func:`radius_for` of ``magnification``), exposed so it can be checked on its own: scoring a
    table against itself gives F_d = 1 and accuracy = 1.
    """
    if len(true_tables) != len(pred_tables):
        raise ValueError(f"{len(true_tables)} true tables but {len(pred_tables)} predicted ones")
    counts = DetectionCounts()
    radius = radius_for(magnification)
    for t, p in zip(true_tables, pred_tables):
        counts.add(t, p, radius)
    out = counts.result(vocabulary)
    out["radius_px"] = radius
    return out


def load_for_evaluation(model_path, data, format: str, magnification: float | None, device: str,
                        settings=None):
    """Load a model as a pipeline and open a dataset at its magnification; check the vocabularies agree.

    Returns ``(pipe, magnification, dataset)``.
    """
    from ..data.registry import open_dataset
    from ..engine.pipeline.pipeline import CoSynthPipeline

    pipe = CoSynthPipeline.from_pretrained(model_path, device=device, settings=settings)
    vocabulary = pipe.vocabulary
    mag = float(magnification if magnification is not None else pipe.card.magnification)
    dataset = open_dataset(data, format, magnification=mag)
    if len(dataset) == 0:
        raise CosynthError(f"{data}: the {format} dataset holds no samples")
    first = dataset[0]
    if first.vocabulary.names != vocabulary.names:
        raise CosynthError(
            f"{data}: the dataset's classes ({', '.join(first.vocabulary.nucleus_classes)}) are not the "
            f"model's ({', '.join(vocabulary.nucleus_classes)}); evaluate the model on data with its classes"
        )
    return pipe, mag, dataset


def tissue_for(sample: Sample, card) -> str:
    """The sample's tissue when the model knows it, else the model's first tissue."""
    if sample.tissue in card.tissues or not card.tissues:
        return sample.tissue
    return card.default_tissue


def layout_pairs(pipe, dataset, total: int, notes: list[str], *, seed: int, n: int = 1):
    """Pairs drawn from the layouts of the first ``total`` samples, one sample at a time.

    Yields ``(sample, pairs, points)``, the sample cropped to the UNet's size multiple (a note on each
    crop goes to ``notes``). Sample i's k-th pair is pair ``i * n + k`` of the base ``seed`` (one
    seed rule for every command: :mod:`napari_cosynth.seeds`), with a prompt built from its points.
    """
    for i in range(total):
        sample, note = crop_to_multiple(dataset[i], pipe.size_multiple)
        if note:
            notes.append(note)
        points = sample.point_table()
        pairs = pipe(points, size=sample.shape, tissue=tissue_for(sample, pipe.card), seed=seed, n=n,
                     first_index=i * n)
        yield sample, pairs, points


def _class_counts(classes: np.ndarray, vocabulary: Vocabulary) -> dict[str, int]:
    return {name: int((np.asarray(classes) == i).sum()) for i, name in enumerate(vocabulary.names) if i}


def _share(maps: list[np.ndarray]) -> float:
    """Share of nucleus pixels, pooled over ``maps``."""
    return float(sum(np.count_nonzero(m) for m in maps)) / max(1, sum(np.asarray(m).size for m in maps))


def _pixel_shares(real: list[np.ndarray], generated: list[np.ndarray]) -> dict:
    """Pooled share of nucleus pixels, real maps against the maps generated from their layouts."""
    gen = _share(generated)
    if len(real) < len(generated) or not real:
        return {"real": None, "generated": gen, "relative_difference": None}
    ref = _share(real)
    return {"real": ref, "generated": gen, "relative_difference": (gen - ref) / ref if ref else None}


def _mixed_classes(rows: list[dict]) -> dict:
    """Generated nuclei with pixels of two classes: in the stored semantic maps, and in the model's raw
    output before each nucleus was painted in its voted class (recorded in the provenance)."""
    known = [r for r in rows if r["nuclei_with_mixed_classes"] is not None]
    raw = sum(r["nuclei_with_mixed_classes"] for r in known)
    stored = sum(r["nuclei_with_mixed_classes_stored"] for r in rows)
    nuclei = sum(r["n_generated"] for r in rows)
    return {
        "nuclei": nuclei,
        "stored": stored,
        "stored_share": stored / nuclei if nuclei else None,
        "raw_model_output": raw if known else None,
        "raw_share": raw / sum(r["n_generated"] for r in known) if known and nuclei else None,
    }


def adherence_report(
    model_path,
    data,
    format: str,
    *,
    magnification: float | None = None,
    settings=None,
    seed: int = 0,
    limit: int | None = None,
    out=None,
    device: str = "cpu",
) -> Generator[AdherenceProgress, None, dict]:
    """Generate a pair from every sample's layout and score it against that layout.

    Parameters
    ----------
    model_path : str or path-like
        ``"default"``, a checkpoint folder or a training run folder.
    data, format : path-like, str
        The dataset and its reader's format (samples with masks or points-only).
    magnification : float, optional
        Resample the data to this magnification; default the model's. Also sets the pairing radius.
    settings : SamplerSettings, optional
        The sampler (the pipeline's default when omitted).
    seed : int
        Base seed; sample ``i``'s pair is pair ``i`` of it (:func:`napari_cosynth.seeds.pair_seed`).
    limit : int, optional
        Score only the first ``limit`` samples.
    out : path-like, optional
        Folder for the generated pairs (``out/pairs``, folder format), ``report.json``,
        ``report.md`` and ``grid.png``.
    device : str
        Torch device.

    Returns
    -------
    generator
        Yields :class:`AdherenceProgress` after each sample; returns the report dict (keys
        ``detection`` with ``f_d``, ``acc``, ``f1`` and counts; ``fsd``; ``counts`` real vs
        generated per class; ``samples``, one row per sample; ``notes``).
    """
    if limit is not None and limit < 1:
        raise CosynthError(f"--limit must be a positive number of samples, got {limit}")
    pipe, mag, dataset = load_for_evaluation(model_path, data, format, magnification, device, settings)
    vocabulary = pipe.vocabulary
    total = len(dataset) if limit is None else min(limit, len(dataset))
    notes: list[str] = []
    if pipe.card.magnification != mag:
        notes.append(f"data resampled to {mag:g}x, not the model's {pipe.card.magnification:g}x")
    true_tables, pred_tables, rows = [], [], []
    real_sem, gen_sem = [], []
    real_counts = dict.fromkeys(vocabulary.nucleus_classes, 0)
    gen_counts = dict.fromkeys(vocabulary.nucleus_classes, 0)
    shown: list[tuple[Sample, list[Sample]]] = []
    pairs_dir = Path(out) / "pairs" if out is not None else None
    if pairs_dir is not None and pairs_dir.exists() and any(pairs_dir.iterdir()):
        raise CosynthError(f"{pairs_dir} already holds pairs; give an empty or new --out folder")
    generated = layout_pairs(pipe, dataset, total, notes, seed=seed)
    for i, (sample, pairs, points) in enumerate(generated):
        pair = pairs[0]
        # pair.point_table() would return the input points it was drawn from: score what was drawn.
        drawn = centroid_table(pair.instances, pair.classes)
        true_tables.append(points)
        pred_tables.append(drawn)
        one = score_centroids([points], [drawn], vocabulary, mag)
        if sample.has_masks:
            real_sem.append(sample.semantic_map())
        gen_sem.append(pair.semantic)
        for name, k in points.counts(vocabulary).items():
            real_counts[name] += k
        for name, k in _class_counts(pair.classes, vocabulary).items():
            gen_counts[name] += k
        rows.append({
            "name": sample.name, "size": list(sample.shape), "seed": pair.provenance["seed"],
            "prompt": pair.provenance["prompt"], "n_real": len(points), "n_generated": len(drawn),
            "f_d": one["f_d"], "acc": one["acc"],
            "nuclei_pixel_share": {"real": _share(real_sem[-1:]) if sample.has_masks else None,
                                   "generated": _share([pair.semantic])},
            "nuclei_with_mixed_classes": pair.provenance.get("nuclei_with_mixed_classes"),
            "nuclei_with_mixed_classes_stored": one_class_per_nucleus(
                pair.instances, pair.classes, pair.semantic)[1],
        })
        if pairs_dir is not None:
            from ..data.folder import safe_name, write_sample

            write_sample(pair, pairs_dir, name=f"{i:04d}-{safe_name(sample.name)}")
        if len(shown) < 8:
            shown.append((sample, [pair]))
        yield AdherenceProgress(i + 1, total, sample.name)

    detection = score_centroids(true_tables, pred_tables, vocabulary, mag)
    fsd_value, fsd_note = None, None
    if len(real_sem) < len(gen_sem):
        fsd_note = "not computed: the data has no masks (points only), so there is no real semantic map"
        if real_sem:
            fsd_note = (f"not computed: only {len(real_sem)} of {len(gen_sem)} samples have masks; "
                        "FSD compares whole sets")
    elif len(gen_sem) < 2:
        fsd_note = "not computed: FSD needs at least 2 samples per set"
    else:
        fsd_value = fsd(real_sem, gen_sem, vocabulary.n_classes)
    if fsd_note:
        notes.append("FSD " + fsd_note)
    report = {
        "measurement": "adherence",
        "model": str(model_path),
        "model_id": pipe.card.model_id,
        "data": str(data),
        "format": format,
        "magnification": mag,
        **pipe.settings.provenance(pipe.card.timesteps),
        "seed": int(seed),
        "n_samples": total,
        "detection": detection,
        "fsd": fsd_value,
        "fsd_scale": "percent (proportions x 100)",
        "counts": {"real": real_counts, "generated": gen_counts},
        "nuclei_pixel_share": _pixel_shares(real_sem, gen_sem),
        "mixed_classes": _mixed_classes(rows),
        "samples": rows,
        "notes": notes,
    }
    if out is not None:
        from .grid_image import compose_grid, write_png
        from .report import write_report

        grid = compose_grid(shown, vocabulary)
        write_png(Path(out) / "grid.png", grid)
        report["pairs"] = str(pairs_dir)
        write_report(report, out, title=f"Adherence of {report['model_id']} on {data}",
                     images={"Real layouts (left) and the pairs drawn from them": "grid.png"})
    return report
