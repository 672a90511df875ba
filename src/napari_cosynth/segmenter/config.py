"""The segmenter's settings: network size, losses and the training schedule, read from YAML.

The segmenter is a plain supervised network, so its settings are one flat mapping rather than the
joint model's sectioned config (``engine/config.py``); keeping them separate means a change to the
diffusion model's schema never invalidates a segmenter config, and the other way round.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..limits import check_seed


@dataclass(frozen=True)
class SegmenterConfig:
    """Network and training settings of the nuclei segmenter (docs/segmenter.md explains each).

    Attributes
    ----------
    encoder : str
        A segmentation-models-pytorch encoder name (``resnet18``, ``resnet34``, or a timm one such
        as ``tu-resnet10t``); built with random weights, nothing is ever downloaded.
    encoder_depth : int
        Encoder stages used (3-5); the input is padded to a multiple of ``2 ** encoder_depth``.
    decoder_channels : tuple of int
        One width per decoder stage (``encoder_depth`` of them).
    steps, batch_size, crop_size : int
        Optimisation steps, crops per step, crop side in pixels.
    lr, weight_decay : float
        AdamW settings.
    ce_weight, dice_weight, distance_weight : float
        Weights of cross-entropy and soft Dice on the classes and MSE on the distance map.
    extra_ratio : float
        Share of crops drawn from the ``--extra`` datasets when any are given (0 to 1).
    colour_augment : bool
        Random brightness / contrast / saturation / hue-like channel jitter on top of flips and
        rotations (the "conventional augmentation" arm of the downstream experiment).
    checkpoint_every, log_every : int
        Steps between checkpoints and between lines of the loss log.
    seed : int
        Seed of the weights, the crop sampler and the augmentations.
    """

    encoder: str = "tu-resnet18"
    encoder_depth: int = 4
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16)
    steps: int = 4000
    batch_size: int = 8
    crop_size: int = 128
    lr: float = 1.0e-3
    weight_decay: float = 1.0e-4
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    distance_weight: float = 1.0
    extra_ratio: float = 0.5
    colour_augment: bool = False
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0

    def __post_init__(self):
        hints = {f.name: f.type for f in dataclasses.fields(self)}
        for name, tp in hints.items():
            value = getattr(self, name)
            if tp == "bool":
                ok = isinstance(value, bool)
            elif tp == "int":
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif tp == "float":
                # NaN and inf pass every range check below (comparisons with NaN are false).
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and math.isfinite(value))
                if ok:
                    object.__setattr__(self, name, float(value))
            elif tp == "str":
                ok = isinstance(value, str) and bool(value)
            else:  # tuple[int, ...]
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
                )
                if ok:
                    object.__setattr__(self, name, tuple(value))
            if not ok:
                raise ConfigError(f"segmenter config: {name} must be a {tp}, got {value!r}")
        for name in ("steps", "batch_size", "crop_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"segmenter config: {name} must be >= 1, got {getattr(self, name)}")
        check_seed(self.seed, "segmenter config: seed")
        if not 3 <= self.encoder_depth <= 5:
            raise ConfigError(f"segmenter config: encoder_depth must be 3, 4 or 5, got {self.encoder_depth}")
        if len(self.decoder_channels) != self.encoder_depth:
            raise ConfigError(
                f"segmenter config: decoder_channels needs one width per encoder stage "
                f"({self.encoder_depth}), got {list(self.decoder_channels)}"
            )
        if self.crop_size % self.size_multiple:
            raise ConfigError(
                f"segmenter config: crop_size {self.crop_size} must be a multiple of "
                f"2 ** encoder_depth = {self.size_multiple}"
            )
        if not 0.0 <= self.extra_ratio <= 1.0:
            raise ConfigError(f"segmenter config: extra_ratio must lie in [0, 1], got {self.extra_ratio}")
        for name in ("lr", "weight_decay", "ce_weight", "dice_weight", "distance_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"segmenter config: {name} must be >= 0, got {getattr(self, name)}")
        if self.lr == 0:
            raise ConfigError("segmenter config: lr must be > 0")

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the encoder halves the size ``encoder_depth`` times)."""
        return 2 ** self.encoder_depth

    @classmethod
    def from_dict(cls, d: Any, where: str = "segmenter config") -> SegmenterConfig:
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"{where}: unknown setting(s) {', '.join(map(str, unknown))}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SegmenterConfig:
        """Read a YAML file of settings (missing ones take the defaults above)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        return cls.from_dict(d, str(path))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    def with_(self, **changes) -> SegmenterConfig:
        return dataclasses.replace(self, **changes)
