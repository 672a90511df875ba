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
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text
from ..errors import CosynthError
from . import plan

EXPORTS = ("folder", "hovernet", "pannuke", "lizard")
RECIPE_FILE = "generation.json"
MANIFEST_FILE = "manifest.json"
PAIRS_DIR = "pairs"
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
        From ``napari_cosynth.engine.checkpoint.load_model``.
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
        As in ``napari_cosynth.engine.generate.generate``.
    ctx : napari_cosynth.engine.distributed.DistributedContext, optional
        This process's rank and world size (one process when omitted).

    Returns
    -------
    generator
        Yields :class:`BulkProgress` after each batch and returns a summary dict (pairs written by
        this process, skipped, total complete, exports written, paths).

    Raises
    ------
    CosynthError
        Bad counts, an unknown export, or ``out`` holding a run made with another recipe.
    """
    from ..engine.distributed import DistributedContext, barrier

    ctx = ctx or DistributedContext()
    plan.check_plan(n, batch, ctx.rank, ctx.world_size)
    exports = parse_exports(exports)
    out = Path(out)
    pairs_dir = out / PAIRS_DIR
    recipe = _recipe(meta, source, shape, base_seed, batch, sampler, steps, guidance, prompt, tissue)
    check_recipe(out, recipe)
    if ctx.is_main:
        pairs_dir.mkdir(parents=True, exist_ok=True)
        plan.clean_partial(pairs_dir)
        if not (out / RECIPE_FILE).exists():
            write_text(out / RECIPE_FILE, json.dumps(recipe, indent=2) + "\n")
    barrier(ctx)
    return _run(model, meta, source, out, n, shape, base_seed, exports, batch, sampler, steps,
                guidance, prompt, tissue, device, ctx, recipe)


def _run(model, meta, source, out, n, shape, base_seed, exports, batch, sampler, steps, guidance,
         prompt, tissue, device, ctx, recipe):
    from ..data.folder import write_sample
    from ..engine.distributed import barrier
    from ..engine.generate import generate, run_to_end

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
            _write_pair(pair, pairs_dir, write_sample)
            if "hovernet" in exports:
                from ..data.exports import write_hovernet_patch

                write_hovernet_patch(pair, out / "hovernet", plan.pair_name(i))
            written += 1
        del pairs  # nothing of a batch outlives it
        yield BulkProgress(written + skipped, total, skipped)
    barrier(ctx)  # every rank's pairs are on disk before rank 0 takes stock
    summary = {"rank": ctx.rank, "world_size": ctx.world_size, "written": written, "skipped": skipped,
               "out": str(out)}
    # No barrier after this: the other ranks may exit while rank 0 assembles, and an error in
    # finish() must not leave them waiting on a collective that never comes.
    if ctx.is_main:
        summary.update(finish(out, n, exports, recipe))
    return summary


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
    from ..engine.generate import _resolved_steps

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
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CosynthError(f"{path}: cannot read the run's recipe ({err}); remove the file to start over") from err


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
    from ..data.folder import read_sample

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
    write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
    written = {"folder": str(pairs_dir)}
    if "hovernet" in exports:
        # Pairs made by an earlier run without --export hovernet have no patch yet.
        for path in paths:
            if not (out / "hovernet" / f"{path.name}.npy").is_file():
                ex.write_hovernet_patch(read_sample(path), out / "hovernet", path.name)
        ex.write_vocabulary(read_sample(paths[0]).vocabulary, out / "hovernet")
        written["hovernet"] = str(out / "hovernet")
    if "pannuke" in exports:
        written["pannuke"] = str(ex.export_pannuke(paths, out / "pannuke"))
    if "lizard" in exports:
        written["lizard"] = str(ex.export_lizard(paths, out / "lizard"))
    return {"complete": n, "manifest": str(out / MANIFEST_FILE), "exports": written}


def _record(path: Path) -> dict:
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
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
