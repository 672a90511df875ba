"""``generate_dataset``: N pairs into a folder, resumable, shardable over torchrun processes.

The run is a generator (like every long job in the core) yielding :class:`BulkProgress` after each
batch, so the CLI can show a bar. Memory stays flat: a batch is generated, written pair by pair
(folder format, plus a HoVer-Net patch when asked), and dropped before the next one. Formats that
hold a whole dataset in a few files (PanNuke, Lizard) are assembled at the end by rank 0 from the
pairs on disk, one pair at a time (see :mod:`napari_cosynth.data.exports`).

Files under ``out``::

    generation.json   the recipe (model, base seed, layouts, sampler, size, batch); a resume must match
    pairs/pair-NNNNNN the pairs, folder format
    manifest.json     recipe + one record per pair (seed, prompt, nuclei), rewritten at the end
    hovernet/, pannuke/, lizard/   the exports asked for
    .generate-dataset.lock         held by the run writing here (:mod:`.lock`)

Nothing poisons the folder: every check that can refuse the request (canvas, prompt, guidance,
classes, exports, a writable ``out``) runs before the first file is written, the run's start-up
(clean-up, recipe) happens under the folder's lock, and a failed write ends in one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text
from ..errors import CosynthError
from ..jsonio import read_json
from . import plan
from .lock import lock_folder

EXPORTS = ("folder", "hovernet", "pannuke", "lizard")
RECIPE_FILE = "generation.json"
MANIFEST_FILE = "manifest.json"
PAIRS_DIR = "pairs"
HOVERNET_DIR = "hovernet"
# The HoVer-Net patches are written pair by pair as the pairs are made, into this hidden folder, which
# becomes hovernet/ when the run is complete (an export appears whole or not at all).
HOVERNET_STAGING = ".hovernet.partial"
# Recipe keys that decide the pixels of a pair: a resume with any of them changed would mix datasets.
_RECIPE_KEYS = ("model_id", "base_seed", "layouts", "size", "batch", "sampler", "steps", "guidance",
                "prompt", "tissue")


@dataclass
class BulkProgress:
    """``done`` of ``total`` pairs of this process written (``skipped`` of them already existed)."""

    done: int
    total: int
    skipped: int = 0

    @property
    def step(self) -> int:
        return self.done

    def postfix(self) -> str:
        return f"{self.done}/{self.total} pairs ({self.skipped} already there)"


def parse_exports(value: str | Sequence[str]) -> tuple[str, ...]:
    """'folder,hovernet' -> ('folder', 'hovernet'); unknown names are a CosynthError."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    bad = [n for n in names if n not in EXPORTS]
    if bad:
        raise CosynthError(f"unknown export {bad[0]!r}; choose from {', '.join(EXPORTS)}")
    return names or ("folder",)


def generate_dataset(
    model,
    meta: dict,
    source,
    out: str | Path,
    n: int,
    *,
    shape: tuple[int, int],
    base_seed: int,
    exports: Sequence[str] = ("folder",),
    batch: int = 1,
    sampler: str = "fast",
    steps: int | None = None,
    guidance: float = 2.0,
    prompt: str | None = None,
    tissue: str | None = None,
    device="cpu",
    ctx=None,
) -> Generator[BulkProgress, None, dict]:
    """Generate pairs 0..n-1 into ``out`` (this process's share of them under torchrun).

    Parameters
    ----------
    model, meta
        From ``napari_cosynth.engine.networks.checkpoint.load_model``.
    source : napari_cosynth.bulk.sources.LayoutSource
        Gives pair i's point layout from its seed.
    out
        The run folder (see the module docstring); created if missing.
    n
        Number of pairs.
    shape
        Canvas (H, W).
    base_seed
        Seed every pair seed is derived from (``plan.derive_seed``).
    exports
        Any of :data:`EXPORTS`; the folder format is always written.
    batch
        Pairs drawn per sampler batch; part of the recipe (changing it changes the pairs).
    sampler, steps, guidance, prompt, tissue, device
        As in ``napari_cosynth.engine.pipeline.generate.generate``.
    ctx : napari_cosynth.engine.training.distributed.DistributedContext, optional
        This process's rank and world size (one process when omitted).

    Returns
    -------
    generator
        Yields :class:`BulkProgress` after each batch and returns a summary dict (pairs written by
        this process, skipped, total complete, exports written, paths).

    Raises
    ------
    CosynthError
        When called: bad counts, an unknown export, ``out`` holding a run made with another recipe,
        an ``out`` that cannot be written, or anything generating would refuse (canvas, prompt,
        guidance, classes of the layouts or of an export). Nothing is written before these checks.
        When iterated: another run writing to ``out``, or a failed write (a full disk).
    """
    from ..engine.training.distributed import DistributedContext

    ctx = ctx or DistributedContext()
    plan.check_plan(n, batch, ctx.rank, ctx.world_size)
    exports = parse_exports(exports)
    out = Path(out)
    recipe = _recipe(meta, source, shape, base_seed, batch, sampler, steps, guidance, prompt, tissue)
    check_recipe(out, recipe)
    check_out(out)
    check_request(model, meta, source, shape, base_seed, exports, sampler, steps, guidance, prompt,
                  tissue, device)
    return _run(model, meta, source, out, n, shape, base_seed, exports, batch, sampler, steps,
                guidance, prompt, tissue, device, ctx, recipe)


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


def check_request(model, meta, source, shape, base_seed, exports, sampler, steps, guidance, prompt,
                  tissue, device) -> None:
    """Raise what the run would raise at its first pair or at its end, without generating.

    Pair 0's layout is drawn (a dataset with other classes than the model's is refused there) and
    handed to the engine's ``generate``, which checks the canvas, the points, the prompt's length and
    the sampler settings when it is called; the run it returns is never started.
    """
    from ..data.exports import check_export_classes
    from ..engine.pipeline.generate import generate, model_vocabulary

    vocabulary = model_vocabulary(meta)
    for export in exports:
        check_export_classes(vocabulary, export)
    seed = plan.derive_seed(base_seed, 0)
    generate(model, meta, source.layout(0, seed), shape, prompt=prompt, tissue=tissue, sampler=sampler,
             steps=steps, guidance=guidance, seed=seed, n=1, device=device).close()


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


def _start(out: Path, recipe: dict) -> list[str]:
    """Rank 0, holding the folder's lock: re-check the recipe, clear what a killed run left, write it.

    Returns the names of incomplete pair folders removed (they are remade by this run).
    """
    check_recipe(out, recipe)  # another run may have finished here since the first check
    pairs_dir = out / PAIRS_DIR
    pairs_dir.mkdir(exist_ok=True)
    plan.clean_partial(pairs_dir)
    repaired = plan.remove_incomplete(pairs_dir)
    if read_recipe(out) is None:
        try:
            write_text(out / RECIPE_FILE, json.dumps(recipe, indent=2) + "\n", overwrite=False)
        except FileExistsError:
            check_recipe(out, recipe)  # written meanwhile by a run that does not take the lock
    return repaired


def _run(model, meta, source, out, n, shape, base_seed, exports, batch, sampler, steps, guidance,
         prompt, tissue, device, ctx, recipe):
    from ..engine.training.distributed import barrier

    lock, repaired = None, []
    try:
        if ctx.is_main:
            with writing(out):
                out.mkdir(parents=True, exist_ok=True)
                lock = lock_folder(out)
                repaired = _start(out, recipe)
        barrier(ctx)  # no rank writes before rank 0 has cleaned up and written the recipe
        summary = yield from _make_pairs(model, meta, source, out, n, shape, base_seed, exports, batch,
                                         sampler, steps, guidance, prompt, tissue, device, ctx, recipe)
        summary["repaired"] = repaired
        # No barrier after this: the other ranks may exit while rank 0 assembles, and an error in
        # finish() must not leave them waiting on a collective that never comes.
        if ctx.is_main:
            summary.update(finish(out, n, exports, recipe))
        return summary
    finally:
        if lock is not None:
            lock.release()


def _make_pairs(model, meta, source, out, n, shape, base_seed, exports, batch, sampler, steps, guidance,
                prompt, tissue, device, ctx, recipe):
    from ..data.folder import write_sample
    from ..engine.training.distributed import barrier
    from ..engine.pipeline.generate import generate, run_to_end

    pairs_dir = out / PAIRS_DIR
    done_before = plan.completed_pairs(pairs_dir)
    mine = [c for c in plan.chunks_for_rank(n, batch, ctx.rank, ctx.world_size)]
    total = sum(1 for c in mine for i in c if i < n)
    written = skipped = 0
    for chunk in mine:
        wanted = [i for i in chunk if i < n and i not in done_before]
        skipped += sum(1 for i in chunk if i < n and i in done_before)
        if not wanted:
            yield BulkProgress(written + skipped, total, skipped)
            continue
        seed = plan.chunk_seed(base_seed, chunk)
        layouts = [source.layout(i, plan.derive_seed(base_seed, i)) for i in chunk]
        run = generate(model, meta, layouts, shape, prompt=prompt, tissue=tissue, sampler=sampler,
                       steps=steps, guidance=guidance, seed=seed, n=len(chunk), device=device)
        pairs = run_to_end(run)
        for k, i in enumerate(chunk):
            if i not in wanted:
                continue
            pair = pairs[k]
            pair.provenance.update(pair_index=i, pair_name=plan.pair_name(i), batch_seed=seed,
                                   batch_index=k, batch=len(chunk), layout_seed=plan.derive_seed(base_seed, i),
                                   layout=recipe["layouts"], base_seed=base_seed)
            pair.name = plan.pair_name(i)
            with writing(out):
                _write_pair(pair, pairs_dir, write_sample)
                if "hovernet" in exports:
                    from ..data.exports import write_hovernet_patch

                    write_hovernet_patch(pair, out / HOVERNET_STAGING, plan.pair_name(i))
            written += 1
        del pairs  # nothing of a batch outlives it
        yield BulkProgress(written + skipped, total, skipped)
    barrier(ctx)  # every rank's pairs are on disk before rank 0 takes stock
    return {"rank": ctx.rank, "world_size": ctx.world_size, "written": written, "skipped": skipped,
            "out": str(out)}


def _write_pair(pair, pairs_dir: Path, write_sample) -> None:
    name = plan.pair_name(pair.provenance["pair_index"])
    if (pairs_dir / name / "meta.json").is_file():
        return
    path = write_sample(pair, pairs_dir, name=name)
    if path.name != name:
        # Another writer finished this pair between our check and our write; pairs are
        # deterministic, so keep theirs and drop the duplicate copy.
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def _recipe(meta, source, shape, base_seed, batch, sampler, steps, guidance, prompt, tissue) -> dict:
    from .. import __version__
    from ..engine.pipeline.generate import _resolved_steps

    return {
        "model_id": meta.get("model_id", "unknown"),
        "version": __version__,
        "base_seed": int(base_seed),
        "layouts": source.describe(),
        "size": [int(shape[0]), int(shape[1])],
        "batch": int(batch),
        "sampler": sampler,
        "steps": _resolved_steps(sampler, steps, meta),
        "guidance": float(guidance),
        "prompt": prompt,
        "tissue": tissue,
        "seed_rule": "pair seed = SeedSequence([base_seed, i]); batch seed = seed of its first pair",
    }


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
    changed = [k for k in _RECIPE_KEYS if before.get(k) != recipe.get(k)]
    if changed:
        k = changed[0]
        raise CosynthError(
            f"{out}: an earlier run here used {k} = {before.get(k)!r}, this one {recipe.get(k)!r}; "
            "resume with the same settings, or write to another folder"
        )


def finish(out: Path, n: int, exports: Sequence[str], recipe: dict) -> dict:
    """Write manifest.json and the whole-dataset exports from the pairs on disk (rank 0, at the end)."""
    from ..data import exports as ex

    pairs_dir = out / PAIRS_DIR
    done = plan.completed_pairs(pairs_dir)
    missing = [i for i in range(n) if i not in done]
    if missing:
        raise CosynthError(
            f"{out}: {len(missing)} of {n} pairs are missing after the run (first: {plan.pair_name(missing[0])}); "
            "rerun the same command to make them"
        )
    paths = [pairs_dir / plan.pair_name(i) for i in range(n)]
    records = [_record(p) for p in paths]
    manifest = {**recipe, "n": n, "pairs_dir": PAIRS_DIR, "exports": list(exports), "pairs": records}
    written = {"folder": str(pairs_dir)}
    with writing(out):
        write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
        if "hovernet" in exports:
            written["hovernet"] = str(_finish_hovernet(out, paths))
        if "pannuke" in exports:
            written["pannuke"] = str(ex.export_pannuke(paths, out / "pannuke"))
        if "lizard" in exports:
            written["lizard"] = str(ex.export_lizard(paths, out / "lizard"))
    return {"complete": n, "manifest": str(out / MANIFEST_FILE), "exports": written}


def _finish_hovernet(out: Path, paths: list[Path]) -> Path:
    """Complete the hidden HoVer-Net folder with exactly ``paths``' patches and rename it into place.

    A patch missing from it (a pair made by an earlier run) is linked from the earlier hovernet/ when
    that holds it, else written from the pair folder; patches of pairs past N are dropped.
    """
    import shutil

    from ..atomic import atomic_path, replace_folder
    from ..data import exports as ex
    from ..data.folder import read_sample

    staging, final = out / HOVERNET_STAGING, out / HOVERNET_DIR
    staging.mkdir(exist_ok=True)
    wanted = {f"{p.name}.npy" for p in paths}
    for path in paths:
        patch = staging / f"{path.name}.npy"
        earlier = final / patch.name
        if patch.is_file():
            continue
        if earlier.is_file():
            with atomic_path(patch) as tmp:
                try:
                    os.link(earlier, tmp)
                except OSError:
                    shutil.copyfile(earlier, tmp)
        else:
            ex.write_hovernet_patch(read_sample(path), staging, path.name)
    for entry in staging.iterdir():
        if entry.name not in wanted:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    ex.write_vocabulary(read_sample(paths[0]).vocabulary, staging)
    replace_folder(staging, final)
    return final


def _record(path: Path) -> dict:
    try:
        meta = read_json(path / "meta.json")
    except (OSError, ValueError) as err:
        raise CosynthError(
            f"{path / 'meta.json'}: cannot read the pair's record ({err}); delete the folder {path.name} "
            "and rerun the same command to remake it"
        ) from err
    prov = meta.get("provenance", {})
    return {
        "index": prov.get("pair_index"),
        "name": path.name,
        "seed": prov.get("batch_seed", prov.get("seed")),
        "batch_index": prov.get("batch_index"),
        "layout_seed": prov.get("layout_seed"),
        "prompt": prov.get("prompt"),
        "n_nuclei": meta.get("n_nuclei"),
        "device": prov.get("device"),
    }
