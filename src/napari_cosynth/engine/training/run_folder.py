"""The run folder both trainers write: step-named checkpoints, ``last.json``, the loss log and resuming.

The joint model's trainer (:mod:`.train`) and the segmenter's (:mod:`napari_cosynth.segmenter.train`)
keep their runs the same way::

    checkpoints/step-0000100/    one complete checkpoint (the trainer's files + the training state)
    last.json                    {"step": 100, "checkpoint": "checkpoints/step-0000100"}
    loss.csv                     step, the trainer's columns, seconds per step
    config.yaml or run.json      the run's configuration (what a resume is checked against)

A checkpoint folder is written beside its final name and renamed into place
(:func:`napari_cosynth.atomic.atomic_path`), so it appears whole or not at all; the hidden temporaries
of a run killed while writing one never match the ``step-NNNNNNN`` pattern and are removed when the run
starts again. Resuming takes the newest complete checkpoint; when its saved state cannot be used, the
error names the checkpoint before it and how to continue from that one.

What differs between the trainers (which files make a checkpoint complete, the log's columns, what is
saved about the run and how a resumed configuration is checked) is theirs; this module holds the
folder rules they share. No torch here: the model loader and the segmenter's model module use it too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...atomic import atomic_path, write_text
from ...errors import CheckpointError, ConfigError

CHECKPOINTS = "checkpoints"
LAST = "last.json"
LOSS_LOG = "loss.csv"
_STEP_FOLDER = re.compile(r"^step-(\d{7,})$")


def checkpoint_name(step: int) -> str:
    """``step-0000100``: the name of step 100's checkpoint folder (and of its sample grid)."""
    return f"step-{step:07d}"


def step_of(folder: str | os.PathLike) -> int | None:
    """The step of a ``step-NNNNNNN`` folder, None for any other name."""
    match = _STEP_FOLDER.match(Path(folder).name)
    return int(match.group(1)) if match else None


def step_folders(out_dir: str | os.PathLike, complete: Callable[[Path], bool] = lambda _: True) -> list[Path]:
    """A run's ``checkpoints/step-NNNNNNN`` folders for which ``complete`` holds, oldest first."""
    folder = Path(out_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        step = step_of(entry)
        if step is not None and entry.is_dir() and complete(entry):
            found.append((step, entry))
    return [p for _, p in sorted(found)]


def complete_checkpoints(out_dir: str | os.PathLike, files: Sequence[str]) -> list[Path]:
    """A run's checkpoint folders that hold every one of ``files``, oldest first.

    Each trainer names the files of its own checkpoints; hidden temporaries never match the name.
    """
    return step_folders(out_dir, lambda folder: all((folder / n).is_file() for n in files))


@dataclass(frozen=True)
class RunFolder:
    """One trainer's run folder.

    Attributes
    ----------
    path : Path
        The run folder (``--out``).
    kind : str
        What the folder holds, as error messages name it ("training run", "segmenter run").
    checkpoint_files : tuple of str
        The files every complete checkpoint of this trainer holds.
    log_columns : tuple of str
        The header of ``loss.csv``: ``step``, the logged values, then the seconds per step.
    record : str
        The file that keeps the run's configuration (what a resumed run is checked against).
    """

    path: Path
    kind: str
    checkpoint_files: tuple[str, ...]
    log_columns: tuple[str, ...]
    record: str

    @property
    def record_path(self) -> Path:
        return self.path / self.record

    def write_record(self, text: str) -> None:
        """Save the run's configuration (``record``), replacing an earlier one whole."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.record_path, text)

    # ---- checkpoints

    def checkpoints(self) -> list[Path]:
        """The complete checkpoint folders, oldest first (partial writes are hidden temporaries)."""
        return complete_checkpoints(self.path, self.checkpoint_files)

    def latest(self) -> Path | None:
        """The newest complete checkpoint folder (None when the run has none)."""
        found = self.checkpoints()
        return found[-1] if found else None

    def checkpoint_path(self, step: int) -> Path:
        return self.path / CHECKPOINTS / checkpoint_name(step)

    def to_resume(self, resume: bool) -> Path | None:
        """The checkpoint a run continues from: the newest one when ``resume``, else None.

        Raises
        ------
        ConfigError
            The folder already holds checkpoints and ``resume`` is False (a new run would mix with it).
        """
        latest = self.latest()
        if latest is not None and not resume:
            raise ConfigError(
                f"{self.path} already holds a {self.kind} (checkpoints up to {latest.name}); "
                "pass --resume to continue it, or choose another --out"
            )
        return latest if resume else None

    def write_checkpoint(self, step: int, write: Callable[[Path], None]) -> Path:
        """Have ``write(folder)`` fill step ``step``'s checkpoint, renamed into place whole; note it in
        ``last.json``. A checkpoint that exists already is kept as it is (``write`` is not called)."""
        final = self.checkpoint_path(step)
        if final.exists():
            return final
        with atomic_path(final, overwrite=False) as tmp:
            write(tmp)
        write_text(self.path / LAST,
                   json.dumps({"step": step, "checkpoint": f"{CHECKPOINTS}/{final.name}"}) + "\n")
        return final

    # ---- the loss log

    def start(self, step: int) -> None:
        """Prepare the folder for a run starting at ``step`` (0, or the checkpoint it resumes from).

        Starts ``loss.csv`` afresh at step 0 (or when it is missing); otherwise drops the rows a killed
        run logged after that checkpoint, since those steps are redone. Removes the hidden temporaries
        of checkpoints a killed run was writing: they were never complete.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        log = self.path / LOSS_LOG
        if step == 0 or not log.exists():
            write_text(log, ",".join(self.log_columns) + "\n")
        else:
            with open(log, newline="") as fh:
                rows = list(csv.reader(fh))
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
            write_text(log, "".join(",".join(r) + "\n" for r in kept))
        checkpoints = self.path / CHECKPOINTS
        for stale in checkpoints.glob(".step-*.tmp") if checkpoints.is_dir() else ():
            shutil.rmtree(stale, ignore_errors=True)

    def log(self, step: int, values: Sequence[float], seconds: float) -> None:
        """Append one row to ``loss.csv``: the step, ``values`` (6 significant digits), the seconds."""
        row = [str(step), *(f"{v:.6g}" for v in values), f"{seconds:.4f}"]
        with open(self.path / LOSS_LOG, "a") as fh:
            fh.write(",".join(row) + "\n")
            fh.flush()


# ------------------------------------------------------------------------------------------ resuming


@contextlib.contextmanager
def resuming_from(folder: str | os.PathLike):
    """Turn a failure to use a checkpoint's saved state into one :class:`CheckpointError` line.

    The files of a checkpoint can be read yet not fit the run (a hand-edited training_state.json: a
    step that is not a number, an optimizer state of other shapes, a broken RNG state); torch, numpy
    and python then raise their own errors from deep inside. Wrap the code that restores a run.
    """
    from safetensors import SafetensorError

    from ...errors import CosynthError

    try:
        yield
    except CosynthError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError,
            SafetensorError, OSError) as err:
        raise with_previous_checkpoint(CheckpointError(
            f"{folder}: the saved training state cannot be restored ({type(err).__name__}: {err}); "
            "the checkpoint is corrupt or was edited by hand"
        ), folder) from None


def with_previous_checkpoint(error: CheckpointError, folder: str | os.PathLike) -> CheckpointError:
    """``error`` with the run's previous checkpoint suggested, when ``folder`` is a run's checkpoint.

    A corrupt or hand-edited newest checkpoint should not end a run: the one before it is usually
    intact, and moving the broken one aside makes ``--resume`` (and ``--model RUN``) use it.
    """
    folder = Path(folder)
    step = step_of(folder)
    if step is None or folder.parent.name != CHECKPOINTS:
        return error
    earlier = [f for f in step_folders(folder.parent.parent) if step_of(f) < step]
    if not earlier:
        return error
    return CheckpointError(
        f"{error}. The run's previous checkpoint is {earlier[-1]}: move {folder} out of "
        f"{folder.parent} to continue from that one"
    )
