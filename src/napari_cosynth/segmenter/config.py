"""The segmenter's settings: network size, losses and the training schedule, read from YAML.

The segmenter is a plain supervised network, so its settings are one flat mapping rather than the
joint model's sectioned config (``engine/config.py``); keeping them separate means a change to the
diffusion model's schema never invalidates a segmenter config, and the other way round. Both are
pydantic models on the same base (:mod:`napari_cosynth.config_models`), so they refuse the same things
with the same one-line messages: a misspelled setting gets a suggestion ("segmenter config: crop_sise:
unknown setting; did you mean crop_size?"), a wrong type or range names the setting, and YAML 1.1's
``1e-3`` strings are read as numbers. Errors start with "segmenter config", or with the file read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, model_validator

from ..config_models import Bool, ConfigModel, Float, Int, Str, list_of
from ..errors import ConfigError
from ..limits import check_seed

Count = Annotated[Int, Field(ge=1)]
Weight = Annotated[Float, Field(ge=0.0)]


def _seed(value: int) -> int:
    return check_seed(value, "seed")


class SegmenterConfig(ConfigModel):
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
    norm_recalibration : int
        After the last step, re-estimate every BatchNorm layer's statistics from this many batches of
        real crops (no extras, no colour jitter); 0 keeps the running averages of training. With
        ``--extra`` datasets those averages mix real and synthetic crops, and on real images the
        mismatch can make the network miss most nuclei (docs/downstream.md).
    checkpoint_every, log_every : int
        Steps between checkpoints and between lines of the loss log.
    seed : int
        Seed of the weights, the crop sampler and the augmentations (bounded as every seed is, by
        :func:`napari_cosynth.limits.check_seed`).
    """

    _where: ClassVar[str] = "segmenter config"
    _noun: ClassVar[str] = "setting"

    encoder: Annotated[Str, Field(min_length=1)] = "tu-resnet18"
    encoder_depth: Annotated[Int, Field(ge=3, le=5)] = 4
    decoder_channels: list_of(Count) = (128, 64, 32, 16)
    steps: Count = 4000
    batch_size: Count = 8
    crop_size: Count = 128
    lr: Annotated[Float, Field(gt=0.0)] = 1.0e-3
    weight_decay: Weight = 1.0e-4
    ce_weight: Weight = 1.0
    dice_weight: Weight = 1.0
    distance_weight: Weight = 1.0
    extra_ratio: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.5
    colour_augment: Bool = False
    # 0 by default so that a segmenter saved before this setting existed reads back as what it was.
    norm_recalibration: Annotated[Int, Field(ge=0)] = 0
    checkpoint_every: Count = 500
    log_every: Count = 10
    seed: Annotated[Int, AfterValidator(_seed)] = 0

    @model_validator(mode="after")
    def _network_fits(self) -> SegmenterConfig:
        if len(self.decoder_channels) != self.encoder_depth:
            raise ConfigError(
                f"decoder_channels: needs one width per encoder stage ({self.encoder_depth}), got "
                f"{list(self.decoder_channels)}"
            )
        if self.crop_size % self.size_multiple:
            raise ConfigError(
                f"crop_size: {self.crop_size} must be a multiple of 2 ** encoder_depth = "
                f"{self.size_multiple}"
            )
        return self

    @classmethod
    def completed(cls, settings: dict) -> dict:
        """``settings`` (a stored config) with the defaults of settings it predates filled in.

        Every setting added later defaults to what the code did before it existed, so a run or
        plan recorded without it compares equal to one recorded with its default.
        """
        return {**cls().to_dict(), **settings}

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the encoder halves the size ``encoder_depth`` times)."""
        return 2 ** self.encoder_depth

    @classmethod
    def from_yaml(cls, path: str | Path) -> SegmenterConfig:
        """Read a YAML file of settings (missing ones take the defaults above); errors name the file."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        return cls.from_dict(d, str(path))
