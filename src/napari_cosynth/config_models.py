"""What the joint model's and the segmenter's configs share: a strict pydantic base and its error lines.

Both configs are pydantic models (:class:`ConfigModel`): the field declarations are the schema, and
pydantic checks types, choices and ranges wherever a config comes from (a YAML file, a checkpoint's
``config.json``, keyword arguments in code). This module adds what pydantic does not give out of the box:

- strict scalar types (:data:`Int`, :data:`Float`, :data:`Bool`, :data:`Str`) so that ``"100"`` is not
  silently read as 100 or ``1`` as ``True``; :data:`Float` still takes the strings PyYAML (YAML 1.1)
  leaves unconverted, such as ``1e-4``, and refuses NaN and infinity, which pass every range check;
- lists (:func:`list_of`) kept as tuples, so a config stays hashable and immutable;
- one-line :class:`~napari_cosynth.errors.ConfigError` messages instead of pydantic's multi-line
  report: the key path, what was expected, what was given, and for a misspelled key the key that was
  meant ("train.stpes: unknown key; did you mean train.steps?").

Rules that involve several fields live in each model's ``model_validator`` and raise ConfigError with
their own line. No torch here: the CLI and the widget read configs without importing it.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError, model_validator

from .errors import ConfigError, CosynthError

__all__ = ["Bool", "ConfigModel", "Float", "Int", "Str", "config_error", "list_of", "unknown_key"]

# YAML 1.1 (PyYAML) reads "1e-4" as a string; a float field accepts such a string when it is a number.
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(value: Any) -> Any:
    """Number strings as floats; floats checked finite before any range check sees them."""
    if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
        value = float(value)
    # NaN passes every range check (all comparisons are false) and inf is never meant.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Float = Annotated[float, BeforeValidator(_number), Strict()]

_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


def list_of(item: Any) -> Any:
    """A list of ``item`` (a type above, possibly with constraints), held as a tuple."""
    base = typing.get_args(item)[0] if typing.get_origin(item) is Annotated else item
    noun = _PLURALS.get(base, f"{getattr(base, '__name__', base)} values")

    def as_tuple(value: Any) -> tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise ValueError(f"expected a list of {noun}, got {value!r}")

    return Annotated[tuple[item, ...], BeforeValidator(as_tuple)]


class ConfigModel(BaseModel):
    """A frozen, strict config section whose every error is one ConfigError line naming the key.

    Class attributes: ``_path`` is the section's key path inside the whole config ("train",
    "diffusion.loss_weights"), so a section built on its own still names its keys in full; ``_where``
    starts every error line (the segmenter's "segmenter config", or the file a config came from);
    ``_noun`` is what its keys are called in messages ("key", "section", "setting").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    _path: ClassVar[str] = ""
    _where: ClassVar[str] = ""
    _noun: ClassVar[str] = "key"

    def __init__(self, **values: Any) -> None:
        with _config_errors(type(self), type(self)._where):
            super().__init__(**values)

    # Pydantic validates a section inside a config through __init__ when a class overrides it; this
    # marker (pydantic's own, as on RootModel.__init__) keeps that inner validation in pydantic, so
    # the error is reported once, by the outermost model, with the whole key path and the other
    # sections in view ("train.crop_size: unknown key; did you mean data.crop_size?").
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _absent_sections_take_defaults(cls, data: Any) -> Any:
        # An empty YAML section ("train:" with nothing under it) reads as None.
        if isinstance(data, dict):
            nested = _sub_models(cls)
            return {k: v for k, v in data.items() if not (v is None and k in nested)}
        return data

    @classmethod
    def from_dict(cls, d: Any, where: str | None = None):
        """Build from a mapping (None means all defaults); errors start with ``where`` when given."""
        if isinstance(d, cls):
            return d
        with _config_errors(cls, cls._where if where is None else where):
            return cls.model_validate({} if d is None else d)

    def to_dict(self) -> dict:
        """Plain nested dict (lists, numbers, strings, None): JSON and YAML safe."""
        return self.model_dump(mode="json")

    def with_(self, **changes: Any):
        """A copy with some fields replaced, checked like a new config."""
        return type(self).from_dict({**dict(self), **changes})


def _sub_models(model: type[BaseModel]) -> dict[str, type[ConfigModel]]:
    """The fields of ``model`` that are config sections themselves."""
    return {
        name: f.annotation
        for name, f in model.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, ConfigModel)
    }


def _model_at(root: type[ConfigModel], loc: Sequence) -> type[ConfigModel] | None:
    """The section that key path ``loc`` (inside ``root``) names, or None if it names no section."""
    model = root
    for part in loc:
        model = _sub_models(model).get(part) if isinstance(part, str) else None
        if model is None:
            return None
    return model


def _key_path(root: type[ConfigModel], loc: Sequence) -> str:
    key = root._path
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f"{'.' if key else ''}{part}"
    return key


def unknown_key(root: type[ConfigModel], loc: Sequence, noun: str | None = None) -> str:
    """The line for the unknown key at ``loc`` inside ``root``, suggesting the key that was meant.

    A key put in the wrong section is a common slip, so an exact name in another of ``root``'s
    sections beats a near miss in this one.
    """
    parent = _model_at(root, loc[:-1])
    noun = noun or (parent._noun if parent else "key")
    section, key = _key_path(root, loc[:-1]), str(loc[-1])
    names = list(parent.model_fields) if parent else []
    elsewhere = [
        f"{_key_path(root, [name])}.{key}"
        for name, sub in _sub_models(root).items()
        if _key_path(root, [name]) != section and key in sub.model_fields
    ]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if elsewhere:
        hint = f"did you mean {elsewhere[0]}?"
    elif close:
        hint = f"did you mean {section + '.' if section else ''}{close[0]}?"
    elif names:
        hint = f"known {noun}s: {', '.join(names)}"
    else:
        hint = f"{section} is a value, not a section"
    return f"{section + '.' if section else ''}{key}: unknown {noun}; {hint}"


_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
             "string_type": "a string"}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _problem(root: type[ConfigModel], error: dict) -> str:
    """What is wrong with one value, in the words of the old hand-written checks."""
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {value!r} ({type(value).__name__})"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {bound}, got {value}"
    if kind in ("model_type", "dict_type"):
        model = _model_at(root, error["loc"])
        noun = model._noun if model else "key"
        return f"expected a mapping of {noun}s to values, got {type(value).__name__} {value!r}"
    if kind == "literal_error":
        parent = _model_at(root, error["loc"][:-1])
        field = parent.model_fields.get(error["loc"][-1]) if parent else None
        choices = typing.get_args(field.annotation) if field else ()
        if choices:
            return f"{value!r} is not one of {', '.join(map(str, choices))}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "value_error":
        return str(ctx["error"])
    return error["msg"]


def config_error(err: ValidationError, root: type[ConfigModel], where: str = "") -> ConfigError:
    """One ConfigError line for pydantic's report on ``root``: the first problem, unknown keys first."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] in ("extra_forbidden", "invalid_key")), errors[0])
    if first["type"] in ("extra_forbidden", "invalid_key"):
        line = unknown_key(root, first["loc"])
    else:
        key = _key_path(root, first["loc"])
        line = f"{key + ': ' if key else ''}{_problem(root, first)}"
    return ConfigError(f"{where}: {line}" if where else line)


@contextmanager
def _config_errors(root: type[ConfigModel], where: str) -> Iterator[None]:
    """Turn pydantic's report, and a rule's own error, into one ConfigError line starting with ``where``."""
    try:
        yield
    except ValidationError as err:
        raise config_error(err, root, where) from None
    except CosynthError as err:
        if not where:
            raise
        raise ConfigError(f"{where}: {err}") from None
