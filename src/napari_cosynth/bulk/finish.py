"""The end of a bulk run (rank 0): the manifest and the whole-dataset exports, from the pairs on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_text
from ..errors import CosynthError
from ..jsonio import read_json
from . import plan
from .folder import HOVERNET_DIR, HOVERNET_STAGING, MANIFEST_FILE, PAIRS_DIR, writing


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
        "seed": prov.get("seed"),
        "batch_index": prov.get("batch_index"),
        "prompt": prov.get("prompt"),
        "n_nuclei": meta.get("n_nuclei"),
        "device": prov.get("device"),
    }
