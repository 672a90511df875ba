"""The training/model configuration: typed sections read from YAML, checked before any work starts.

A run is described by one :class:`CosynthConfig` with five sections (``model``, ``text``,
``diffusion``, ``data``, ``train``). Each section is a frozen pydantic model whose fields are checked
on construction, whether it comes from a YAML file, a dict (a checkpoint's ``config.json``) or code, so
a typo or a wrong type is refused up front with the key path named ("train.stpes: unknown key; did you
mean train.steps?") instead of failing an hour into training.

Pydantic rather than hand-written checks: the field declarations below are the whole schema (type,
default, range or choices in one line each), pydantic is already installed with napari and npe2, and
the segmenter's config (``segmenter/config.py``) shares the same base and error lines
(:mod:`napari_cosynth.config_models`). Rules across fields are each section's ``model_validator``.

Paths: ``data.path`` is taken relative to the current working directory (where ``cosynth train`` is
run), not to the YAML file; :meth:`CosynthConfig.with_overrides` replaces any key, e.g.
``{"data.path": "/elsewhere/train"}``, with the same checks.

Checkpoints store :meth:`CosynthConfig.to_dict` in their ``config.json``; a key added later takes its
default when an older checkpoint lacks it. No torch here: the CLI and the widget can read and check a
config without importing it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..config_models import Bool, ConfigModel, Float, Int, Str, list_of, unknown_key
from ..data.registry import TRAINABLE_FORMATS
from ..errors import ConfigError
from ..limits import MAX_SEED

__all__ = [
    "CosynthConfig",
    "DataConfig",
    "DiffusionConfig",
    "LossWeights",
    "ModelConfig",
    "TextConfig",
    "TrainConfig",
]

Fraction = Annotated[Float, Field(ge=0.0, le=1.0)]


class ModelConfig(ConfigModel):
    """Widths and levels of the UNet, the input embeddings and the point-map encoder.

    ``channel_mult`` gives one UNet level each (level 0 at full resolution, each next one at half the
    size); ``attention_levels`` lists the levels whose blocks have self- and cross-attention (the
    middle block at the lowest resolution always has them). ``attention_head_dim`` is the size of one
    attention head (diffusers' argument of that name is a head count; the model converts).
    """

    _path: ClassVar[str] = "model"

    base_channels: Int = Field(32, ge=1)
    channel_mult: list_of(Annotated[Int, Field(ge=1)]) = (1, 2, 4)
    layers_per_block: Int = Field(1, ge=1)
    attention_levels: list_of(Annotated[Int, Field(ge=0)]) = (2,)
    attention_head_dim: Int = Field(32, ge=1)
    label_embed_dim: Int = Field(8, ge=1)
    point_embed_dim: Int = Field(8, ge=1)
    point_channels: Int = Field(16, ge=1)
    point_blocks: Int = Field(2, ge=0)
    norm_num_groups: Int = Field(8, ge=1)

    @model_validator(mode="after")
    def _levels_fit(self) -> ModelConfig:
        n = len(self.channel_mult)
        if n == 0:
            raise ConfigError("model.channel_mult: needs at least one level, e.g. [1, 2, 4]")
        bad = [lvl for lvl in self.attention_levels if lvl >= n]
        if bad:
            raise ConfigError(
                f"model.attention_levels: level {bad[0]} does not exist; with {n} levels in "
                f"model.channel_mult the levels are 0..{n - 1}"
            )
        if len(set(self.attention_levels)) != len(self.attention_levels):
            raise ConfigError(f"model.attention_levels: repeated level in {list(self.attention_levels)}")
        for i, c in enumerate(self.channels):
            if c % self.norm_num_groups:
                raise ConfigError(
                    f"model.norm_num_groups: {self.norm_num_groups} does not divide the {c} channels "
                    f"of level {i} (model.base_channels x model.channel_mult[{i}])"
                )
        # The middle block (lowest level) always has attention, so it is checked too.
        for i in sorted(set(self.attention_levels) | {n - 1}):
            c = self.channels[i]
            if c % self.attention_head_dim:
                raise ConfigError(
                    f"model.attention_head_dim: {self.attention_head_dim} does not divide the {c} "
                    f"channels of level {i}, which has attention"
                )
        return self

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each UNet level."""
        return tuple(self.base_channels * m for m in self.channel_mult)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (the UNet halves the size at each level)."""
        return 2 ** (len(self.channel_mult) - 1)


class TextConfig(ConfigModel):
    """The text tower.

    ``kind: small`` is an open_clip ``TextTransformer`` of ``width``/``layers``/``heads`` trained with
    the UNet. ``kind: open_clip`` is a pretrained open_clip model's text tower: ``open_clip_model`` is
    a built-in name ("ViT-B-32", with ``pretrained`` a local weights file or a tag), or
    ``"local-dir:/folder"`` (open_clip_config.json + weights), or ``"hf-hub:org/name"`` (downloaded;
    only when named here). Its width comes from the model, so ``width``, ``layers``, ``heads`` and
    ``output_dim`` are not used; ``frozen`` keeps its weights fixed (it only applies to open_clip: the
    small tower always trains).
    """

    _path: ClassVar[str] = "text"

    kind: Literal["small", "open_clip"] = "small"
    context_length: Int = Field(77, ge=2)
    width: Int = Field(64, ge=1)
    layers: Int = Field(2, ge=1)
    heads: Int = Field(4, ge=1)
    output_dim: Int = Field(64, ge=1)
    open_clip_model: Str | None = None
    pretrained: Str | None = None
    frozen: Bool = True

    @model_validator(mode="after")
    def _tower_is_complete(self) -> TextConfig:
        if self.kind == "small":
            if self.width % self.heads:
                raise ConfigError(
                    f"text.heads: {self.heads} heads do not divide text.width {self.width}"
                )
            if self.open_clip_model or self.pretrained:
                raise ConfigError(
                    "text.open_clip_model / text.pretrained are set but text.kind is 'small'; set "
                    "text.kind: open_clip to use a pretrained text tower, or remove them"
                )
            return self
        if not self.open_clip_model:
            raise ConfigError(
                "text.open_clip_model: required when text.kind is 'open_clip' (e.g. 'ViT-B-32' "
                "with text.pretrained a local weights file, 'local-dir:/path', or "
                "'hf-hub:wisdomik/QuiltNet-B-32')"
            )
        has_schema = self.open_clip_model.startswith(("hf-hub:", "local-dir:"))
        if has_schema and self.pretrained:
            raise ConfigError(
                f"text.pretrained: {self.open_clip_model!r} carries its own weights; remove "
                "text.pretrained"
            )
        if not has_schema and not self.pretrained:
            raise ConfigError(
                f"text.pretrained: required for open_clip model {self.open_clip_model!r} (a local "
                "weights file, or an open_clip tag such as 'openai' to download); a random frozen "
                "tower would carry no meaning"
            )
        return self


class LossWeights(ConfigModel):
    """Weights of the three losses in the total (CoSyn's code: 9 image, 1 distance, 3 labels)."""

    _path: ClassVar[str] = "diffusion.loss_weights"

    image: Float = Field(9.0, ge=0.0)
    distance: Float = Field(1.0, ge=0.0)
    labels: Float = Field(3.0, ge=0.0)


class DiffusionConfig(ConfigModel):
    """Noise schedule, what the Gaussian heads predict, loss weights, P2 weighting and condition dropout.

    ``prediction``: ``"epsilon"`` (CoSyn's) or ``"v"`` (Salimans & Ho 2022), which stays informative
    at the noisiest timesteps where an epsilon head says almost nothing about the clean image.
    ``label_ce_weight``: weight of an auxiliary cross-entropy on the predicted clean labels (D3PM's
    hybrid loss, Austin et al. 2021); the variational label loss alone gives the label head almost no
    gradient at high noise, where the nuclei must be placed from the point map. ``p2_gamma = 0``
    turns P2 weighting off.
    """

    _path: ClassVar[str] = "diffusion"

    timesteps: Int = Field(1000, ge=2)
    schedule: Literal["cosine", "linear"] = "cosine"
    prediction: Literal["epsilon", "v"] = "epsilon"
    label_ce_weight: Float = Field(0.0, ge=0.0)
    loss_weights: LossWeights = Field(default_factory=LossWeights)
    p2_gamma: Float = Field(0.0, ge=0.0)
    p2_k: Float = Field(1.0, ge=0.0)
    drop_text: Fraction = 0.1
    drop_points: Fraction = 0.0


class DataConfig(ConfigModel):
    """Training data: which dataset, at which magnification, in crops of which size, with which prompts.

    ``path`` is relative to the current working directory (see :meth:`resolved_path`). ``classes``
    lists the nucleus class names (without background) the model learns, or is empty/None to take the
    format's vocabulary. ``tissue`` None takes each sample's own tissue. ``repeat`` makes an epoch visit
    every sample that many times (each with a fresh random crop), for datasets with few large images.
    ``class_balance`` is the fraction of crops placed around a nucleus of a uniformly drawn class, so
    that rare classes are seen (0 = uniform crops only; see :mod:`napari_cosynth.engine.training.data`).
    """

    _path: ClassVar[str] = "data"

    path: Str | None = None
    format: Literal[TRAINABLE_FORMATS] = "consep"  # the formats with instance masks
    magnification: Float = Field(20.0, ge=1e-6)
    crop_size: Int = Field(64, ge=1)
    tissue: Str | None = None
    prompt_style: Literal["paper", "structured"] = "paper"
    classes: list_of(Str) | None = None
    augment: Bool = True
    repeat: Int = Field(1, ge=1)
    class_balance: Fraction = 0.0

    @field_validator("classes")
    @classmethod
    def _nucleus_classes(cls, classes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if not classes:
            return None
        if "background" in classes:
            raise ConfigError("data.classes: list the nucleus classes only; 'background' is always class 0")
        if len(set(classes)) != len(classes):
            raise ConfigError(f"data.classes: repeated class name in {list(classes)}")
        return classes

    def resolved_path(self) -> Path:
        """``path`` as an absolute path, taken relative to the current working directory."""
        if not self.path:
            raise ConfigError(
                "data.path: no training data given; set it in the config or override it "
                "(cosynth train ... with data.path)"
            )
        return Path(self.path).expanduser().resolve()


class TrainConfig(ConfigModel):
    """Optimiser, EMA, logging and checkpoint cadence, seed and precision of a training run.

    ``lr_schedule`` ``linear`` or ``cosine`` keeps ``lr`` until the last ``lr_decay_steps`` steps
    of ``steps`` (0: all of them) and decays it to zero over those: the cool-down of a
    warmup-stable-decay schedule, which lets a long constant-rate run be finished (or fine-tuned
    with ``--init-from``) at a low rate. The rate is a function of the step alone, so a resumed run
    follows the same curve.
    """

    _path: ClassVar[str] = "train"

    steps: Int = Field(1000, ge=1)
    batch_size: Int = Field(4, ge=1)
    lr: Float = Field(2e-4, ge=0.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    lr_decay_steps: Int = Field(0, ge=0)
    weight_decay: Float = Field(0.0, ge=0.0)
    ema_decay: Fraction = 0.999
    grad_clip: Float = Field(1.0, ge=0.0)
    checkpoint_every: Int = Field(500, ge=1)
    sample_every: Int = Field(500, ge=1)
    log_every: Int = Field(10, ge=1)
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    num_workers: Int = Field(0, ge=0)

    @model_validator(mode="after")
    def _decay_fits(self) -> TrainConfig:
        if self.lr_decay_steps and self.lr_schedule == "constant":
            raise ConfigError(
                f"train.lr_decay_steps: {self.lr_decay_steps} has no effect with lr_schedule "
                f"'constant'; set train.lr_schedule to 'linear' or 'cosine', or lr_decay_steps to 0"
            )
        if self.lr_decay_steps > self.steps:
            raise ConfigError(
                f"train.lr_decay_steps: {self.lr_decay_steps} is more than train.steps "
                f"({self.steps}); the decay must fit in the run"
            )
        return self

    def learning_rate(self, step_index: int) -> float:
        """The rate of the step that starts at ``step_index`` (0-based) under ``lr_schedule``."""
        span = self.lr_decay_steps or self.steps
        t = (step_index - (self.steps - span)) / span
        if self.lr_schedule == "constant" or t <= 0:
            return self.lr
        t = min(t, 1.0)
        factor = 1.0 - t if self.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))
        return self.lr * factor


class CosynthConfig(ConfigModel):
    """A whole run: ``model``, ``text``, ``diffusion``, ``data`` and ``train`` sections.

    Missing sections or keys take their defaults; unknown ones and wrong types raise
    :class:`~napari_cosynth.errors.ConfigError` naming the key path.
    """

    _noun: ClassVar[str] = "section"

    model: ModelConfig = Field(default_factory=ModelConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _crop_fits_the_unet(self) -> CosynthConfig:
        m = self.model.size_multiple
        if self.data.crop_size % m:
            raise ConfigError(
                f"data.crop_size: {self.data.crop_size} is not a multiple of {m}, which the UNet "
                f"needs with {len(self.model.channel_mult)} levels (model.channel_mult); try "
                f"{max(m, round(self.data.crop_size / m) * m)}"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> CosynthConfig:
        """Read a YAML config file; errors name the file and the key."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config file ({e})") from None
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def to_yaml(self, path: str | Path) -> None:
        """Write the config as YAML, atomically."""
        import yaml

        from ..atomic import write_text

        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_overrides(self, overrides: dict[str, Any]) -> CosynthConfig:
        """A copy with dotted keys replaced, e.g. ``{"data.path": "...", "train.steps": 100}``.

        Every key is checked as in a file, so ``{"train.stpes": 1}`` is refused with a suggestion.
        """
        d = self.to_dict()
        for dotted, value in overrides.items():
            parts = str(dotted).split(".")
            node = d
            for i, part in enumerate(parts):
                if not isinstance(node, dict) or part not in node:
                    if len(parts) == 1:
                        raise ConfigError(
                            f"{dotted}: an override names a key inside a section, e.g. train.steps"
                        )
                    raise ConfigError(unknown_key(CosynthConfig, parts[: i + 1], noun="key"))
                if i == len(parts) - 1:
                    node[part] = value
                else:
                    node = node[part]
        return CosynthConfig.from_dict(d)
