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

import json
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import write_text
from ..errors import CosynthError
from ..progress import run_to_end
from ..seeds import pair_seed
from . import plan
from .finish import finish
from .folder import (
    EXPORTS,
    HOVERNET_STAGING,
    PAIRS_DIR,
    RECIPE_FILE,
    SEED_RULE,
    check_out,
    check_recipe,
    read_recipe,
    writing,
)
from .lock import lock_folder

__all__ = ["EXPORTS", "RECIPE_FILE", "BulkProgress", "check_out", "check_recipe", "finish", "generate_dataset",
           "parse_exports", "read_recipe"]

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
    pipe,
    source,
    out: str | Path,
    n: int,
    *,
    shape: tuple[int, int],
    base_seed: int,
    exports: Sequence[str] = ("folder",),
    batch: int = 1,
    prompt: str | None = None,
    tissue: str | None = None,
    ctx=None,
) -> Generator[BulkProgress, None, dict]:
    """Generate pairs 0..n-1 into ``out`` (this process's share of them under torchrun).

    Parameters
    ----------
    pipe : CoSynthPipeline
        The model, its device and the sampler settings (``pipe.settings``) of every pair.
    source : napari_cosynth.bulk.sources.LayoutSource
        Gives pair i's point layout from its seed.
    out
        The run folder (see the module docstring); created if missing.
    n
        Number of pairs.
    shape
        Canvas (H, W).
    base_seed
        Pair i is drawn, and its layout chosen, with ``napari_cosynth.seeds.pair_seed(base_seed, i)``:
        the pair ``cosynth generate --seed base_seed`` draws as its pair i.
    exports
        Any of :data:`EXPORTS`; the folder format is always written.
    batch
        Pairs drawn per sampler batch. Every pair has its own random stream, but batched convolutions
        round differently, so pixels may differ by a grey level between batch sizes: part of the recipe.
    prompt, tissue
        As in :meth:`~napari_cosynth.engine.pipeline.pipeline.CoSynthPipeline.generate`.
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
    recipe = _recipe(pipe, source, shape, base_seed, batch, prompt, tissue)
    check_recipe(out, recipe)
    check_out(out)
    check_request(pipe, source, shape, base_seed, exports, prompt, tissue)
    request = _Request(pipe, source, out, n, shape, base_seed, exports, batch, prompt, tissue, ctx, recipe)
    return _run(request)


def check_request(pipe, source, shape, base_seed, exports, prompt, tissue) -> None:
    """Raise what the run would raise at its first pair or at its end, without generating.

    Pair 0's layout is drawn (a dataset with other classes than the model's is refused there) and
    handed to the pipeline's ``generate``, which checks the canvas, the points, the prompt's length and
    the sampler settings when it is called; the run it returns is never started.
    """
    from ..data.exports import check_export_classes

    for export in exports:
        check_export_classes(pipe.vocabulary, export)
    pipe.generate(source.layout(0, pair_seed(base_seed, 0)), prompt=prompt, tissue=tissue, size=shape,
                  seed=base_seed).close()


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


@dataclass
class _Request:
    """A checked bulk request."""

    pipe: object
    source: object
    out: Path
    n: int
    shape: tuple[int, int]
    base_seed: int
    exports: tuple[str, ...]
    batch: int
    prompt: str | None
    tissue: str | None
    ctx: object
    recipe: dict


def _run(r: _Request):
    from ..engine.training.distributed import barrier

    out, ctx = r.out, r.ctx

    lock, repaired = None, []
    try:
        if ctx.is_main:
            with writing(out):
                out.mkdir(parents=True, exist_ok=True)
                lock = lock_folder(out)
                repaired = _start(out, r.recipe)
        barrier(ctx)  # no rank writes before rank 0 has cleaned up and written the recipe
        summary = yield from _make_pairs(r)
        summary["repaired"] = repaired
        # No barrier after this: the other ranks may exit while rank 0 assembles, and an error in
        # finish() must not leave them waiting on a collective that never comes.
        if ctx.is_main:
            summary.update(finish(out, r.n, r.exports, r.recipe))
        return summary
    finally:
        if lock is not None:
            lock.release()


def _make_pairs(r: _Request):
    from ..data.folder import write_sample
    from ..engine.training.distributed import barrier

    out, n, ctx = r.out, r.n, r.ctx
    pairs_dir = out / PAIRS_DIR
    done_before = plan.completed_pairs(pairs_dir)
    mine = list(plan.chunks_for_rank(n, r.batch, ctx.rank, ctx.world_size))
    total = sum(1 for c in mine for i in c if i < n)
    written = skipped = 0
    for chunk in mine:
        wanted = [i for i in chunk if i < n and i not in done_before]
        skipped += sum(1 for i in chunk if i < n and i in done_before)
        if not wanted:
            yield BulkProgress(written + skipped, total, skipped)
            continue
        layouts = [r.source.layout(i, pair_seed(r.base_seed, i)) for i in chunk]
        pairs = run_to_end(r.pipe.generate(layouts, prompt=r.prompt, tissue=r.tissue, size=r.shape,
                                           seed=r.base_seed, n=len(chunk), first_index=chunk.start))
        for k, i in enumerate(chunk):
            if i not in wanted:
                continue
            pair = pairs[k]
            pair.provenance.update(pair_index=i, pair_name=plan.pair_name(i), batch_index=k,
                                   batch=len(chunk), layout=r.recipe["layouts"])
            pair.name = plan.pair_name(i)
            with writing(out):
                _write_pair(pair, pairs_dir, write_sample)
                if "hovernet" in r.exports:
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


def _recipe(pipe, source, shape, base_seed, batch, prompt, tissue) -> dict:
    from .. import __version__

    settings = pipe.settings
    return {
        "model_id": pipe.card.model_id,
        "version": __version__,
        "base_seed": int(base_seed),
        "layouts": source.describe(),
        "size": [int(shape[0]), int(shape[1])],
        "batch": int(batch),
        "sampler": settings.sampler,
        "steps": settings.resolved_steps(pipe.card.timesteps),
        "guidance": float(settings.guidance),
        **({} if settings.eta is None else {"eta": float(settings.eta)}),
        **({} if (spacing := settings.resolved_spacing()) is None else {"spacing": spacing}),
        "prompt": prompt,
        "tissue": tissue,
        # How nuclei are cut from the maps decides the labels: a model's config may change it.
        "instance_recovery": asdict(pipe.card.separation),
        "seed_rule": SEED_RULE,
    }


