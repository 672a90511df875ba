"""cosynth generate-dataset leaves no folder poisoned and no run stuck (issue 13).

A refused run writes nothing; an incomplete pair folder is remade; an unwritable --out is refused
before generation and a write failure is one line; the HoVer-Net export appears whole; a second run
into a folder in use refuses without touching the first's files.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import write_pannuke
from napari_cosynth import atomic
from napari_cosynth.bulk import plan
from napari_cosynth.bulk.run import RECIPE_FILE, generate_dataset
from napari_cosynth.bulk.sources import open_source
from napari_cosynth.cli.main import main
from napari_cosynth.data.folder import read_sample
from napari_cosynth.data.hovernet_npy import HovernetNpyDataset
from napari_cosynth.engine.pipeline.pipeline import CoSynthPipeline
from napari_cosynth.engine.pipeline.settings import SamplerSettings
from napari_cosynth.errors import CosynthError

TINY = ["--size", "32", "32", "--steps", "2", "--quiet"]


def cli(tiny_checkpoint, out, *extra, n=2) -> list[str]:
    return ["generate-dataset", "--model", str(tiny_checkpoint), "--layouts", "hardcore", "--n", str(n),
            "--out", str(out), "--seed", "5", *TINY, *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def seven_class_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny model's architecture with CoNSeP's 7 original classes: too many for PanNuke (5)."""
    import torch

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.networks.checkpoint import load_model, save_model
    from napari_cosynth.engine.networks.model import CoSynNet
    from napari_cosynth.vocabularies import CONSEP_ORIGINAL

    _, meta = load_model(tiny_checkpoint)
    config = CosynthConfig.from_dict(meta["config"])
    torch.manual_seed(0)
    model = CoSynNet(config.model, config.text, CONSEP_ORIGINAL.n_classes)
    return save_model(tmp_path_factory.mktemp("models") / "seven", model, config,
                      {"classes": list(CONSEP_ORIGINAL.names), "tissues": ["colon"], "model_id": "tiny-7"})


# ------------------------------------------------------------------- a refused run writes nothing


def test_refused_runs_write_nothing_and_the_corrected_command_runs(
        tiny_checkpoint, seven_class_checkpoint, tmp_path, capsys):
    pannuke = tmp_path / "pannuke"
    write_pannuke(pannuke, n=2, size=32)
    out = tmp_path / "run"
    refused = {
        "multiples of": cli(tiny_checkpoint, out, "--size", "30", "30"),
        "tokens": cli(tiny_checkpoint, out, "--prompt", "nuclei " * 400),
        "guidance must be a finite": cli(tiny_checkpoint, out, "--guidance", "nan"),
        "are not the model's": [*cli(tiny_checkpoint, out), "--layouts", str(pannuke), "--format", "pannuke"],
        "holds at most 5": cli(seven_class_checkpoint, out, "--export", "pannuke"),
    }
    for expected, args in refused.items():
        assert main(args) == 2, expected
        assert expected in one_line_error(capsys)
        assert not out.exists(), f"the refused run ({expected}) wrote {sorted(out.rglob('*'))}"
    assert main(cli(tiny_checkpoint, out, "--guidance", "2")) == 0
    assert plan.completed_pairs(out / "pairs") == {0, 1}


# ---------------------------------------------------------------- an incomplete pair is remade


def test_a_pair_folder_without_meta_json_is_remade(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*cli(tiny_checkpoint, out, n=3), "--json"]) == 0
    capsys.readouterr()
    before = read_sample(out / "pairs" / "pair-000001")
    (out / "pairs" / "pair-000001" / "meta.json").unlink()  # e.g. deleted by hand, or a copy cut short
    (out / "pairs" / "pair-000002" / "meta.json").unlink()
    assert main([*cli(tiny_checkpoint, out, n=3), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 2 and summary["skipped"] == 1 and summary["complete"] == 3
    assert summary["repaired"] == ["pair-000001", "pair-000002"]
    assert sorted(p.name for p in (out / "pairs").iterdir()) == [plan.pair_name(i) for i in range(3)]
    np.testing.assert_array_equal(read_sample(out / "pairs" / "pair-000001").image, before.image)
    # And a third run finds nothing to do.
    assert main([*cli(tiny_checkpoint, out, n=3), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 0


# --------------------------------------------------------------------------- an unwritable --out


@pytest.fixture
def no_generation(monkeypatch):
    """Fail the test if a pair is drawn: the refusal must come before the work."""
    import napari_cosynth.bulk.run as bulk_run

    def forbidden(*args, **kwargs):
        raise AssertionError("a pair was generated before --out was checked")

    monkeypatch.setattr(bulk_run, "run_to_end", forbidden)


def test_an_out_path_through_a_file_is_refused_before_generation(tiny_checkpoint, tmp_path, capsys,
                                                                 no_generation):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    for out in (blocker / "run", blocker):
        assert main(cli(tiny_checkpoint, out)) == 2
        err = one_line_error(capsys)
        assert "--out" in err and "notes.txt" in err and "is a file" in err
    assert blocker.read_text() == "not a folder"


def test_a_read_only_out_is_refused_before_generation(tiny_checkpoint, tmp_path, capsys, monkeypatch,
                                                      no_generation):
    # Tests run as root, whom a chmod does not stop; os.access answers as the kernel would for a user.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != locked and real_access(p, mode, **kw))
    assert main(cli(tiny_checkpoint, locked / "run")) == 2
    err = one_line_error(capsys)
    assert "--out" in err and "not writable" in err and str(locked) in err
    assert list(locked.iterdir()) == []


def test_a_read_only_file_system_is_one_line_before_generation(tiny_checkpoint, tmp_path, capsys,
                                                               monkeypatch, no_generation):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "run" / RECIPE_FILE))

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", read_only)
    assert main(cli(tiny_checkpoint, tmp_path / "run")) == 2
    err = one_line_error(capsys)
    assert "Read-only file system" in err and "--out" in err


def test_a_full_disk_is_one_line_and_the_rerun_finishes(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import contextlib

    from napari_cosynth.data import folder

    out = tmp_path / "run"
    real = folder.atomic_path
    writes = []

    @contextlib.contextmanager
    def full_after_one(path, **kwargs):
        writes.append(path)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        with real(path, **kwargs) as tmp:
            yield tmp

    monkeypatch.setattr(folder, "atomic_path", full_after_one)
    assert main(cli(tiny_checkpoint, out, n=3)) == 2
    err = one_line_error(capsys)
    assert "No space left on device" in err and "pair-000001" in err and "rerun" in err
    assert plan.completed_pairs(out / "pairs") == {0}
    assert not [p for p in (out / "pairs").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(folder, "atomic_path", real)
    assert main([*cli(tiny_checkpoint, out, n=3), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 2


# ------------------------------------------------------------------ the HoVer-Net export appears whole


def _api_run(tiny_checkpoint, out, n, exports=("folder", "hovernet")):
    pipe = CoSynthPipeline.from_pretrained(tiny_checkpoint, settings=SamplerSettings(steps=2))
    source = open_source("hardcore", None, card=pipe.card, shape=(32, 32))
    return generate_dataset(pipe, source, out, n, shape=(32, 32), base_seed=5, exports=exports)


def _finish(run) -> dict:
    while True:
        try:
            next(run)
        except StopIteration as stop:
            return stop.value


def test_the_hovernet_export_is_built_hidden_and_renamed(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    run = _api_run(tiny_checkpoint, out, 2)
    next(run)  # pair 0 is written, with its patch
    assert not (out / "hovernet").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".hovernet")]  # built hidden
    _finish(run)
    assert HovernetNpyDataset(out / "hovernet").names == ["pair-000000", "pair-000001"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".hovernet")]
    # A longer rerun leaves the earlier export whole until the new one replaces it.
    earlier = sorted(p.name for p in (out / "hovernet").iterdir())
    run = _api_run(tiny_checkpoint, out, 3)
    next(run)
    next(run)  # pair 2 is written
    assert sorted(p.name for p in (out / "hovernet").iterdir()) == earlier
    _finish(run)
    assert HovernetNpyDataset(out / "hovernet").names == [plan.pair_name(i) for i in range(3)]


# ------------------------------------------------------------------- two runs into one folder


def test_a_second_run_into_a_folder_in_use_refuses_and_deletes_nothing(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    first = _api_run(tiny_checkpoint, out, 3, exports=("folder",))
    next(first)  # the first run holds the folder and has written pair 0
    half_built = out / "pairs" / ".pair-000001.abc.tmp"  # the first run's pair in the making
    half_built.mkdir()
    recipe = (out / RECIPE_FILE).read_text()
    assert main(cli(tiny_checkpoint, out, n=3)) == 2
    err = one_line_error(capsys)
    assert "another" in err and str(os.getpid()) in err and str(out) in err
    assert half_built.is_dir() and (out / RECIPE_FILE).read_text() == recipe
    half_built.rmdir()
    assert _finish(first)["complete"] == 3
    assert main(cli(tiny_checkpoint, out, n=3)) == 0  # the folder is free again


def test_the_settings_file_is_created_exclusively(tmp_path):
    path = tmp_path / RECIPE_FILE
    atomic.write_text(path, "first")
    with pytest.raises(FileExistsError):
        atomic.write_text(path, "second", overwrite=False)
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == [RECIPE_FILE]
    atomic.write_text(tmp_path / "new.json", "made", overwrite=False)
    assert (tmp_path / "new.json").read_text() == "made"


def test_a_recipe_written_by_another_run_meanwhile_is_not_overwritten(tiny_checkpoint, tmp_path,
                                                                     monkeypatch):
    # Both runs saw no generation.json; the other one wrote its recipe first (before this one's lock).
    import napari_cosynth.bulk.run as bulk_run

    out = tmp_path / "run"
    real_lock = bulk_run.lock_folder

    def other_run_first(folder, *args, **kwargs):
        atomic.write_text(Path(folder) / RECIPE_FILE, json.dumps({"model_id": "other"}))
        return real_lock(folder, *args, **kwargs)

    monkeypatch.setattr(bulk_run, "lock_folder", other_run_first)
    with pytest.raises(CosynthError, match="an earlier run here used model_id = 'other'"):
        _finish(_api_run(tiny_checkpoint, out, 1, exports=("folder",)))
    assert json.loads((out / RECIPE_FILE).read_text()) == {"model_id": "other"}


def test_a_rerun_without_sampler_flags_continues_with_the_folders_sampler(tiny_checkpoint, tmp_path):
    from napari_cosynth.bulk.run import read_recipe
    from napari_cosynth.engine.diffusion.sampler_names import DEFAULT_SAMPLER

    old = tmp_path / "old"
    # A folder started with the earlier default (fast, 50 steps by default; 2 here): a rerun that names
    # no sampler continues it instead of being refused for another recipe.
    assert main([*cli(tiny_checkpoint, old, n=1), "--sampler", "fast"]) == 0
    assert main([*cli(tiny_checkpoint, old, n=2)]) == 0
    assert read_recipe(old)["sampler"] == "fast" and read_recipe(old)["steps"] == 2
    new = tmp_path / "new"
    assert main([*cli(tiny_checkpoint, new, n=1)]) == 0
    assert read_recipe(new)["sampler"] == DEFAULT_SAMPLER


def test_a_folder_drawn_before_the_spacing_was_recorded_continues_evenly_spaced(tiny_checkpoint, tmp_path):
    """Recipes of earlier versions record no spacing: their solvers' steps were evenly ("trailing")
    spaced, so a rerun without sampler flags continues that way and today's default is refused."""
    from napari_cosynth.bulk.run import read_recipe

    out = tmp_path / "old"
    assert main([*cli(tiny_checkpoint, out, n=1), "--sampler", "unipc", "--spacing", "trailing"]) == 0
    recipe = json.loads((out / RECIPE_FILE).read_text())
    del recipe["spacing"]
    (out / RECIPE_FILE).write_text(json.dumps(recipe))
    with pytest.raises(CosynthError, match="spacing = 'trailing', this one 'quadratic'"):
        _finish(_api_run(tiny_checkpoint, out, 2, exports=("folder",)))
    assert main(cli(tiny_checkpoint, out, n=2)) == 0
    second = read_sample(out / "pairs" / plan.pair_name(1))
    assert second.provenance["spacing"] == "trailing" and "spacing" not in read_recipe(out)


def test_a_folder_drawn_under_the_earlier_seed_rule_is_not_resumed(tiny_checkpoint, tmp_path):
    """0.1.0 drew a batch from one random stream; adding pairs under today's rule would mix datasets."""
    out = tmp_path / "old-rule"
    assert main(cli(tiny_checkpoint, out, n=1)) == 0
    recipe = json.loads((out / RECIPE_FILE).read_text())
    recipe["seed_rule"] = "pair seed = SeedSequence([base_seed, i]); batch seed = seed of its first pair"
    recipe["version"] = "0.1.0"
    (out / RECIPE_FILE).write_text(json.dumps(recipe))
    with pytest.raises(CosynthError, match="written by napari-cosynth 0.1.0, which drew pairs with another "
                                           "seed rule"):
        _finish(_api_run(tiny_checkpoint, out, 2, exports=("folder",)))


def test_a_resume_with_another_instance_cut_is_refused(tiny_checkpoint, tmp_path):
    """How nuclei are cut from the maps decides the labels, and a model's config.json may change it
    while its weights and id stay the same: a resume must not mix pairs cut two ways."""
    import shutil

    out = tmp_path / "run"
    assert main(cli(tiny_checkpoint, out, n=1)) == 0
    recipe = json.loads((out / RECIPE_FILE).read_text())
    first_cut = json.loads((out / "pairs" / plan.pair_name(0) / "meta.json").read_text())
    assert recipe["instance_recovery"] == first_cut["provenance"]["instance_recovery"]
    # A folder written before the recipe held the cut: its pairs' provenance tells how they were cut.
    del recipe["instance_recovery"]
    (out / RECIPE_FILE).write_text(json.dumps(recipe))
    assert main(cli(tiny_checkpoint, out, n=2)) == 0
    # Such a folder interrupted before its first pair holds nothing to mix with: it resumes too.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / RECIPE_FILE).write_text(json.dumps(recipe))
    assert main(cli(tiny_checkpoint, empty, n=1)) == 0
    assert plan.completed_pairs(empty / "pairs") == {0}
    recut = tmp_path / "recut-model"
    shutil.copytree(tiny_checkpoint, recut)
    config = json.loads((recut / "config.json").read_text())
    (recut / "config.json").write_text(json.dumps({**config, "separation": {"split_depth": 0.1}}))
    with pytest.raises(CosynthError, match="instance_recovery"):
        _finish(_api_run(recut, out, 3, exports=("folder",)))
    assert sorted(plan.completed_pairs(out / "pairs")) == [0, 1]
