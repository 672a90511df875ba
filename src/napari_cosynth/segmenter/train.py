"""Training loop of the segmenter: a generator that yields progress after every step.

Written as a plain loop rather than on a trainer framework because it must share the project's
checkpoint conventions (the run folder of :mod:`napari_cosynth.engine.training.run_folder`, shared with
the joint model's trainer; safetensors + JSON through :mod:`napari_cosynth.engine.training.state`) and
resume bit-for-bit: the crop sampler's numpy generator, torch's RNG, the AdamW moments and the
BatchNorm statistics all go into each checkpoint.

The number of optimisation steps is fixed by the config (or ``--steps``) and does not depend on how
much data there is; adding ``--extra`` datasets changes what the crops are drawn from, not how many
steps run, which is what a fair with/without-synthetic-data comparison needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.training.run_folder import RunFolder, resuming_from
from ..engine.training.state import load_training_state, rng_states, save_training_state, set_rng_states
from ..errors import ConfigError, CosynthError
from ..jsonio import read_json
from .config import SegmenterConfig
from .data import CropSampler, Pool, check_compatible, load_pool
from .model import CHECKPOINT_FILES, WEIGHTS, SegmenterNet, save_segmenter

RUN_RECORD = "run.json"
LOSS_COLUMNS = ("step", "total", "ce", "dice", "distance", "seconds")


@dataclass
class SegmenterProgress:
    """State after one optimisation step.

    Attributes
    ----------
    step, total : int
        Steps done (counting those before a resume) and the step the run stops at.
    losses : dict
        ``total``, ``ce``, ``dice``, ``distance`` of this step's batch.
    seconds_per_step : float
    checkpoint : str or None
        The checkpoint folder written after this step, if any.
    """

    step: int
    total: int
    losses: dict
    seconds_per_step: float
    checkpoint: str | None = None

    def postfix(self) -> str:
        return f"loss {self.losses['total']:.4f}, {self.seconds_per_step:.2f} s/step"


def run_folder(out_dir) -> RunFolder:
    """The segmenter's view of the run folder ``out_dir`` (its checkpoints: :func:`.model.list_checkpoints`)."""
    return RunFolder(Path(out_dir), "segmenter run", CHECKPOINT_FILES, LOSS_COLUMNS, RUN_RECORD)


def segmentation_losses(
    logits: torch.Tensor, distance_pred: torch.Tensor, semantic: torch.Tensor, distance: torch.Tensor,
    config: SegmenterConfig,
) -> dict[str, torch.Tensor]:
    """Cross-entropy and soft Dice on the classes, MSE on the distance map, and their weighted sum.

    The soft Dice is taken over the nucleus classes only (background would dominate it) with
    numerator and denominator summed over the whole batch, and smoothed by 1 so that a class absent
    from the batch and not predicted costs nothing.
    """
    ce = F.cross_entropy(logits, semantic)
    prob = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(semantic, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob.dtype)
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = 1.0 - ((2.0 * inter + 1.0) / (denom + 1.0)).mean()
    mse = F.mse_loss(distance_pred, distance)
    total = config.ce_weight * ce + config.dice_weight * dice + config.distance_weight * mse
    return {"total": total, "ce": ce, "dice": dice, "distance": mse}


def train_segmenter(
    config: SegmenterConfig,
    data: str | Path,
    format: str,
    out_dir: str | Path,
    *,
    magnification: float | None = None,
    extras: list[tuple[str | Path, str]] = (),
    samples: list[str] | None = None,
    steps: int | None = None,
    resume: bool = False,
    seed: int | None = None,
    device: str = "cpu",
) -> Generator[SegmenterProgress, None, Path]:
    """Train (or continue training) a segmenter; a generator yielding progress after every step.

    Parameters
    ----------
    config : SegmenterConfig
    data, format
        The real training set (any readable format with instance masks).
    out_dir
        Run folder: ``checkpoints/step-NNNNNNN/`` (each a loadable segmenter plus the training
        state), ``run.json`` (what was trained on) and ``loss.csv``.
    magnification
        Resample every dataset to this magnification (None: the training set's own).
    extras
        ``(path, format)`` of extra datasets (e.g. synthetic pairs) mixed in with
        ``config.extra_ratio``.
    samples
        Train on these samples of ``data`` only (names, as the reader lists them); recorded in
        ``run.json``, so a resume must name the same ones. None: the whole dataset.
    steps, seed
        Override ``config.steps`` / ``config.seed``.
    resume
        Continue from the newest checkpoint in ``out_dir``; the config (but ``steps``) and data must
        be those of the saved run.
    device
        torch device name.

    Returns
    -------
    Path
        (the generator's return value) the final checkpoint folder.

    Raises
    ------
    CosynthError
        ``out_dir`` already holds a run and ``resume`` is False, or the run to resume differs.
    """
    from ..engine.device import resolve_device

    if steps is not None:
        config = config.with_(steps=int(steps))
    if seed is not None:
        config = config.with_(seed=int(seed))
    if config.steps < 1:
        raise ConfigError(f"steps must be >= 1, got {config.steps}")
    out = Path(out_dir)
    folder = run_folder(out)
    latest = folder.to_resume(resume)
    if resume and latest is None:
        raise CosynthError(f"{out}: no checkpoint to resume from; run without --resume to start")
    record = {
        "config": config.to_dict(),
        "data": {"path": str(data), "format": format},
        "extras": [{"path": str(p), "format": f} for p, f in extras],
        "magnification": magnification,
    }
    if samples is not None:
        # Only when given, so that run.json of whole-dataset runs keeps its earlier shape.
        record["data"]["samples"] = [str(s) for s in samples]
    if resume:
        _check_same_run(folder, record)

    real = load_pool(data, format, magnification, samples)
    extra_pools = [load_pool(p, f, magnification if magnification is not None else real.magnification)
                   for p, f in extras]
    for pool in extra_pools:
        check_compatible(real, pool)
    sampler = CropSampler(real, extra_pools, config.crop_size, config.extra_ratio, config.colour_augment)

    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    model = SegmenterNet(config, real.vocabulary.n_classes).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    step = 0
    if resume:
        from safetensors.torch import load_file

        state = load_training_state(latest)
        with resuming_from(latest):
            model.load_state_dict(load_file(str(latest / WEIGHTS)))
            optimizer.load_state_dict(state["optimizer"])
            rng.bit_generator.state = state["data_rng"]
            set_rng_states(state["rng"])
            step = int(state["step"])
    else:
        # Written once, when the run starts: a resumed run is checked against it.
        folder.write_record(json.dumps(record, indent=2) + "\n")
    folder.start(step)

    def write_checkpoint(tmp: Path) -> None:
        save_segmenter(tmp, model, real.vocabulary, real.magnification, {"step": step, "trained_on": record})
        save_training_state(tmp, {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "data_rng": rng.bit_generator.state,
            "rng": rng_states(),
        })

    def checkpoint() -> Path:
        return folder.write_checkpoint(step, write_checkpoint)

    model.train()
    final = latest
    while step < config.steps:
        started = time.perf_counter()
        images, semantic, distance = sampler.batch(rng, config.batch_size)
        images_t = _as_input(images).to(dev)
        logits, dist_pred = model(images_t)
        losses = segmentation_losses(
            logits, dist_pred, torch.from_numpy(semantic).to(dev), torch.from_numpy(distance).to(dev), config
        )
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        step += 1
        seconds = time.perf_counter() - started  # the step itself, not the recalibration below
        if step == config.steps and config.norm_recalibration:
            recalibrate_norm(model, real, config, dev)
        values = {k: float(v.detach()) for k, v in losses.items()}
        if step % config.log_every == 0 or step == config.steps:
            folder.log(step, [values[k] for k in LOSS_COLUMNS[1:-1]], seconds)
        written = None
        if step % config.checkpoint_every == 0 or step == config.steps:
            final = written = checkpoint()
        yield SegmenterProgress(step, config.steps, values, seconds, str(written) if written else None)
    if final is None or not final.name.endswith(f"{step:07d}"):
        final = checkpoint()
    return final


def recalibrate_norm(model: SegmenterNet, real: Pool, config: SegmenterConfig, device) -> None:
    """Re-estimate the BatchNorm statistics of ``model`` on ``config.norm_recalibration`` batches of
    crops of the real pool ``real`` (torch's ``update_bn``: an exact average, not a running one).

    Training with synthetic pairs leaves BatchNorm averages of a mixture of real and synthetic crops,
    weighted by the last batches' mix; the network is then applied to real images only. Drawn with a
    generator of their own, so the training stream (and a resumed run) is unaffected.
    """
    from torch.optim.swa_utils import update_bn

    sampler = CropSampler(real, [], config.crop_size, 0.0, colour_augment=False)
    rng = np.random.default_rng([config.seed, 1])
    batches = (_as_input(sampler.batch(rng, config.batch_size)[0]) for _ in range(config.norm_recalibration))
    update_bn(batches, model, device)  # leaves the model in the mode it was in


def _as_input(images: np.ndarray) -> torch.Tensor:
    """A crop batch (B, H, W, 3) float32 in [0, 1] as the network's (B, 3, H, W) input."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _check_same_run(folder: RunFolder, record: dict) -> None:
    path, out = folder.record_path, folder.path
    try:
        saved = read_json(path)
    except (OSError, ValueError) as exc:
        raise CosynthError(f"{path}: cannot be read ({exc}); cannot check what the run trained on") from None
    a = dict(SegmenterConfig.completed(saved.get("config", {})), steps=None)
    b = dict(record["config"], steps=None)
    differs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    for key in ("data", "extras", "magnification"):
        if saved.get(key) != record[key]:
            differs.append(key)
    if differs:
        raise CosynthError(
            f"{out}: the run being resumed was started with other settings ({', '.join(differs)} "
            "differ); resume with the same config and data, or start a new --out folder"
        )
