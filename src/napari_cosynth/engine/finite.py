"""Keeping NaN and infinity out of training runs and saved models.

A diverged run (too high a learning rate, a bad loss weight) does not fail by itself: NaN flows
through every operation, the optimizer writes NaN weights, and a checkpoint of them loads and draws
black images. So a run stops at the first non-finite loss, before the checkpoint of that step is
written (the last one on disk was made from finite weights), a model with non-finite weights is never
written, and one is refused when loaded. The configuration's own check keeps NaN out of the settings
(:mod:`.config`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError, CosynthError

__all__ = ["TrainingDivergedError", "check_finite_loss", "check_finite_weights", "first_nonfinite"]


class TrainingDivergedError(CosynthError):
    """The training loss became NaN or infinite."""


def check_finite_loss(losses: Mapping[str, float], step: int, out_dir,
                      newest_checkpoint: Callable[[Path], Path | None]) -> None:
    """Raise :class:`TrainingDivergedError` when the total loss of ``step`` is not finite.

    Only the loss is checked, not the gradient norm: with float16 mixed precision an infinite
    gradient is routine (the gradient scaler skips that step and lowers its scale).
    ``newest_checkpoint(out_dir)`` (the newest complete checkpoint folder, or None; asked only when
    the loss is bad) is named in the message as the one to resume from.
    """
    if math.isfinite(float(losses["total"])):
        return
    bad = {k: v for k, v in losses.items() if k != "grad_norm" and not math.isfinite(float(v))}
    last_checkpoint = newest_checkpoint(Path(out_dir))
    shown = ", ".join(f"{k} {v}" for k, v in bad.items())
    kept = (f"the last good checkpoint is {last_checkpoint}; lower train.lr "
            f"and continue from it with --resume" if last_checkpoint is not None else
            "no checkpoint was written before it; lower train.lr (or the loss weights) and start again")
    raise TrainingDivergedError(
        f"{Path(out_dir)}: training stopped at step {step}: the loss is not finite ({shown}); the "
        f"weights of this step were not saved, {kept}"
    )


def first_nonfinite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the first floating-point tensor holding NaN or infinity, or None."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite_weights(tensors: Mapping[str, torch.Tensor], where: str, action: str) -> None:
    """Raise :class:`CheckpointError` when a weight tensor is not finite (``action``: what is refused)."""
    name = first_nonfinite(tensors)
    if name is not None:
        raise CheckpointError(
            f"{where}: {action}: its weights are not finite (NaN or infinity in {name}); the training "
            "that made them diverged. Use an earlier checkpoint of the run"
        )
