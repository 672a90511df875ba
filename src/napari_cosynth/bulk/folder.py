"""A bulk run's folder: its file names, its recipe (what decides the pixels), and failed writes.

Shared by :mod:`.run` (which makes the pairs) and :mod:`.finish` (which assembles the manifest and the
exports at the end).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..engine.diffusion.sampler_names import recorded_spacing
from ..errors import CosynthError
from ..jsonio import read_json
from . import plan

EXPORTS = ("folder", "hovernet", "pannuke", "lizard")
RECIPE_FILE = "generation.json"
MANIFEST_FILE = "manifest.json"
PAIRS_DIR = "pairs"
HOVERNET_DIR = "hovernet"
# The HoVer-Net patches are written pair by pair as the pairs are made, into this hidden folder, which
# becomes hovernet/ when the run is complete (an export appears whole or not at all).
HOVERNET_STAGING = ".hovernet.partial"
# Recipe keys that decide the pixels of a pair: a resume with any of them changed would mix datasets.
_RECIPE_KEYS = ("model_id", "base_seed", "layouts", "size", "batch", "sampler", "steps", "spacing",
                "guidance", "eta", "prompt", "tissue", "instance_recovery")
# Recorded in the recipe; folders of the earlier rule (one stream per batch) cannot be resumed.
SEED_RULE = "pair i: its own random stream seeded napari_cosynth.seeds.pair_seed(base_seed, i)"


def check_out(out: Path) -> None:
    """Refuse an ``out`` that cannot be written (a path through a file, no write permission), first."""
    probe = out
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent  # the nearest existing folder is where the run's folders will be made
    if not probe.is_dir():
        raise CosynthError(f"--out {out}: {probe} is a file, not a folder; choose a folder for --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CosynthError(
            f"--out {out}: {probe} is not writable (no permission, or a read-only file system); "
            "choose another --out"
        )


@contextlib.contextmanager
def writing(out: Path):
    """Turn a failed write under ``out`` (a full disk, a read-only file system) into one clear line."""
    try:
        yield
    except OSError as err:
        where = err.filename or out
        reason = err.strerror or str(err)
        full = err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        fix = "free some space" if full else "make it writable"
        raise CosynthError(
            f"--out {out}: cannot write {where} ({reason}); {fix} and rerun the same command (finished "
            "pairs are kept), or choose another --out"
        ) from err


def read_recipe(out: str | Path) -> dict | None:
    """The recipe of an earlier run in ``out``, or None when there is none."""
    path = Path(out) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise CosynthError(f"{path}: cannot read the run's recipe ({err}); remove the file to start over") from None


def check_recipe(out: Path, recipe: dict) -> None:
    """Raise if ``out`` holds a run whose pixel-deciding settings differ from ``recipe``."""
    before = read_recipe(out)
    if before is None:
        if plan.completed_pairs(Path(out) / PAIRS_DIR):
            raise CosynthError(
                f"{out}: holds pairs but no {RECIPE_FILE}, so a resume cannot tell how they were made; "
                "write to an empty folder"
            )
        return
    if before.get("seed_rule", recipe["seed_rule"]) != recipe["seed_rule"]:
        raise CosynthError(
            f"{out}: was written by napari-cosynth {before.get('version', '(an earlier version)')}, which "
            "drew pairs with another seed rule, so this version cannot add to it; finish it with that "
            "version, or write to another folder"
        )
    if "instance_recovery" not in before:
        # Recorded before recipes held the cut: the pairs tell it (no pair yet: nothing to mix with).
        cut = _recorded_cut(Path(out) / PAIRS_DIR)
        before = dict(before, instance_recovery=recipe.get("instance_recovery") if cut is None else cut)
    before = dict(before, spacing=recorded_spacing(before))
    changed = [k for k in _RECIPE_KEYS if before.get(k) != recipe.get(k)]
    if changed:
        k = changed[0]
        raise CosynthError(
            f"{out}: an earlier run here used {k} = {before.get(k)!r}, this one {recipe.get(k)!r}; "
            "resume with the same settings, or write to another folder"
        )


def _recorded_cut(pairs_dir: Path) -> dict | None:
    """The instance cut a folder's first finished pair records in its provenance (None: no pair yet).
    One pair is enough: the same model and version cut every pair of a run alike."""
    done = plan.completed_pairs(pairs_dir)
    if not done:
        return None
    meta = read_json(pairs_dir / plan.pair_name(min(done)) / "meta.json")
    return meta.get("provenance", {}).get("instance_recovery")
