"""Which pairs a bulk run makes, in which process and which batch: the arithmetic of resuming and sharding.

A bulk run of N pairs must give pair i the same pixels however many processes share the work and
however often the run is interrupted and resumed. Every pair is drawn from its own random stream
(``napari_cosynth.seeds.pair_seed(base_seed, i)``), so what a pair looks like does not depend on who
draws it. The pairs are cut into fixed chunks of ``batch`` consecutive indices (chunk c holds pairs
c*B .. c*B+B-1), every chunk is drawn as one batch (batched convolutions round like each other only
within one batch size, hence the fixed chunks), and whole chunks are dealt to the processes round-robin
(chunk c to rank c mod W). With the default batch of 1 this is exactly "rank r makes the pairs i with
i mod W == r". The last chunk is always drawn full size (pairs past N are discarded), so pair i does
not depend on N.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import CosynthError

PAIR_PREFIX = "pair-"
_PAIR_NAME = re.compile(r"^pair-(\d{6,})$")


def pair_name(i: int) -> str:
    """Folder name of pair ``i`` (zero-padded so names sort in index order)."""
    return f"{PAIR_PREFIX}{i:06d}"


def pair_index(name: str) -> int | None:
    """Inverse of :func:`pair_name`; None for any other name."""
    match = _PAIR_NAME.match(name)
    return int(match.group(1)) if match else None


def check_plan(n: int, batch: int, rank: int = 0, world_size: int = 1) -> None:
    """Raise a CosynthError for a count, batch size or rank that cannot form a plan."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CosynthError(f"--n must be a positive number of pairs, got {n!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise CosynthError(f"--batch must be a positive number of pairs, got {batch!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise CosynthError(f"rank {rank} of {world_size} processes is not a valid position")


def chunks_for_rank(n: int, batch: int, rank: int = 0, world_size: int = 1) -> Iterator[range]:
    """The chunks (ranges of pair indices, all of length ``batch``) that process ``rank`` draws.

    Indices at or past ``n`` are included so every chunk is drawn whole; callers write only those
    below ``n``. Over all ranks every index below ``n`` appears exactly once.
    """
    check_plan(n, batch, rank, world_size)
    n_chunks = -(-n // batch)
    for c in range(rank, n_chunks, world_size):
        yield range(c * batch, (c + 1) * batch)


def completed_pairs(pairs_dir: str | Path) -> set[int]:
    """Indices of the finished pairs under ``pairs_dir`` (a folder ``pair-NNNNNN`` with meta.json).

    Pair folders appear by an atomic rename once whole, so a visible folder with meta.json is done;
    hidden temporary folders of an interrupted write are not counted (see :func:`clean_partial`).
    """
    root = Path(pairs_dir)
    if not root.is_dir():
        return set()
    done = set()
    for entry in root.iterdir():
        index = pair_index(entry.name)
        if index is not None and (entry / "meta.json").is_file():
            done.add(index)
    return done


def clean_partial(pairs_dir: str | Path) -> int:
    """Remove hidden temporary folders that an interrupted pair write left; return how many.

    Only names made by :func:`napari_cosynth.atomic.atomic_path` for pair folders
    (``.pair-NNNNNN.*.tmp``) are touched. Call it before any process of the run writes, holding the
    run's lock (:mod:`.lock`): a second run must never clear the first's pairs in the making.
    """
    import shutil

    root = Path(pairs_dir)
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith(f".{PAIR_PREFIX}") and entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def remove_incomplete(pairs_dir: str | Path) -> list[str]:
    """Remove entries named like a pair that are not a finished one (no meta.json); return their names.

    Pairs appear by an atomic rename, so such a folder was damaged after it was written (a file deleted
    by hand, a copy cut short). Left in place it would block the pair forever: the writer never
    overwrites, so the remade pair would land beside it as a duplicate. Pairs are deterministic, so
    the run remakes it. Call it, like :func:`clean_partial`, only while holding the run's lock.
    """
    import shutil

    root = Path(pairs_dir)
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        if pair_index(entry.name) is None or (entry / "meta.json").is_file():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed
