"""The downstream experiment: subsets, the three arms, resume, aggregation maths, the report and the CLI."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_cosynth.bulk.sources import LayoutSource
from napari_cosynth.cli.main import main
from napari_cosynth.engine.pipeline.pipeline import CoSynthPipeline
from napari_cosynth.errors import CosynthError, DatasetError
from napari_cosynth.evaluate.downstream import JitteredLayouts, Synthesiser, run_downstream
from napari_cosynth.evaluate.downstream_plan import (
    FIXED_SETTINGS,
    PER_RUN_SEGMENTER,
    PLAN_FILE,
    SYNTHETIC_DIR,
    DownstreamPlan,
    checked_plan,
    choose_subsets,
    comparable,
    group_tiles,
    subset_size,
)
from napari_cosynth.evaluate.downstream_report import mean_sd, merged_report, paired_deltas, summarise
from napari_cosynth.progress import relay, run_to_end
from napari_cosynth.sample import PointTable
from napari_cosynth.segmenter import SegmenterConfig
from segmenter_fixtures import write_disc_dataset

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "configs" / "segmenter-tiny.yaml"
# Three steps with a checkpoint at step 2: enough to see resume and checkpoint pruning at work.
TINY = SegmenterConfig.from_yaml(TINY_YAML).with_(steps=3, checkpoint_every=2, batch_size=2)
ARMS = ("real", "augment", "synthetic")


def drive(gen):
    """Every progress item of a core generator, and its return value."""
    progress = []
    result = run_to_end(relay(gen, lambda p: progress.append(p) or p))
    return progress, result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("downstream-data")
    return write_disc_dataset(root / "train", seeds=range(8)), write_disc_dataset(root / "test", seeds=(20, 21))


@pytest.fixture(scope="module")
def synthesiser(tiny_checkpoint):
    return Synthesiser(CoSynthPipeline.from_pretrained(tiny_checkpoint), (32, 32))


def plan_for(data, **changes) -> DownstreamPlan:
    train, test = data
    settings = {"train": str(train), "test": str(test), "format": "folder", "fractions": (1.0, 0.5),
                "seeds": (0, 1), "arms": ARMS, "sampler_steps": 2}
    settings.update(changes)
    return DownstreamPlan(**settings)


@pytest.fixture(scope="module")
def experiment(data, synthesiser, tmp_path_factory):
    out = tmp_path_factory.mktemp("downstream") / "exp"
    progress, report = drive(run_downstream(plan_for(data), TINY, out, synthesiser=synthesiser))
    return out, progress, report


def run_json(out, fraction, arm, seed) -> dict:
    return json.loads((out / f"fraction-{fraction:g}" / f"{arm}-seed-{seed}" / "run.json").read_text())


# ------------------------------------------------------------------------------------------- subsets


def test_subsets_are_deterministic_nested_and_never_empty():
    names = [f"s{i:02d}" for i in range(27)]
    fractions = (1.0, 0.5, 0.25, 0.1, 0.01)
    subsets = choose_subsets(names, fractions, seed=3)
    assert subsets == choose_subsets(names, fractions, seed=3)
    assert subsets != choose_subsets(names, fractions, seed=4)
    assert [len(subsets[f]) for f in fractions] == [27, 14, 7, 3, 1]  # round halves up, at least 1
    assert subsets[1.0] == names
    for big, small in itertools.pairwise(fractions):
        assert set(subsets[small]) <= set(subsets[big])
    # A subset keeps the reader's order.
    assert subsets[0.25] == sorted(subsets[0.25])
    assert subset_size(0.1, 27) == 3 and subset_size(0.001, 5) == 1 and subset_size(1.0, 5) == 5


def test_tiles_stay_whole():
    names = [f"train_{t}_{k:03d}" for t in (1, 2, 3, 4) for k in range(4)]
    tiles = group_tiles(names, r"^train_(\d+)_")
    assert list(tiles) == ["1", "2", "3", "4"] and all(len(v) == 4 for v in tiles.values())
    subsets = choose_subsets(names, (0.5, 0.25), seed=0, tile_pattern=r"^train_(\d+)_")
    assert len(subsets[0.5]) == 8 and len(subsets[0.25]) == 4
    assert len({n.split("_")[1] for n in subsets[0.25]}) == 1
    with pytest.raises(CosynthError, match="does not match --tile-pattern"):
        group_tiles([*names, "other"], r"^train_(\d+)_")
    with pytest.raises(CosynthError, match="not a regular expression"):
        group_tiles(names, "(")


def test_jittered_layouts_move_points_but_keep_them():
    class Fixed(LayoutSource):  # one table for every pair
        def layout(self, index, seed):
            return PointTable([[5.0, 5.0], [20.0, 30.0], [0.0, 31.0]], [1, 2, 3])

        def describe(self):
            return {"kind": "fixed"}

    source = JitteredLayouts(Fixed(), 2.0, (32, 32))
    a, b = source.layout(0, 7), source.layout(0, 7)
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.classes, [1, 2, 3])
    assert not np.allclose(a.xy, Fixed().layout(0, 7).xy) and not a.outside((32, 32)).any()
    assert source.describe() == {"kind": "fixed", "jitter_px": 2.0}


def test_a_subset_is_read_in_place_by_name(data):
    from napari_cosynth.bulk.sources import DatasetLayouts
    from napari_cosynth.data.registry import open_dataset
    from napari_cosynth.segmenter.data import load_pool
    from napari_cosynth.vocabularies import CONSEP

    train, _ = data
    names = open_dataset(train, "folder").names
    pool = load_pool(train, "folder", samples=[names[5], names[2]])
    assert len(pool) == 2 and pool.source == str(train)
    source = DatasetLayouts(train, "folder", (48, 48), 20.0, CONSEP, samples=[names[5], names[2]])
    whole = open_dataset(train, "folder")
    # Pair i takes subset sample i mod 2: names[5], names[2], names[5], ...
    np.testing.assert_array_equal(source.layout(2, 0).xy, whole[5].point_table().xy)
    np.testing.assert_array_equal(source.layout(1, 0).xy, whole[2].point_table().xy)
    assert source.describe()["subset"] == [names[5], names[2]] and source.describe()["samples"] == 2
    with pytest.raises(DatasetError, match="no sample called 'disc-99'"):
        load_pool(train, "folder", samples=["disc-99"])
    with pytest.raises(DatasetError, match="empty"):
        load_pool(train, "folder", samples=[])


# ---------------------------------------------------------------------------------- the experiment


@pytest.mark.slow
def test_every_run_has_a_result_with_the_same_steps(experiment):
    out, progress, report = experiment
    assert progress[-1].step == progress[-1].total == 2 * 2 * 3 * 3
    for fraction in (1.0, 0.5):
        for arm in ARMS:
            for seed in (0, 1):
                folder = out / f"fraction-{fraction:g}" / f"{arm}-seed-{seed}"
                result = json.loads((folder / "result.json").read_text())
                assert (result["fraction"], result["arm"], result["seed"], result["steps"]) == (
                    fraction, arm, seed, 3)
                assert 0.0 <= result["scores"]["dice"] <= 1.0 and result["scores"]["n_images"] == 2
                # Same steps in every arm; only the final checkpoint is kept.
                assert [p.name for p in (folder / "checkpoints").iterdir()] == ["step-0000003"]
                assert run_json(out, fraction, arm, seed)["config"]["seed"] == seed
    assert len(report["runs"]) == 12


@pytest.mark.slow
def test_arms_differ_only_in_their_data_and_augmentation(experiment):
    out, _, _ = experiment
    real, augment, synthetic = (run_json(out, 0.5, arm, 1) for arm in ARMS)
    assert not real["config"]["colour_augment"] and augment["config"]["colour_augment"]
    assert not synthetic["config"]["colour_augment"]
    assert real["extras"] == augment["extras"] == []
    assert synthetic["extras"] == [{"path": str(out / "fraction-0.5" / "synthetic-pairs" / "pairs"),
                                    "format": "folder"}]
    configs = [{k: v for k, v in r["config"].items() if k != "colour_augment"} for r in (real, augment, synthetic)]
    assert configs[0] == configs[1] == configs[2]


@pytest.mark.slow
def test_subsets_reach_the_trainer_and_the_generator(experiment):
    out, _, _ = experiment
    plan = json.loads((out / "plan.json").read_text())
    subsets = {s["fraction"]: s for s in plan["subsets"]}
    whole, half = subsets[1.0]["names"], subsets[0.5]["names"]
    assert len(whole) == 8 and len(half) == 4 and set(half) <= set(whole)
    for arm in ARMS:
        assert run_json(out, 0.5, arm, 0)["data"]["samples"] == half
    # Synthetic pairs: as many as the subset's samples, from the subset's layouts only.
    recipe = json.loads((out / "fraction-0.5" / "synthetic-pairs" / "generation.json").read_text())
    assert recipe["layouts"]["subset"] == half and recipe["layouts"]["samples"] == 4
    assert len(list((out / "fraction-0.5" / "synthetic-pairs" / "pairs").iterdir())) == 4
    assert len(list((out / "fraction-1" / "synthetic-pairs" / "pairs").iterdir())) == 8


@pytest.mark.slow
def test_report_matches_the_runs_and_has_a_plot(experiment):
    out, _, report = experiment
    assert json.loads((out / "report.json").read_text())["summary"] == report["summary"]
    row = next(r for r in report["summary"] if r["fraction"] == 0.5 and r["arm"] == "augment")
    dice = [json.loads((out / "fraction-0.5" / f"augment-seed-{s}" / "result.json").read_text())["scores"]["dice"]
            for s in (0, 1)]
    assert row["n"] == 2 and math.isclose(row["dice_mean"], np.mean(dice))
    assert math.isclose(row["dice_sd"], abs(dice[0] - dice[1]) / math.sqrt(2))
    png = (out / "downstream.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "report.md").read_text()
    assert "](downstream.png)" in md and "| 0.5 | synthetic - real | 2 |" in md


def _split_by_fraction(out: Path, root: Path) -> list[Path]:
    """Copies of an experiment folder holding one fraction each, as parallel processes leave them."""
    plan = json.loads((out / "plan.json").read_text())
    folders = []
    for subset in plan["subsets"]:
        folder = root / f"only-{subset['fraction']:g}"
        shutil.copytree(out / f"fraction-{subset['fraction']:g}", folder / f"fraction-{subset['fraction']:g}")
        (folder / "plan.json").write_text(json.dumps(dict(plan, subsets=[subset])))
        folders.append(folder)
    return folders


@pytest.mark.slow
def test_folders_of_different_fractions_merge_into_one_report(experiment, tmp_path, capsys):
    out, _, report = experiment
    folders = _split_by_fraction(out, tmp_path)
    merged = merged_report(folders)
    key = lambda r: (r["fraction"], r["arm"])
    assert sorted(merged["summary"], key=key) == sorted(report["summary"], key=key)
    assert sorted(merged["table"], key=key) == sorted(report["table"], key=key)
    assert {r["arm"]: r["synthetic pairs"] for r in merged["table"] if r["fraction"] == 0.5} == {
        "real": 0, "augment": 0, "synthetic": 4}
    assert merged["experiment"]["folders"] == {"1": str(folders[0]), "0.5": str(folders[1])}

    assert main(["evaluate", "downstream-report", *map(str, folders), "--out", str(tmp_path / "all")]) == 0
    assert "1 synthetic" in capsys.readouterr().out
    assert (tmp_path / "all" / "downstream.png").is_file() and (tmp_path / "all" / "report.md").is_file()


@pytest.mark.slow
def test_merging_refuses_overlaps_and_other_settings(experiment, tmp_path, capsys):
    out, _, _ = experiment
    folders = _split_by_fraction(out, tmp_path)
    with pytest.raises(CosynthError, match="fraction 1 has runs in both"):
        merged_report([folders[0], folders[0]])
    plan = json.loads((folders[1] / "plan.json").read_text())
    (folders[1] / "plan.json").write_text(json.dumps(dict(plan, guidance=9.0)))
    with pytest.raises(CosynthError, match="guidance is 9.0"):
        merged_report(folders)
    assert main(["evaluate", "downstream-report", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a downstream experiment folder" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_skips_finished_runs(experiment, data, synthesiser):
    out, _, report = experiment
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    progress, again = drive(run_downstream(plan_for(data), TINY, out, synthesiser=synthesiser))
    assert all(p.detail in ("done", "") or p.detail.startswith("synthetic") for p in progress)
    assert not any("step" in p.detail and "loss" in p.detail for p in progress)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == stamps
    assert again["summary"] == report["summary"]


@pytest.mark.slow
def test_a_rerun_with_fewer_fractions_keeps_the_others_in_the_plan(experiment, data, tmp_path):
    out, _, _ = experiment
    folder = tmp_path / "exp"
    shutil.copytree(out, folder)
    drive(run_downstream(plan_for(data, fractions=(0.5,), arms=("real",), seeds=(0,)), TINY, folder))
    plan = json.loads((folder / "plan.json").read_text())
    assert sorted(s["fraction"] for s in plan["subsets"]) == [0.5, 1.0]


@pytest.mark.slow
def test_changed_settings_are_refused(experiment, data, synthesiser):
    out, _, _ = experiment
    with pytest.raises(CosynthError, match="subset_seed was 0, now 5"):
        next(run_downstream(plan_for(data, subset_seed=5), TINY, out, synthesiser=synthesiser))
    with pytest.raises(CosynthError, match="steps"):
        next(run_downstream(plan_for(data, segmenter_steps=4), TINY, out, synthesiser=synthesiser))
    with pytest.raises(CosynthError, match="segmenter was"):
        next(run_downstream(plan_for(data), TINY.with_(lr=0.5), out, synthesiser=synthesiser))
    with pytest.raises(CosynthError, match="segmenter was"):
        next(run_downstream(plan_for(data), TINY.with_(norm_recalibration=2), out, synthesiser=synthesiser))
    # Checkpointing or logging more often moves no number: such a config resumes the folder.
    progress, _ = drive(run_downstream(plan_for(data), TINY.with_(checkpoint_every=1, log_every=1), out,
                                       synthesiser=synthesiser))
    assert not any("loss" in p.detail for p in progress)  # every run was already finished


def test_a_plan_recorded_before_a_segmenter_setting_existed_compares_with_its_default():
    now = {k: v for k, v in TINY.to_dict().items() if k not in PER_RUN_SEGMENTER}
    before = {k: v for k, v in now.items() if k != "norm_recalibration"}
    assert comparable("segmenter", before) == comparable("segmenter", now)
    assert comparable("segmenter", before) != comparable("segmenter", {**now, "norm_recalibration": 3})


def _record(**changes) -> dict:
    record = dict.fromkeys(FIXED_SETTINGS)
    record.update(train="t", test="v", format="folder", sampler="unipc", guidance=2.0, model_id="m",
                  arms=["real", "synthetic"], subsets=[{"fraction": 0.5, "names": ["a"]}])
    record.update(changes)
    return record


def test_sampler_settings_bind_a_rerun_only_where_pairs_were_drawn(tmp_path):
    (tmp_path / PLAN_FILE).write_text(json.dumps(_record(sampler="fast", arms=["real"])))
    # No pairs in the folder: a real-only rerun under today's default sampler continues it, keeping the
    # folder's record, and so does a rerun that now adds the synthetic arm with its own sampler.
    assert checked_plan(tmp_path, _record(arms=["real"]))["sampler"] == "fast"
    assert checked_plan(tmp_path, _record())["sampler"] == "unipc"
    (tmp_path / "fraction-0.5" / SYNTHETIC_DIR).mkdir(parents=True)
    (tmp_path / PLAN_FILE).write_text(json.dumps(_record(sampler="fast")))
    with pytest.raises(CosynthError, match="sampler was 'fast', now 'unipc'"):
        checked_plan(tmp_path, _record())
    assert checked_plan(tmp_path, _record(arms=["real"]))["sampler"] == "fast"
    with pytest.raises(CosynthError, match="subset_seed"):  # what decides the real arms still binds
        checked_plan(tmp_path, _record(arms=["real"], subset_seed=3))


def test_pairs_drawn_before_the_spacing_was_recorded_bind_it_to_trailing(tmp_path):
    (tmp_path / "fraction-0.5" / SYNTHETIC_DIR).mkdir(parents=True)
    (tmp_path / PLAN_FILE).write_text(json.dumps({k: v for k, v in _record().items() if k != "sampler_spacing"}))
    with pytest.raises(CosynthError, match="sampler_spacing was 'trailing', now 'quadratic'"):
        checked_plan(tmp_path, _record(sampler_spacing="quadratic"))
    assert checked_plan(tmp_path, _record(sampler_spacing="trailing"))["sampler_spacing"] == "trailing"


def test_an_interrupted_run_continues_from_its_checkpoint(data, tmp_path):
    plan = plan_for(data, fractions=(0.5,), seeds=(0,), arms=("real",))
    gen = run_downstream(plan, TINY, tmp_path / "exp")
    for progress in gen:
        if progress.step == 2:
            break
    gen.close()  # what Ctrl-C does to the CLI's loop
    folder = tmp_path / "exp" / "fraction-0.5" / "real-seed-0"
    assert not (folder / "result.json").exists()
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["step-0000002"]
    progress, report = drive(run_downstream(plan, TINY, tmp_path / "exp"))
    trained = [p for p in progress if "loss" in p.detail]
    assert [p.step for p in trained] == [3]
    assert len(report["runs"]) == 1 and (folder / "result.json").is_file()


@pytest.mark.slow
def test_generated_layouts_come_from_a_model_fitted_on_the_subset(data, synthesiser, tmp_path):
    plan = plan_for(data, fractions=(0.5,), seeds=(0,), arms=("synthetic",), layouts="generated",
                    fit_iterations=0, synthetic_pairs=3)
    drive(run_downstream(plan, TINY.with_(steps=1), tmp_path / "exp", synthesiser=synthesiser))
    fitted = json.loads((tmp_path / "exp" / "fraction-0.5" / "layout-model.json").read_text())
    assert fitted["fit_info"]["n_layouts"] == 4 and fitted["magnification"] == 20.0
    recipe = json.loads((tmp_path / "exp" / "fraction-0.5" / "synthetic-pairs" / "generation.json").read_text())
    assert recipe["layouts"]["kind"] == "generated"
    assert len(list((tmp_path / "exp" / "fraction-0.5" / "synthetic-pairs" / "pairs").iterdir())) == 3
    # A later rerun of the real arm alone needs no model, and the plan keeps the one the pairs came from.
    real_only = plan_for(data, fractions=(0.5,), seeds=(0,), arms=("real",), layouts="generated",
                         fit_iterations=0, synthetic_pairs=3)
    _, report = drive(run_downstream(real_only, TINY.with_(steps=1), tmp_path / "exp"))
    assert [r["arm"] for r in report["runs"]] == ["real"]
    assert json.loads((tmp_path / "exp" / "plan.json").read_text())["model_id"] == "tiny-test"
    assert run_json(tmp_path / "exp", 0.5, "real", 0)["magnification"] == 20.0  # the model's, as before


def test_shipped_downstream_config_loads():
    config = SegmenterConfig.from_yaml(REPO / "configs" / "segmenter-downstream.yaml")
    assert config.crop_size % config.size_multiple == 0 and not config.colour_augment
    assert config.steps % config.checkpoint_every == 0  # the last checkpoint is the final step


# ------------------------------------------------------------------------------------- aggregation


def _result(fraction, arm, seed, dice, acc=0.5):
    return {"fraction": fraction, "arm": arm, "seed": seed,
            "scores": {"dice": dice, "aji": 0.1 * seed, "pq": 0.3, "f_d": 0.6, "acc": acc}}


def test_means_sds_and_paired_deltas_by_hand():
    results = [_result(1.0, "real", 0, 0.50), _result(1.0, "real", 1, 0.70), _result(1.0, "real", 2, 0.60),
               _result(1.0, "synthetic", 0, 0.55), _result(1.0, "synthetic", 1, 0.80),
               _result(1.0, "synthetic", 2, 0.60), _result(0.1, "real", 0, 0.40),
               _result(0.1, "augment", 0, 0.30)]
    rows = {(r["fraction"], r["arm"]): r for r in summarise(results)}
    real = rows[(1.0, "real")]
    assert real["n"] == 3 and math.isclose(real["dice_mean"], 0.6)
    assert math.isclose(real["dice_sd"], 0.1)  # deviations -0.1, 0.1, 0: sqrt(0.02 / 2)
    assert math.isclose(real["aji_mean"], 0.1) and math.isclose(real["aji_sd"], 0.1)
    assert real["pq_sd"] == 0.0
    assert rows[(0.1, "augment")]["n"] == 1 and rows[(0.1, "augment")]["dice_sd"] is None
    deltas = {(r["fraction"], r["arm"]): r for r in paired_deltas(results)}
    syn = deltas[(1.0, "synthetic")]
    # Paired differences 0.05, 0.10, 0.00: mean 0.05, sd sqrt((0 + 0.0025 + 0.0025) / 2) = 0.05.
    assert syn["n"] == 3 and math.isclose(syn["dice_delta"], 0.05) and math.isclose(syn["dice_delta_sd"], 0.05)
    assert math.isclose(deltas[(0.1, "augment")]["dice_delta"], -0.1)
    assert deltas[(0.1, "augment")]["dice_delta_sd"] is None
    assert (1.0, "real") not in deltas
    assert mean_sd([]) == (None, None)


# ------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("changes, message", [
    ({"fractions": (0.0,)}, r"\(0, 1\]"),
    ({"fractions": (1.5, 0.5)}, r"\(0, 1\]"),
    ({"arms": ("real", "mixup")}, "unknown arm 'mixup'"),
    ({"seeds": (0, 0)}, "seeds lists a value twice"),
    ({"seeds": (-1,)}, "seeds must be"),
    ({"layouts": "hardcore"}, "--layouts"),
    ({"jitter": -1.0}, "--jitter"),
    ({"synthetic_pairs": 0}, "--synthetic-pairs"),
])
def test_bad_plans_are_refused(data, changes, message):
    with pytest.raises(CosynthError, match=message):
        plan_for(data, **changes)


def test_bad_experiments_are_refused(data, synthesiser, tmp_path):
    with pytest.raises(CosynthError, match="--model"):
        next(run_downstream(plan_for(data), TINY, tmp_path / "a"))
    with pytest.raises(CosynthError, match="smaller than the segmenter's 64 px crops"):
        next(run_downstream(plan_for(data), TINY.with_(crop_size=64), tmp_path / "b", synthesiser=synthesiser))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CosynthError, match="no samples"):
        next(run_downstream(plan_for(data, train=str(tmp_path / "empty"), arms=("real",)), TINY, tmp_path / "c"))
    with pytest.raises(CosynthError, match="does not match --tile-pattern"):
        next(run_downstream(plan_for(data, tile_pattern="^train_", arms=("real",)), TINY, tmp_path / "d"))
    with pytest.raises(DatasetError, match="no such file"):
        next(run_downstream(plan_for(data, train=str(tmp_path / "nowhere"), arms=("real",)), TINY, tmp_path / "e"))


def test_cli_runs_and_reports_errors_in_one_line(data, tmp_path, capsys):
    train, test = data
    args = ["evaluate", "downstream", "--train", str(train), "--test", str(test), "--format", "folder",
            "--segmenter-config", str(TINY_YAML), "--segmenter-steps", "2", "--arms", "real", "augment",
            "--fractions", "0.25", "--seeds", "3", "--out", str(tmp_path / "exp"), "--quiet"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["fraction"], r["arm"], r["seed"]) for r in report["runs"]] == [(0.25, "real", 3), (0.25, "augment", 3)]
    assert report["experiment"]["segmenter_steps"] == 2
    assert json.loads((tmp_path / "exp" / "plan.json").read_text())["subsets"][0]["samples"] == 2
    assert main([*args[:-3], "--out", str(tmp_path / "x"), "--fractions", "0"]) == 2
    assert "fractions must lie in (0, 1]" in capsys.readouterr().err
    assert main([*args, "--arms", "synthetic"]) == 2
    assert "--model" in capsys.readouterr().err
