"""Training state on disk as safetensors + JSON, so resuming a run never unpickles anything.

``torch.save`` would be the one-line way to store an optimizer's state dict, RNG states and the EMA
weights, but loading it runs pickle, and a checkpoint folder is something users download and share.
So every nested state (dicts with int keys, tuples, python/numpy scalars, tensors, numpy arrays) is
flattened here by hand: the tensors go into one ``.safetensors`` file under generated keys, and the
structure around them into a JSON document whose leaves point at those keys. Both formats are
data-only; a corrupt or foreign file is refused with :class:`~napari_cosynth.errors.CheckpointError`.

The same two files hold the online (not averaged) model weights, the optimizer, the EMA, the gradient
scaler, the RNG states of torch / numpy / python and the step, i.e. everything ``train`` needs to
continue exactly where it stopped.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ...atomic import atomic_path, write_text
from ...errors import CheckpointError
from ...jsonio import read_document
from .run_folder import with_previous_checkpoint

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
FORMAT = "napari-cosynth/training-state"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Flattening: nested python state <-> (JSON-able structure, {key: tensor})
# ----------------------------------------------------------------------------------------------


def flatten_state(obj: Any, prefix: str = "t") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state into a JSON-able structure and a flat dict of tensors.

    Dicts become ``{"__dict__": [[key, value], ...]}`` so that int keys (optimizer param ids)
    survive; tuples become ``{"__tuple__": [...]}``; a tensor becomes ``{"__tensor__": key}`` and a
    numpy array ``{"__ndarray__": key, "dtype": ...}``. Python ints, floats, bools, strings and None
    stay as they are (JSON keeps big ints and float reprs exactly).

    Returns
    -------
    structure, tensors
        ``unflatten_state(structure, tensors)`` rebuilds ``obj``.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(x):
        if isinstance(x, torch.Tensor):
            key = f"{prefix}{len(tensors)}"
            # safetensors refuses shared or strided storage; a contiguous CPU copy is always valid.
            tensors[key] = x.detach().to("cpu", copy=True).contiguous()
            return {"__tensor__": key}
        if isinstance(x, np.ndarray):
            key = f"{prefix}{len(tensors)}"
            dtype = str(x.dtype)
            # torch lacks most unsigned dtypes; int64 holds every uint32 (numpy's MT19937 key).
            arr = x.astype(np.int64) if x.dtype.kind == "u" else x
            tensors[key] = torch.from_numpy(np.ascontiguousarray(arr)).clone()
            return {"__ndarray__": key, "dtype": dtype}
        if isinstance(x, dict):
            return {"__dict__": [[walk_key(k), walk(v)] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v) for v in x]}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, (bool, int, float, str)) or x is None:
            return x
        if isinstance(x, np.generic):
            return walk(x.item())
        raise TypeError(f"cannot store a {type(x).__name__} in a training state")

    def walk_key(k):
        if isinstance(k, (bool, int, float, str)) or k is None:
            return k
        if isinstance(k, np.generic):
            return k.item()
        raise TypeError(f"cannot store a dict key of type {type(k).__name__} in a training state")

    return walk(obj), tensors


def unflatten_state(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""

    def walk(x):
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, dict):
            if "__tensor__" in x:
                return tensors[x["__tensor__"]]
            if "__ndarray__" in x:
                return tensors[x["__ndarray__"]].numpy().astype(x["dtype"])
            if "__tuple__" in x:
                return tuple(walk(v) for v in x["__tuple__"])
            if "__dict__" in x:
                return {k: walk(v) for k, v in x["__dict__"]}
            raise ValueError(f"unknown node {sorted(x)}")
        return x

    try:
        return walk(structure)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"the structure does not match the tensors ({exc})") from None


# ----------------------------------------------------------------------------------------------
# RNG states
# ----------------------------------------------------------------------------------------------


def rng_states() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (CPU and every visible CUDA device)."""
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned (CUDA states only where CUDA is in use)."""
    random.setstate(_as_python_random_state(states["python"]))
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"].to(torch.uint8))
    if "cuda" in states and torch.cuda.is_available():
        cuda = states["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])


def _as_python_random_state(state):
    # random.setstate wants (int, tuple[int, ...], float | None) exactly; JSON gave lists back.
    version, internal, gauss = state
    return int(version), tuple(int(v) for v in internal), gauss


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def save_training_state(folder: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` as ``training_state.safetensors`` + ``training_state.json`` into ``folder``.

    Each file is written atomically; ``train`` writes a whole checkpoint folder atomically around
    this, so a reader never sees one file without the other.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    structure, tensors = flatten_state(state)
    with atomic_path(folder / STATE_TENSORS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "state": structure}
    write_text(folder / STATE_JSON, json.dumps(doc))


def load_training_state(folder: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_training_state` wrote (tensors on the CPU).

    Raises
    ------
    CheckpointError
        If a file is missing, corrupt, or not a napari-cosynth training state.
    """
    folder = Path(folder)
    tpath, jpath = folder / STATE_TENSORS, folder / STATE_JSON
    for p in (tpath, jpath):
        if not p.is_file():
            raise CheckpointError(
                f"{p}: missing; this checkpoint holds no training state to resume from (it may be an "
                "exported model); start a new run or point to a training run's output folder"
            )
    try:
        return _load_state(folder, tpath, jpath)
    except CheckpointError as err:
        raise with_previous_checkpoint(err, folder) from None


def _load_state(folder: Path, tpath: Path, jpath: Path) -> dict[str, Any]:
    doc = read_document(jpath, format=FORMAT, what="training state", version_key="version",
                        version=FORMAT_VERSION)
    try:
        tensors = load_file(str(tpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{tpath}: cannot be read as safetensors ({exc}); the file is corrupt"
        ) from None
    if "state" not in doc:
        raise CheckpointError(f"{jpath}: holds no 'state'; the file is corrupt")
    try:
        return unflatten_state(doc["state"], tensors)
    except ValueError as exc:
        raise CheckpointError(
            f"{folder}: {exc}; the two training-state files do not belong together"
        ) from None
