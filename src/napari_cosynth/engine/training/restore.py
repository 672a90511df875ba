"""Where a joint-model run's starting weights come from: its own checkpoint, or a donor model.

A resumed run takes everything back from its newest checkpoint's training state (online weights,
optimizer, EMA, gradient scaler, RNG states, the step and the data position), so that it continues
exactly. A new run may instead start from the weights of a saved model (``--init-from``, fine-tuning):
the weights only, with a fresh optimizer. Both refuse weights that do not fit the configured network
with one line saying what differs.
"""

from __future__ import annotations

import torch

from ...errors import CheckpointError, ConfigError
from .state import set_rng_states


def restore_training_state(saved: dict, *, model, optimizer, ema, scaler, train_config, device,
                           where) -> tuple[int, int]:
    """Load a checkpoint's training state into a run's objects; return ``(step, data position)``.

    Only the trainable weights are saved (a frozen pretrained text tower is rebuilt from the config),
    so frozen ones may be missing. A deliberately changed learning rate or weight decay takes effect.
    Wrap the call in :func:`.run_folder.resuming_from` to turn a broken state into one line.
    """
    missing, unexpected = model.load_state_dict(saved["model"], strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if unexpected or (set(missing) & trainable):
        raise CheckpointError(
            f"{where}: the saved weights do not fit this model (missing "
            f"{sorted(set(missing) & trainable)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    optimizer.load_state_dict(saved["optimizer"])
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = train_config.lr, train_config.weight_decay
    ema.load_state_dict(saved["ema"])
    ema.to(device)
    if saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    set_rng_states(saved["rng"])
    return int(saved["step"]), int(saved["data"]["position"])


def init_weights_from(model: torch.nn.Module, source) -> None:
    """Copy the weights of the saved model ``source`` into ``model`` (same architecture required)."""
    from ..networks.checkpoint import load_model, resolve_model

    donor, _ = load_model(resolve_model(source))
    theirs, ours = donor.state_dict(), model.state_dict()
    misfit = sorted(k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape)
    if misfit or donor.n_classes != model.n_classes:
        raise ConfigError(
            f"init from {source}: its architecture differs from the configured one ({len(misfit)} "
            f"tensors differ, e.g. {misfit[:2]}; {donor.n_classes} vs {model.n_classes} classes). "
            "Use that model's own model and text sections (its config.json) in the config"
        )
    model.load_state_dict({k: theirs[k].to(ours[k].dtype) for k in ours})
