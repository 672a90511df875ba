"""Saving and loading trained models as a folder of ``model.safetensors`` + ``config.json``.

Loading never unpickles. A PyTorch ``.pt``/``.pth``/``.ckpt`` file is a pickle and unpickling runs
whatever code the file names, so such files are refused (by name and by their first bytes) and
``torch.load`` is never called here. ``config.json`` records everything needed to rebuild the network
and use it (the :class:`~.config.CosynthConfig`, the class vocabulary, tissues, magnification, patch
size, training-data summary, package version, model id, training step) and the SHA-256 of the weights
file, so a corrupt or swapped file is caught before the weights are used; a config that does not match
the weights (missing, extra or differently shaped tensors) is refused with what differs.

The folder is written through :mod:`napari_cosynth.atomic`: it appears whole under its name or not at
all. Weights may be stored as float16 (``weights_dtype``) to halve the size of a bundled model; they
are loaded back as float32.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ...atomic import atomic_path
from ...errors import CheckpointError, ConfigError
from ...jsonio import read_document
from ..config import CosynthConfig
from ..finite import check_finite_weights
from ..training.run_folder import with_previous_checkpoint
from .model import CoSynNet

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_model", "resolve_model", "save_model"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "napari-cosynth-model"
FORMAT_VERSION = 1
_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".tar"}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_BUNDLED = Path(__file__).resolve().parents[2] / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(
    path: str | os.PathLike,
    model: CoSynNet,
    config: CosynthConfig,
    extra: dict[str, Any] | None = None,
    *,
    weights_dtype: str = "float32",
) -> Path:
    """Write ``model`` as a checkpoint folder at ``path`` (atomically; an existing one is replaced).

    Parameters
    ----------
    path : path-like
        The folder to create.
    model : CoSynNet
        The network (for a trained model, usually its EMA weights).
    config : CosynthConfig
        The config it was built from; must match ``model``.
    extra : dict, optional
        Recorded in ``config.json``: ``classes`` (vocabulary names, background first; alias
        ``vocabulary``; taken from ``config.data.classes`` when absent), ``tissues``,
        ``training_data`` (a summary), ``model_id`` (default: the folder name), ``step``, and any
        other JSON-serialisable key (``magnification`` and ``patch_size`` replace the config's).
    weights_dtype : {"float32", "float16", "bfloat16"}
        Storage type of floating-point tensors.

    Returns
    -------
    Path
        The folder written.
    """
    from safetensors.torch import save_file

    from ... import __version__

    path = Path(path)
    if weights_dtype not in _DTYPES:
        raise CheckpointError(f"weights_dtype must be one of {', '.join(_DTYPES)}, got {weights_dtype!r}")
    if model.config != config.model or model.text_config != config.text:
        raise CheckpointError("the config passed to save_model is not the one the model was built from")
    extra = dict(extra or {})
    classes = extra.pop("classes", None)
    alias = extra.pop("vocabulary", None)  # the same thing under the name the trainer uses
    classes = alias if classes is None else classes
    if classes is None and config.data.classes is not None:
        classes = ["background", *config.data.classes]
    if classes is None:
        raise CheckpointError(
            "save_model needs the class vocabulary: pass extra={'classes': vocabulary.names} "
            "(or set data.classes in the config)"
        )
    classes = [str(c) for c in classes]
    if len(classes) != model.n_classes or classes[0] != "background":
        raise CheckpointError(
            f"classes {classes} do not fit the model: it has {model.n_classes} classes and class 0 "
            "must be 'background'"
        )
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": str(extra.pop("model_id", path.name)),
        "package_version": __version__,
        "step": extra.pop("step", None),
        "classes": classes,
        "tissues": list(extra.pop("tissues", [])),
        "magnification": config.data.magnification,
        "patch_size": config.data.crop_size,
        "training_data": extra.pop("training_data", None),
        "n_classes": model.n_classes,
        "text_architecture": model.text.architecture,
        "weights_dtype": weights_dtype,
        "config": config.to_dict(),
        **extra,
    }
    check_finite_weights(model.state_dict(), str(path), "not written")
    dtype = _DTYPES[weights_dtype]
    # safetensors refuses tensors that share memory; clone() gives each its own contiguous storage.
    tensors = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).clone()
        for k, v in model.state_dict().items()
    }
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "producer": FORMAT})
        meta["weights_sha256"] = _sha256(tmp / WEIGHTS_FILE)
        try:
            text = json.dumps(meta, indent=2)
        except TypeError as e:
            raise CheckpointError(f"extra must be JSON-serialisable ({e})") from None
        (tmp / CONFIG_FILE).write_text(text, encoding="utf-8")
    return path


def _looks_like_pickle(path: Path) -> bool:
    """torch.save writes a zip archive (PK\\x03\\x04) or, in the legacy format, a pickle (\\x80)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _refuse_pickle(path: Path) -> None:
    raise CheckpointError(
        f"{path} is a PyTorch pickle file; napari-cosynth never unpickles (loading a pickle can run "
        "arbitrary code). A model is a folder with model.safetensors and config.json: convert the file "
        "in a trusted environment (torch.load it, build the CoSynNet and call "
        "napari_cosynth.engine.networks.checkpoint.save_model), or use a checkpoint folder written by cosynth train"
    )


def _checkpoint_folder(path: Path) -> Path:
    if path.is_file():
        if path.suffix.lower() in _PICKLE_SUFFIXES or _looks_like_pickle(path):
            _refuse_pickle(path)
        if path.name in (WEIGHTS_FILE, CONFIG_FILE):
            return path.parent
        raise CheckpointError(
            f"{path} is not a model: give the checkpoint folder (with {WEIGHTS_FILE} and {CONFIG_FILE})"
        )
    if not path.is_dir():
        raise CheckpointError(f"no model at {path}: the path does not exist")
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
        if pickles and not (path / WEIGHTS_FILE).is_file():
            _refuse_pickle(path / pickles[0])
        missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if not (path / n).is_file()]
        raise CheckpointError(
            f"{path} is not a model folder: {' and '.join(missing)} missing (a model is a folder with "
            f"{WEIGHTS_FILE} and {CONFIG_FILE}, as cosynth train writes)"
        )
    return path


def _read_meta(folder: Path) -> dict:
    file = folder / CONFIG_FILE
    meta = read_document(file, format=FORMAT, what="model config", version_key="format_version",
                         version=FORMAT_VERSION, newer_only=True)
    for key in ("config", "n_classes", "classes"):
        if key not in meta:
            raise CheckpointError(f"{file}: '{key}' missing; the checkpoint is incomplete")
    return meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[CoSynNet, dict]:
    """Load a checkpoint folder; never unpickles.

    Parameters
    ----------
    path : path-like
        The checkpoint folder (or its ``model.safetensors`` / ``config.json``).
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    (model, meta) : tuple
        The network in eval mode, and ``config.json`` as a dict (with ``"config"`` the
        :class:`~.config.CosynthConfig` dict, ``"classes"``, ``"tissues"``, ...).

    Raises
    ------
    CheckpointError
        For a pickle file, a missing, truncated or corrupt file, or a config that does not match the
        weights; the message says what to do.
    """
    folder = _checkpoint_folder(Path(path))
    try:
        return _load_folder(folder, device)
    except CheckpointError as err:
        raise with_previous_checkpoint(err, folder) from None


def _load_folder(folder: Path, device) -> tuple[CoSynNet, dict]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    weights = folder / WEIGHTS_FILE
    if _looks_like_pickle(weights):
        _refuse_pickle(weights)
    meta = _read_meta(folder)
    recorded = meta.get("weights_sha256")
    if recorded is not None and _sha256(weights) != recorded:
        raise CheckpointError(
            f"{weights} does not match the checksum recorded in {CONFIG_FILE}: the file is corrupt, "
            "truncated or was replaced; copy the checkpoint again"
        )
    try:
        config = CosynthConfig.from_dict(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: invalid model config: {e}") from None
    architecture = meta.get("text_architecture")
    if config.text.kind != "small" and not architecture:
        # Without the record, the tower would be built from text.open_clip_model / text.pretrained:
        # a weights file named by the model (unpickled by open_clip) or a download.
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: names an open_clip text tower ({config.text.open_clip_model}) "
            "but records no text_architecture; a saved model must hold its whole text tower, and "
            "napari-cosynth never loads text.pretrained or downloads weights when it loads a model. "
            "Save the model again with this version of napari-cosynth"
        )
    try:
        n_classes = int(meta["n_classes"])
    except (TypeError, ValueError):
        raise CheckpointError(f"{folder / CONFIG_FILE}: n_classes is not a number") from None
    unreadable = (f"{weights} is not a readable safetensors file ({{}}); it is corrupt or truncated: "
                  "copy the checkpoint again")
    try:
        # The tensors' shapes from the file's header, so a config that does not fit the weights
        # (a hand-edited or crafted one asking for a network of many GB) is refused before the
        # network is allocated: the config is first built on the meta device, which holds no data.
        with safe_open(str(weights), framework="pt") as file:
            # a safetensors handle, not a dict: keys() is its only way to list the tensors
            found = {k: tuple(file.get_slice(k).get_shape()) for k in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(unreadable.format(e)) from None
    try:
        with torch.device("meta"):
            probe = CoSynNet(config.model, config.text, n_classes, text_architecture=architecture)
    except ConfigError as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: cannot build the model: {e}") from None
    _check_matches(probe, found, folder)
    del probe
    model = CoSynNet(config.model, config.text, n_classes, text_architecture=architecture)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(unreadable.format(e)) from None
    _check_matches(model, {k: tuple(v.shape) for k, v in state.items()}, folder)
    check_finite_weights(state, str(weights), "not loaded")
    expected = model.state_dict()
    model.load_state_dict(
        {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in state.items()},
        strict=True,
    )
    if len(meta["classes"]) != model.n_classes:
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: lists {len(meta['classes'])} classes but the model has {model.n_classes}"
        )
    return model.to(device).eval(), meta


def _check_matches(model: CoSynNet, found: dict[str, tuple], folder: Path) -> None:
    """Refuse weights (name -> shape) that are not exactly the tensors ``model`` has."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    shapes = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    if not (missing or unexpected or shapes):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) the config needs are not in the weights (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) in the weights are unknown to the config (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        problems.append(
            f"{len(shapes)} tensor(s) differ in shape (e.g. {k}: {found[k]} in the weights, "
            f"{expected[k]} per the config)"
        )
    raise CheckpointError(
        f"{folder}: {CONFIG_FILE} does not match {WEIGHTS_FILE}: " + "; ".join(problems)
        + ". Use the config.json saved with these weights."
    )


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint folder for ``"default"`` (or another bundled model's name) or a path.

    Raises
    ------
    CheckpointError
        If the bundled model is not installed or the path does not exist.
    """
    name = str(name_or_path)
    bundled = _BUNDLED / name
    if name == "default" or (os.sep not in name and "/" not in name and bundled.is_dir()):
        if not (bundled / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"the bundled model {name!r} is not installed (expected {bundled}); train one with "
                "`cosynth train --config configs/default-cpu.yaml` and pass its checkpoint folder as --model"
            )
        return bundled
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise CheckpointError(f"no model at {path}: give 'default' or a checkpoint folder")
    return path
