"""cosynth generate-dataset: seeds, sharding, resume, manifest, layout sources, torchrun identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_cosynth.bulk import plan
from napari_cosynth.bulk.sources import window
from napari_cosynth.cli.main import main
from napari_cosynth.data.folder import read_sample
from napari_cosynth.data.registry import open_dataset
from napari_cosynth.errors import CosynthError
from napari_cosynth.sample import PointTable
from napari_cosynth.seeds import pair_seed

TINY = ["--size", "32", "32", "--steps", "2", "--quiet"]


def run_cli(args, capsys=None) -> dict:
    assert main(["generate-dataset", *args, *TINY, "--json"]) == 0
    return json.loads(capsys.readouterr().out) if capsys else {}


def pixels(folder: Path) -> dict[str, tuple]:
    """Name -> (image, instances, classes, prompt) of every pair under ``folder``."""
    out = {}
    for path in sorted(folder.iterdir()):
        s = read_sample(path)
        out[path.name] = (s.image, s.instances, s.classes, s.provenance["prompt"])
    return out


def assert_same_pairs(a: Path, b: Path) -> None:
    pa, pb = pixels(a), pixels(b)
    assert sorted(pa) == sorted(pb)
    for name in pa:
        for x, y in zip(pa[name], pb[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


# -------------------------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("n,batch,world", [(1, 1, 1), (7, 1, 3), (10, 3, 2), (5, 2, 4), (9, 4, 1)])
def test_every_pair_is_planned_exactly_once(n, batch, world):
    taken = [i for r in range(world) for c in plan.chunks_for_rank(n, batch, r, world) for i in c if i < n]
    assert sorted(taken) == list(range(n))


def test_batch_one_deals_pairs_round_robin():
    assert [c.start for c in plan.chunks_for_rank(7, 1, 1, 3)] == [1, 4]


def test_seeds_are_deterministic_distinct_and_not_shifted():
    seeds = [pair_seed(5, i) for i in range(100)]
    assert seeds == [pair_seed(5, i) for i in range(100)]
    assert len(set(seeds)) == 100 and all(0 <= s < 2**63 for s in seeds)
    assert seeds[0] == 5  # a single pair's seed is the one the user gave
    # base + i schemes make runs with neighbouring base seeds share pairs; this one does not.
    assert pair_seed(6, 0) != pair_seed(5, 1)


def test_bad_plans_are_refused():
    with pytest.raises(CosynthError, match="--n"):
        list(plan.chunks_for_rank(0, 1))
    with pytest.raises(CosynthError, match="--batch"):
        list(plan.chunks_for_rank(3, 0))


def test_completed_pairs_and_partial_cleanup(tmp_path):
    (tmp_path / "pair-000003").mkdir()
    (tmp_path / "pair-000003" / "meta.json").write_text("{}")
    (tmp_path / "pair-000004").mkdir()  # no meta.json: not finished
    (tmp_path / ".pair-000005.abc.tmp").mkdir()
    (tmp_path / ".other").mkdir()
    assert plan.completed_pairs(tmp_path) == {3}
    assert plan.clean_partial(tmp_path) == 1
    assert not (tmp_path / ".pair-000005.abc.tmp").exists() and (tmp_path / ".other").exists()
    assert plan.pair_index(plan.pair_name(12)) == 12 and plan.pair_index("pair-12") is None


def test_window_keeps_points_inside_and_shifts_them():
    points = PointTable([[5, 5], [50, 60], [90, 10]], [1, 2, 3])
    out = window(points, (100, 100), (40, 40), np.random.default_rng(0))
    assert not out.outside((40, 40)).any()
    small = window(points, (100, 100), (100, 100), np.random.default_rng(0))
    np.testing.assert_array_equal(small.xy, points.xy)


# ------------------------------------------------------------------------------------ one-process runs


@pytest.fixture(scope="module")
def one_process(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("bulk") / "run"
    args = ["--model", str(tiny_checkpoint), "--layouts", "hardcore", "--n", "5", "--out", str(out),
            "--seed", "11", "--batch", "2", "--export", "folder,hovernet,pannuke,lizard"]
    # In a fresh process with one torch thread, as each torchrun rank below is: the float sums of a
    # convolution depend on the thread count; pairs are bit-identical for the same thread count.
    cmd = [sys.executable, "-m", "napari_cosynth.cli", "generate-dataset", *args, *TINY]
    done = subprocess.run(cmd, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, args


@pytest.mark.slow
def test_run_writes_pairs_manifest_and_exports(one_process):
    out, _ = one_process
    assert sorted(p.name for p in (out / "pairs").iterdir()) == [plan.pair_name(i) for i in range(5)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_id"] == "tiny-test" and manifest["base_seed"] == 11
    assert manifest["layouts"]["kind"] == "hardcore" and manifest["steps"] == 2 and manifest["batch"] == 2
    assert [r["index"] for r in manifest["pairs"]] == list(range(5))
    # Every pair its own seed, whatever batch it was drawn in.
    assert [r["seed"] for r in manifest["pairs"]] == [pair_seed(11, i) for i in range(5)]
    assert all(r["prompt"] for r in manifest["pairs"])
    assert len(open_dataset(out / "pannuke", "pannuke")) == 5
    assert len(open_dataset(out / "lizard", "lizard")) == 5
    assert len(list((out / "hovernet").glob("pair-*.npy"))) == 5


@pytest.mark.slow
def test_rerun_skips_written_pairs_and_resumes_missing_ones(one_process, capsys, tmp_path):
    import shutil

    # On a copy: the torchrun test compares its pairs with the untouched reference run.
    ref, args = one_process
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    args = [a if a != str(ref) else str(out) for a in args]
    before = {p.name: (p / "meta.json").stat().st_mtime_ns for p in (out / "pairs").iterdir()}
    shutil.rmtree(out / "pairs" / "pair-000003")
    (out / "pairs" / ".pair-000003.x.tmp").mkdir()  # an interrupted write
    first = read_sample(out / "pairs" / "pair-000002")
    summary = run_cli([a for a in args if a != "11" and a != "--seed"], capsys)  # seed from the folder
    assert summary["written"] == 1 and summary["skipped"] == 4 and summary["complete"] == 5
    after = {p.name: (p / "meta.json").stat().st_mtime_ns for p in (out / "pairs").iterdir()}
    assert {k: v for k, v in after.items() if k != "pair-000003"} == {
        k: v for k, v in before.items() if k != "pair-000003"}
    assert not list((out / "pairs").glob(".*"))
    # The remade pair 3 shares a batch with the kept pair 2, so it is the same as before.
    np.testing.assert_array_equal(read_sample(out / "pairs" / "pair-000002").image, first.image)


@pytest.mark.slow
def test_resume_with_another_recipe_is_refused(one_process, capsys):
    out, args = one_process
    names = sorted(p.name for p in (out / "pairs").iterdir())
    changed = [a if a != "11" else "12" for a in args]
    assert main(["generate-dataset", *changed, *TINY]) == 2
    assert "base_seed = 11, this one 12" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "pairs").iterdir()) == names


@pytest.mark.slow
def test_pairs_do_not_depend_on_n(one_process, tiny_checkpoint, tmp_path):
    out, _ = one_process
    run_cli(["--model", str(tiny_checkpoint), "--layouts", "hardcore", "--n", "3", "--out",
             str(tmp_path / "short"), "--seed", "11", "--batch", "2"])
    for i in range(3):
        a, b = read_sample(out / "pairs" / plan.pair_name(i)), read_sample(tmp_path / "short" / "pairs" / plan.pair_name(i))
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.instances, b.instances)


@pytest.mark.slow
def test_layouts_from_a_dataset_cycle_through_its_samples(one_process, tiny_checkpoint, tmp_path):
    out, _ = one_process
    run_cli(["--model", str(tiny_checkpoint), "--layouts", str(out / "pairs"), "--format", "folder",
             "--n", "6", "--out", str(tmp_path / "ds"), "--seed", "3"])
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["layouts"] == {"kind": "dataset", "path": str(out / "pairs"), "format": "folder",
                                   "samples": 5}
    src = read_sample(out / "pairs" / "pair-000001").points
    got = read_sample(tmp_path / "ds" / "pairs" / "pair-000001").points
    np.testing.assert_allclose(got.xy, src.xy)  # same canvas size: the whole layout is taken
    np.testing.assert_array_equal(got.classes, src.classes)
    wrapped = read_sample(tmp_path / "ds" / "pairs" / "pair-000005").points  # 5 mod 5 = sample 0
    np.testing.assert_allclose(wrapped.xy, read_sample(out / "pairs" / "pair-000000").points.xy)


def test_layout_and_export_errors_are_clear(tiny_checkpoint, tmp_path, capsys):
    base = ["generate-dataset", "--model", str(tiny_checkpoint), "--n", "1", "--out", str(tmp_path / "x"), *TINY]
    assert main([*base, "--layouts", str(tmp_path)]) == 2
    assert "needs --format" in capsys.readouterr().err
    assert main([*base, "--layouts", "hardcore", "--export", "folder,coco"]) == 2
    assert "unknown export 'coco'" in capsys.readouterr().err
    assert main([*base, "--layouts", f"generated:{tmp_path / 'missing.json'}"]) == 2
    assert "no such fitted layout model" in capsys.readouterr().err


def _strauss(path, magnification):
    from napari_cosynth.layouts.process import StraussModel, save_model
    from napari_cosynth.vocabularies import CONSEP

    k = CONSEP.n_classes - 1
    model = StraussModel(vocabulary=CONSEP, magnification=magnification, intensity=np.full(k, 0.004),
                         hardcore=np.full((k, k), 4.0), radius=8.0, gamma=np.full((k, k), 0.5),
                         patch_intensities=np.full((1, k), 0.004), window=(64, 64))
    save_model(model, path)
    return path


@pytest.mark.slow
def test_layouts_from_a_fitted_process(tiny_checkpoint, tmp_path, capsys):
    fitted = _strauss(tmp_path / "fit.json", 20.0)
    out = tmp_path / "gen"
    run_cli(["--model", str(tiny_checkpoint), "--layouts", f"generated:{fitted}", "--n", "2",
             "--out", str(out), "--seed", "1"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layouts"]["kind"] == "generated"
    a, b = (read_sample(out / "pairs" / plan.pair_name(i)).points for i in range(2))
    assert len(a) > 0 and not a.outside((32, 32)).any()
    assert len(a) != len(b) or not np.allclose(a.xy, b.xy)  # each pair its own layout
    wrong = _strauss(tmp_path / "fit40.json", 40.0)
    base = ["generate-dataset", "--model", str(tiny_checkpoint), "--n", "1", "--out", str(tmp_path / "y"), *TINY]
    assert main([*base, "--layouts", f"generated:{wrong}"]) == 2
    assert "fitted at 40x" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_two_torchrun_processes_match_one_process_and_resume(one_process, tmp_path):
    """Slow (~30 s): two CPU processes under torchrun, then the same command again."""
    ref, args = one_process
    out = tmp_path / "ddp"
    args = [a if a != str(ref) else str(out) for a in args]
    args = [("--pairs" if a == "--n" else a) for a in args]  # torchrun's parser takes --n for its own
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "napari_cosynth.cli", "generate-dataset", *args, *TINY, "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stdout)["complete"] == 5
    assert_same_pairs(ref / "pairs", out / "pairs")
    assert len(open_dataset(out / "pannuke", "pannuke")) == 5
    mtimes = {p.name: (p / "meta.json").stat().st_mtime_ns for p in (out / "pairs").iterdir()}
    again = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["written"] == 0 and summary["skipped"] == 3  # rank 0's share: chunks 0 and 2
    assert mtimes == {p.name: (p / "meta.json").stat().st_mtime_ns for p in (out / "pairs").iterdir()}
