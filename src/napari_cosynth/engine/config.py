"""The training/model configuration: typed sections read from YAML, checked before any work starts.

A run is described by one :class:`CosynthConfig` with five sections (``model``, ``text``,
``diffusion``, ``data``, ``train``). Each section is a frozen dataclass whose fields are checked on
construction, whether it comes from a YAML file, a dict (a checkpoint's ``config.json``) or code, so a
typo or a wrong type is refused up front with the key path named ("train.stpes: unknown key; did you
mean train.steps?") instead of failing an hour into training.

Hand-written rather than pydantic/omegaconf: the project has neither as a dependency, and the checks
needed (types, choices, ranges, "did you mean") fit in this module.

Paths: ``data.path`` is taken relative to the current working directory (where ``cosynth train`` is
run), not to the YAML file; :meth:`CosynthConfig.with_overrides` replaces any key, e.g.
``{"data.path": "/elsewhere/train"}``, with the same checks.

No torch here: the CLI and the widget can read and check a config without importing it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError

__all__ = [
    "CosynthConfig",
    "DataConfig",
    "DiffusionConfig",
    "LossWeights",
    "ModelConfig",
    "TextConfig",
    "TrainConfig",
]

# YAML 1.1 (PyYAML) reads "1e-4" as a string; a float field accepts such a string when it is a number.
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

# Formats whose readers give instance masks; the joint model needs masks (EndoNuke has points only).
TRAINABLE_FORMATS = ("consep", "pannuke", "lizard", "folder")


def _choices(*values: str) -> dict:
    return {"choices": values}


class _Section:
    """Shared checks of a config section: field types and ranges, then the section's own rules."""

    _path: ClassVar[str] = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            key = f"{self._path}.{f.name}" if self._path else f.name
            value = _coerce(key, getattr(self, f.name), hints[f.name])
            _check_range(key, value, f.metadata)
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Rules that involve more than one field (overridden by sections that have some)."""

    @classmethod
    def from_dict(cls, d: Any, path: str | None = None):
        """Build the section from a mapping, refusing unknown keys with a suggestion."""
        path = cls._path if path is None else path
        if isinstance(d, cls):
            return d
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError(
                f"{path}: expected a mapping of keys to values, got {type(d).__name__} {d!r}"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                raise ConfigError(_unknown_key(path, str(key), names))
        return cls(**d)

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value):
    """Dataclasses to dicts and tuples to lists, for JSON and YAML."""
    if isinstance(value, _Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _unknown_key(section: str, key: str, names: list[str]) -> str:
    where = f"{section}.{key}" if section else key
    # A key put in the wrong section is a common slip: an exact name elsewhere beats a near miss here.
    other = [
        f"{s}.{key}"
        for s, c in _SECTIONS.items()
        if s != section and key in [f.name for f in dataclasses.fields(c)]
    ]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if other:
        hint = f"did you mean {other[0]}?"
    elif close:
        hint = f"did you mean {section + '.' if section else ''}{close[0]}?"
    else:
        hint = f"known keys: {', '.join(names)}"
    return f"{where}: unknown key; {hint}"


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(key: str, value, tp):
    """Return ``value`` as type ``tp`` (lists become tuples), or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0])
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
            raise ConfigError(f"{key}: expected a list of {plural.get(item_tp, item_tp)}, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, _Section):
        return tp.from_dict(value, key)
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            # NaN passes every range check (all comparisons are false) and inf is never meant.
            if not math.isfinite(value):
                raise ConfigError(f"{key}: must be a finite number, got {value}")
    elif tp is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(
            f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )
    return value


def _check_range(key: str, value, meta) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, meta['choices']))}")
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if not isinstance(v, (int, float)):
            continue
        if "min" in meta and v < meta["min"]:
            raise ConfigError(f"{key}: must be >= {meta['min']}, got {v}")
        if "max" in meta and v > meta["max"]:
            raise ConfigError(f"{key}: must be <= {meta['max']}, got {v}")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """Widths and levels of the UNet, the input embeddings and the point-map encoder.

    ``channel_mult`` gives one UNet level each (level 0 at full resolution, each next one at half the
    size); ``attention_levels`` lists the levels whose blocks have self- and cross-attention (the
    middle block at the lowest resolution always has them). ``attention_head_dim`` is the size of one
    attention head (diffusers' argument of that name is a head count; the model converts).
    """

    _path: ClassVar[str] = "model"

    base_channels: int = field(default=32, metadata={"min": 1})
    channel_mult: tuple[int, ...] = field(default=(1, 2, 4), metadata={"min": 1})
    layers_per_block: int = field(default=1, metadata={"min": 1})
    attention_levels: tuple[int, ...] = field(default=(2,), metadata={"min": 0})
    attention_head_dim: int = field(default=32, metadata={"min": 1})
    label_embed_dim: int = field(default=8, metadata={"min": 1})
    point_embed_dim: int = field(default=8, metadata={"min": 1})
    point_channels: int = field(default=16, metadata={"min": 1})
    point_blocks: int = field(default=2, metadata={"min": 0})
    norm_num_groups: int = field(default=8, metadata={"min": 1})

    def _check(self):
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

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each UNet level."""
        return tuple(self.base_channels * m for m in self.channel_mult)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (the UNet halves the size at each level)."""
        return 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class TextConfig(_Section):
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

    kind: str = field(default="small", metadata=_choices("small", "open_clip"))
    context_length: int = field(default=77, metadata={"min": 2})
    width: int = field(default=64, metadata={"min": 1})
    layers: int = field(default=2, metadata={"min": 1})
    heads: int = field(default=4, metadata={"min": 1})
    output_dim: int = field(default=64, metadata={"min": 1})
    open_clip_model: str | None = None
    pretrained: str | None = None
    frozen: bool = True

    def _check(self):
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
        else:
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


@dataclass(frozen=True)
class LossWeights(_Section):
    """Weights of the three losses in the total (CoSyn's code: 9 image, 1 distance, 3 labels)."""

    _path: ClassVar[str] = "diffusion.loss_weights"

    image: float = field(default=9.0, metadata={"min": 0.0})
    distance: float = field(default=1.0, metadata={"min": 0.0})
    labels: float = field(default=3.0, metadata={"min": 0.0})


@dataclass(frozen=True)
class DiffusionConfig(_Section):
    """Noise schedule, what the Gaussian heads predict, loss weights, P2 weighting and condition dropout.

    ``prediction``: ``"epsilon"`` (CoSyn's) or ``"v"`` (Salimans & Ho 2022), which stays informative
    at the noisiest timesteps where an epsilon head says almost nothing about the clean image.
    ``label_ce_weight``: weight of an auxiliary cross-entropy on the predicted clean labels (D3PM's
    hybrid loss, Austin et al. 2021); the variational label loss alone gives the label head almost no
    gradient at high noise, where the nuclei must be placed from the point map. ``p2_gamma = 0``
    turns P2 weighting off.
    """

    _path: ClassVar[str] = "diffusion"

    timesteps: int = field(default=1000, metadata={"min": 2})
    schedule: str = field(default="cosine", metadata=_choices("cosine", "linear"))
    prediction: str = field(default="epsilon", metadata=_choices("epsilon", "v"))
    label_ce_weight: float = field(default=0.0, metadata={"min": 0.0})
    loss_weights: LossWeights = field(default_factory=LossWeights)
    p2_gamma: float = field(default=0.0, metadata={"min": 0.0})
    p2_k: float = field(default=1.0, metadata={"min": 0.0})
    drop_text: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    drop_points: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True)
class DataConfig(_Section):
    """Training data: which dataset, at which magnification, in crops of which size, with which prompts.

    ``path`` is relative to the current working directory (see :meth:`resolved_path`). ``classes``
    lists the nucleus class names (without background) the model learns, or is empty/None to take the
    format's vocabulary. ``tissue`` None takes each sample's own tissue. ``repeat`` makes an epoch visit
    every sample that many times (each with a fresh random crop), for datasets with few large images.
    ``class_balance`` is the fraction of crops placed around a nucleus of a uniformly drawn class, so
    that rare classes are seen (0 = uniform crops only; see :mod:`napari_cosynth.engine.training.data`).
    """

    _path: ClassVar[str] = "data"

    path: str | None = None
    format: str = field(default="consep", metadata=_choices(*TRAINABLE_FORMATS))
    magnification: float = field(default=20.0, metadata={"min": 1e-6})
    crop_size: int = field(default=64, metadata={"min": 1})
    tissue: str | None = None
    prompt_style: str = field(default="paper", metadata=_choices("paper", "structured"))
    classes: tuple[str, ...] | None = None
    augment: bool = True
    repeat: int = field(default=1, metadata={"min": 1})
    class_balance: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})

    def _check(self):
        if self.classes is not None:
            if "background" in self.classes:
                raise ConfigError(
                    "data.classes: list the nucleus classes only; 'background' is always class 0"
                )
            if len(set(self.classes)) != len(self.classes):
                raise ConfigError(f"data.classes: repeated class name in {list(self.classes)}")
            if len(self.classes) == 0:
                object.__setattr__(self, "classes", None)

    def resolved_path(self) -> Path:
        """``path`` as an absolute path, taken relative to the current working directory."""
        if not self.path:
            raise ConfigError(
                "data.path: no training data given; set it in the config or override it "
                "(cosynth train ... with data.path)"
            )
        return Path(self.path).expanduser().resolve()


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimiser, EMA, logging and checkpoint cadence, seed and precision of a training run."""

    _path: ClassVar[str] = "train"

    steps: int = field(default=1000, metadata={"min": 1})
    batch_size: int = field(default=4, metadata={"min": 1})
    lr: float = field(default=2e-4, metadata={"min": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    ema_decay: float = field(default=0.999, metadata={"min": 0.0, "max": 1.0})
    grad_clip: float = field(default=1.0, metadata={"min": 0.0})
    checkpoint_every: int = field(default=500, metadata={"min": 1})
    sample_every: int = field(default=500, metadata={"min": 1})
    log_every: int = field(default=10, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0, "max": 2**63 - 1})  # limits.MAX_SEED
    mixed_precision: str = field(default="no", metadata=_choices("no", "bf16", "fp16"))
    num_workers: int = field(default=0, metadata={"min": 0})


_SECTIONS: dict[str, type[_Section]] = {
    "model": ModelConfig,
    "text": TextConfig,
    "diffusion": DiffusionConfig,
    "data": DataConfig,
    "train": TrainConfig,
}


@dataclass(frozen=True)
class CosynthConfig:
    """A whole run: ``model``, ``text``, ``diffusion``, ``data`` and ``train`` sections.

    Missing sections or keys take their defaults; unknown ones and wrong types raise
    :class:`~napari_cosynth.errors.ConfigError` naming the key path.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextConfig = field(default_factory=TextConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                object.__setattr__(self, name, cls.from_dict(value, name))
        m = self.model.size_multiple
        if self.data.crop_size % m:
            raise ConfigError(
                f"data.crop_size: {self.data.crop_size} is not a multiple of {m}, which the UNet "
                f"needs with {len(self.model.channel_mult)} levels (model.channel_mult); try "
                f"{max(m, round(self.data.crop_size / m) * m)}"
            )

    @classmethod
    def from_dict(cls, d: Any) -> CosynthConfig:
        """Build from a mapping of section name -> mapping of keys (as ``to_dict`` writes)."""
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError(f"a config is a mapping of sections, got {type(d).__name__}")
        names = list(_SECTIONS)
        for key in d:
            if key not in _SECTIONS:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}?" if close else f"the sections are {', '.join(names)}"
                raise ConfigError(f"{key}: unknown section; {hint}")
        return cls(**{name: c.from_dict(d.get(name), name) for name, c in _SECTIONS.items()})

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

    def to_dict(self) -> dict:
        """Plain nested dict (lists, numbers, strings, None): JSON and YAML safe."""
        return {name: getattr(self, name).to_dict() for name in _SECTIONS}

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
            for i, part in enumerate(parts[:-1]):
                if not isinstance(node, dict) or part not in node:
                    prefix = ".".join(parts[:i])
                    names = list(node) if isinstance(node, dict) else []
                    raise ConfigError(_unknown_key(prefix, part, names))
                node = node[part]
            if not isinstance(node, dict) or parts[-1] not in node:
                prefix = ".".join(parts[:-1])
                if not prefix:
                    raise ConfigError(
                        f"{dotted}: an override names a key inside a section, e.g. train.steps"
                    )
                raise ConfigError(_unknown_key(prefix, parts[-1], list(node)))
            node[parts[-1]] = value
        return CosynthConfig.from_dict(d)
