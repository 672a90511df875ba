"""Checks of a joint-model run's configuration that its own validation cannot make.

The configuration checks types and ranges when it is read (:mod:`napari_cosynth.engine.config`).
What needs more than the file is checked here, before the first step: the ``--steps`` override, the
magnification of the data when the config leaves it out, and, on ``--resume``, that the configuration
still describes the run being continued (a changed model or data section would silently train
another model on top of the saved weights).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError

MIXED_PRECISION = ("no", "bf16", "fp16")
# Sections of the configuration that must not change when a run is resumed (what it learns).
_FROZEN_SECTIONS = ("model", "text", "diffusion", "data")
_MOVABLE_KEYS = ("data.path",)


def check_train_config(tc, steps: int | None) -> int:
    """The step the run stops at: ``steps`` (``--steps``) or ``train.steps``, checked.

    The config's own checks cover types and ranges; the --steps override and the precision choice
    (the config names it, CUDA decides whether it applies) are checked here.
    """
    total = tc.steps if steps is None else steps
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        key = "--steps" if steps is not None else "train.steps"
        raise ConfigError(f"{key}: a positive number of steps, got {total!r}")
    if steps is not None and tc.lr_decay_steps > total:
        raise ConfigError(
            f"--steps: {total} is fewer than train.lr_decay_steps ({tc.lr_decay_steps}); the "
            f"learning-rate decay must fit in the run: ask for more steps or a shorter decay"
        )
    if tc.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(
            f"train.mixed_precision: {tc.mixed_precision!r}; choose one of {', '.join(MIXED_PRECISION)}"
        )
    return total


def magnification_of(summary: dict) -> float:
    """The one magnification of the training data (``CropDataset.summary()``), when the config has none."""
    found = summary["magnifications"]
    if len(found) != 1:
        raise ConfigError(
            f"data.magnification: the training data mixes magnifications {found}; set "
            "data.magnification so that every sample is resampled to one"
        )
    return found[0]


def check_same_run(saved: dict, current: dict, out: Path, record: Path) -> None:
    """Refuse to resume with a configuration that changes what the run learns.

    ``saved`` and ``current`` are configuration dicts; the training settings (but the seed) and
    ``data.path`` may change, the model, text, diffusion and data sections may not. ``record`` is the
    run's saved configuration, named in the message as the one to resume with.
    """
    old, new = _flat(saved), _flat(current)
    for key in sorted(set(old) | set(new)):
        section = key.split(".")[0]
        if key in _MOVABLE_KEYS or (section not in _FROZEN_SECTIONS and key != "train.seed"):
            continue
        if old.get(key) != new.get(key):
            raise ConfigError(
                f"{key}: the run in {out} was trained with {old.get(key)!r}, this configuration has "
                f"{new.get(key)!r}; resume with the run's own configuration ({record}) or "
                "start a new run in another --out"
            )


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out
