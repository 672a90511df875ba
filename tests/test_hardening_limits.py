"""Refuse before committing work or memory (issue 13): sizes, magnifications, seeds, non-finite numbers.

The CLI tests replace the function that would start the work with one that fails the test, so a
check that came too late (or not at all) fails at once instead of hanging or allocating gigabytes.
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cosynth.cli.main import main
from napari_cosynth.errors import CheckpointError, ConfigError, CosynthError
from napari_cosynth.limits import MAX_SEED


def _work_started(*args, **kwargs):
    raise AssertionError("the work started before the bad value was refused")


def _refused(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("cosynth: error: ")
    return err


# ------------------------------------------------------------------------ sizes and magnifications


@pytest.fixture
def no_work(monkeypatch):
    import napari_cosynth.bulk.run
    import napari_cosynth.cli.generate
    import napari_cosynth.data.stats
    import napari_cosynth.layouts.process

    monkeypatch.setattr(napari_cosynth.cli.generate, "load_pipeline", _work_started)
    monkeypatch.setattr(napari_cosynth.data.stats, "dataset_stats", _work_started)
    monkeypatch.setattr(napari_cosynth.layouts.process, "load_model", _work_started)
    monkeypatch.setattr(napari_cosynth.bulk.run, "generate_dataset", _work_started)


@pytest.mark.parametrize("argv", [
    ["generate", "--out", "OUT", "--size", "60000", "60000"],
    ["generate-dataset", "--layouts", "hardcore", "--n", "1", "--out", "OUT", "--size", "60000", "60000"],
    ["layouts", "sample", "--model", "M.json", "--n", "1", "--out", "OUT", "--size", "60000", "60000"],
])
def test_a_huge_canvas_is_refused_before_work_naming_the_flag_and_limit(argv, tmp_path, capsys, no_work):
    argv = [str(tmp_path / a) if a in ("OUT", "M.json") else a for a in argv]
    err = _refused(argv, capsys)
    assert "--size" in err and "16,777,216 pixels" in err and "4096 x 4096" in err


@pytest.mark.parametrize("size", [["-8", "64"], ["64", "0"]])
def test_a_negative_or_zero_size_names_the_flag(size, tmp_path, capsys, no_work):
    err = _refused(["generate", "--out", str(tmp_path), "--size", *size], capsys)
    assert "--size: height and width must be positive" in err


def test_a_huge_magnification_is_refused_before_reading_naming_the_flag(tmp_path, capsys, no_work):
    err = _refused(["dataset", "stats", str(tmp_path), "--format", "folder", "--mag", "4000"], capsys)
    assert "--mag" in err and "4000x is above the limit of 100x" in err
    err = _refused(["dataset", "stats", str(tmp_path), "--format", "folder", "--mag", "0"], capsys)
    assert "--mag must be a positive number" in err
    err = _refused(["dataset", "stats", str(tmp_path), "--format", "folder", "--mag", "nan"], capsys)
    assert "--mag must be a finite number" in err


def test_the_library_refuses_a_resampled_image_too_large_before_allocating(monkeypatch):
    from data_fixtures import disk_instances
    from napari_cosynth.labels import resample
    from napari_cosynth.sample import Sample
    from napari_cosynth.vocabularies import CONSEP

    monkeypatch.setattr(resample, "_resample_image", _work_started)
    sample = Sample(name="big", image=np.zeros((100, 100, 3), np.uint8),
                    instances=disk_instances((100, 100), [(50, 50)]), classes=np.array([1]),
                    vocabulary=CONSEP, magnification=1.0)
    with pytest.raises(CosynthError, match=r"big: 100x100 at 1x resampled to 100x would be 10000 x 10000"):
        resample.resample_sample(sample, 100.0)


def test_a_dataset_opened_at_a_huge_magnification_is_refused(tmp_path):
    from evaluate_fixtures import write_tiny_folder
    from napari_cosynth.data.registry import open_dataset

    folder = write_tiny_folder(tmp_path / "pairs", n=2)
    with pytest.raises(CosynthError, match="4000x is above the limit of 100x"):
        open_dataset(folder, "folder", magnification=4000)


# ---------------------------------------------------------------------------------------- seeds

_SEED_COMMANDS = {
    "generate": ["generate", "--out", "OUT", "--seed"],
    "generate-dataset": ["generate-dataset", "--layouts", "hardcore", "--n", "1", "--out", "OUT", "--seed"],
    "adherence": ["evaluate", "adherence", "--model", "default", "--data", "D", "--format", "folder", "--seed"],
    "grid": ["evaluate", "grid", "--model", "default", "--data", "D", "--format", "folder", "--out", "OUT",
             "--seed"],
    "layouts fit": ["layouts", "fit", "--data", "D", "--format", "folder", "--out", "OUT", "--seed"],
    "layouts sample": ["layouts", "sample", "--model", "D", "--n", "1", "--size", "32", "32", "--out", "OUT",
                       "--seed"],
    "segmenter train": ["segmenter", "train", "--data", "D", "--format", "folder", "--config", "C",
                        "--out", "OUT", "--seed"],
    "downstream": ["evaluate", "downstream", "--train", "D", "--test", "D", "--format", "folder",
                   "--segmenter-config", "C", "--out", "OUT", "--seeds", "0"],
}


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(MAX_SEED + 1)])
@pytest.mark.parametrize("command", sorted(_SEED_COMMANDS))
def test_every_command_refuses_a_bad_seed_with_the_same_line(command, seed, tmp_path, capsys, monkeypatch):
    argv = [str(tmp_path / a) if a in ("OUT", "D", "C") else a for a in _SEED_COMMANDS[command]]
    for module in ("generate", "bulk", "evaluate", "layouts", "segmenter", "downstream"):
        mod = __import__(f"napari_cosynth.cli.{module}", fromlist=["x"])
        for name in dir(mod):
            if name.startswith(("cmd_", "run_")):
                monkeypatch.setattr(mod, name, _work_started)
    err = _refused([*argv, seed], capsys)
    flag = "--seeds" if command == "downstream" else "--seed"
    assert f"{flag}: a seed is a whole number from 0 to {MAX_SEED}" in err
    assert seed in err


def test_the_configs_seeds_have_the_same_bound():
    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.segmenter.config import SegmenterConfig

    with pytest.raises(ConfigError, match=f"train.seed: must be <= {MAX_SEED}"):
        CosynthConfig().with_overrides({"train.seed": 2**64})
    with pytest.raises(CosynthError, match="segmenter config: seed: a seed is a whole number"):
        SegmenterConfig(seed=-1)


# ------------------------------------------------------------------------------ non-finite numbers


def _float_keys(section_cls, prefix: str) -> list[str]:
    from napari_cosynth.config_models import ConfigModel

    keys = []
    for name, f in section_cls.model_fields.items():
        tp = f.annotation
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(tp, type) and issubclass(tp, ConfigModel):
            keys += _float_keys(tp, key)
        elif float in (tp, *typing.get_args(tp)):
            keys.append(key)
    return keys


def _all_float_keys() -> list[str]:
    from napari_cosynth.engine.config import CosynthConfig

    return _float_keys(CosynthConfig, "")


def test_the_config_has_the_float_keys_the_issue_names():
    keys = _all_float_keys()
    for key in ("train.lr", "train.ema_decay", "diffusion.drop_text", "diffusion.loss_weights.image"):
        assert key in keys


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("key", _all_float_keys())
def test_every_float_setting_refuses_non_finite_values(key, value):
    from napari_cosynth.engine.config import CosynthConfig

    with pytest.raises(ConfigError, match=f"^{key}: must be a finite number"):
        CosynthConfig().with_overrides({key: value})


def test_yaml_nan_and_a_checkpoint_config_with_nan_are_refused(tmp_path, tiny_checkpoint):
    import shutil

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.networks.checkpoint import load_model
    from napari_cosynth.segmenter.config import SegmenterConfig

    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: .nan\n")
    with pytest.raises(ConfigError, match="train.lr: must be a finite number"):
        CosynthConfig.from_yaml(config)
    with pytest.raises(ConfigError, match="lr"):
        SegmenterConfig(lr=float("nan"))
    model = Path(shutil.copytree(tiny_checkpoint, tmp_path / "m"))
    meta = json.loads((model / "config.json").read_text())
    meta["config"]["diffusion"]["drop_text"] = float("nan")
    (model / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="diffusion.drop_text: must be a finite number"):
        load_model(model)


def _nan_weights(tiny_checkpoint, tmp_path) -> Path:
    import hashlib
    import shutil

    from safetensors.torch import load_file, save_file

    model = Path(shutil.copytree(tiny_checkpoint, tmp_path / "nan-model"))
    tensors = load_file(model / "model.safetensors")
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(model / "model.safetensors"))
    meta = json.loads((model / "config.json").read_text())
    meta["weights_sha256"] = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    (model / "config.json").write_text(json.dumps(meta))
    return model


def test_a_model_with_non_finite_weights_is_neither_loaded_nor_saved(tiny_checkpoint, tmp_path):
    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.networks.checkpoint import load_model, save_model

    folder = _nan_weights(tiny_checkpoint, tmp_path)
    with pytest.raises(CheckpointError, match="not loaded: its weights are not finite"):
        load_model(folder)
    model, meta = load_model(tiny_checkpoint)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(CheckpointError, match="not written: its weights are not finite"):
        save_model(tmp_path / "out", model, CosynthConfig.from_dict(meta["config"]),
                   {"classes": meta["classes"]})
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_run_whose_loss_becomes_nan_stops_keeping_the_last_good_checkpoint(tmp_path, monkeypatch):
    from napari_cosynth.engine.diffusion.joint import JointDiffusion
    from napari_cosynth.engine.finite import TrainingDivergedError
    from napari_cosynth.engine.networks.checkpoint import load_model
    from napari_cosynth.engine.training.train import list_checkpoints, train
    from test_engine_train import tiny_config, write_tiny_consep

    original = JointDiffusion.training_losses
    calls = []

    def poisoned(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) >= 3:  # from step 3 on, as a learning rate far too high would
            losses = dict(losses, total=losses["total"] * float("nan"))
        return losses

    monkeypatch.setattr(JointDiffusion, "training_losses", poisoned)
    data = write_tiny_consep(tmp_path / "data")
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as err:
        list(train(tiny_config(data, steps=6, checkpoint_every=2), out, device="cpu"))
    message = str(err.value)
    assert "step 3" in message and "step-0000002" in message and "--resume" in message
    assert [p.name for p in list_checkpoints(out)] == ["step-0000002"]
    model, _ = load_model(out / "checkpoints" / "step-0000002")
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    rows = (out / "loss.csv").read_text().splitlines()[1:]
    assert rows and all(math.isfinite(float(r.split(",")[1])) for r in rows)


def test_a_canvas_whose_generation_would_not_fit_in_free_memory_is_refused(
        tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import psutil

    import napari_cosynth.engine.pipeline.generate

    class _Memory:
        available = 2**30  # 1 GiB free

    monkeypatch.setattr(psutil, "virtual_memory", lambda: _Memory())
    monkeypatch.setattr(napari_cosynth.engine.pipeline.generate, "generate", _work_started)
    err = _refused(["generate", "--model", str(tiny_checkpoint), "--size", "2048", "2048", "--device", "cpu",
                    "--out", str(tmp_path / "out")], capsys)
    assert "--size: generating 1 pair(s) of 2048 x 2048" in err and "1.0 GiB free on cpu" in err
    side = int(err.split("fits now is about ")[1].split(" x ")[0])
    assert 0 < side < 2048
    # A canvas of that side fits the same estimate: the check lets it through to the work.
    with pytest.raises(AssertionError, match="the work started"):
        main(["generate", "--model", str(tiny_checkpoint), "--size", str(side), str(side), "--device", "cpu",
              "--out", str(tmp_path / "out"), "--quiet"])


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_an_image_file_declaring_a_huge_canvas_is_refused_before_decoding(kind, tmp_path, monkeypatch):
    import imageio.v3 as iio
    import tifffile
    from PIL import Image

    from napari_cosynth.data.base import read_image

    path = tmp_path / f"bomb.{kind}"
    if kind == "png":
        Image.new("1", (10000, 9000)).save(path)  # 90 M pixels in a few kB
    else:
        tifffile.imwrite(path, shape=(9000, 10000, 3), dtype=np.uint8)  # sparse: nothing written
    monkeypatch.setattr(iio, "imread", _work_started)
    monkeypatch.setattr(tifffile, "imread", _work_started)
    with pytest.raises(CosynthError, match=r"bomb\.(png|tif): the image would be 9000 x 10000 pixels"):
        read_image(path)


def test_a_model_config_that_does_not_fit_its_weights_is_refused_before_allocating(
        tiny_checkpoint, tmp_path, monkeypatch):
    import shutil

    from napari_cosynth.engine.networks import checkpoint

    model = Path(shutil.copytree(tiny_checkpoint, tmp_path / "m"))
    meta = json.loads((model / "config.json").read_text())
    meta["config"]["model"]["base_channels"] = 4096  # ~10 GB per convolution at the lowest level
    (model / "config.json").write_text(json.dumps(meta))
    real = checkpoint.CoSynNet

    def only_on_meta(*args, **kwargs):
        if torch.get_default_device().type != "meta":
            raise AssertionError("a network was allocated before the weights' shapes were checked")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "CoSynNet", only_on_meta)
    with pytest.raises(CheckpointError, match="config.json does not match model.safetensors"):
        checkpoint.load_model(model)


def test_a_segmenter_config_that_does_not_fit_its_weights_is_refused_before_allocating(tmp_path, monkeypatch):
    from napari_cosynth.segmenter import model as seg
    from napari_cosynth.segmenter.config import SegmenterConfig
    from napari_cosynth.vocabularies import CONSEP

    config = SegmenterConfig(encoder_depth=3, decoder_channels=(16, 8, 4), crop_size=32)
    folder = tmp_path / "s"
    seg.save_segmenter(folder, seg.SegmenterNet(config, CONSEP.n_classes), CONSEP, 20.0, {})
    meta = json.loads((folder / seg.META).read_text())
    meta["config"]["decoder_channels"] = [4096] * len(meta["config"]["decoder_channels"])
    (folder / seg.META).write_text(json.dumps(meta))
    real = seg.SegmenterNet

    def only_on_meta(*args, **kwargs):
        if torch.get_default_device().type != "meta":
            raise AssertionError("a network was allocated before the weights' shapes were checked")
        return real(*args, **kwargs)

    monkeypatch.setattr(seg, "SegmenterNet", only_on_meta)
    with pytest.raises(CheckpointError, match="weights do not fit the recorded config"):
        seg.load_segmenter(folder)


@pytest.mark.parametrize("argv, flag", [
    (["generate", "--out", "OUT", "--guidance", "nan"], "--guidance"),
    (["generate-dataset", "--layouts", "hardcore", "--n", "1", "--out", "OUT", "--guidance", "inf"], "--guidance"),
    (["layouts", "fit", "--data", "D", "--format", "folder", "--out", "OUT", "--radius=-inf"], "--radius"),
    (["evaluate", "downstream", "--train", "D", "--test", "D", "--format", "folder", "--segmenter-config", "C",
      "--out", "OUT", "--fractions", "0.5", "nan"], "--fractions"),
])
def test_every_number_flag_refuses_nan_and_infinity(argv, flag, tmp_path, capsys, no_work, monkeypatch):
    import napari_cosynth.cli.downstream
    import napari_cosynth.cli.layouts

    monkeypatch.setattr(napari_cosynth.cli.layouts, "cmd_fit", _work_started)
    monkeypatch.setattr(napari_cosynth.cli.downstream, "cmd_downstream", _work_started, raising=False)
    argv = [str(tmp_path / a) if a in ("OUT", "D", "C") else a for a in argv]
    err = _refused(argv, capsys)
    assert f"{flag} must be a finite number" in err and "Traceback" not in err


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_the_widget_and_the_python_api_use_the_same_seed_check(seed, tiny_checkpoint):
    from napari_cosynth.engine.pipeline.pipeline import CoSynthPipeline
    from napari_cosynth.napari.controls import parse_seed
    from napari_cosynth.sample import PointTable

    with pytest.raises(CosynthError, match="seed: a seed is a whole number from 0 to"):
        parse_seed(str(seed))
    pipe = CoSynthPipeline.from_pretrained(tiny_checkpoint)
    points = PointTable([[8.0, 8.0]], [1])
    with pytest.raises(CosynthError, match="seed: a seed is a whole number from 0 to"):
        pipe.generate(points, size=(32, 32), seed=seed)
    assert parse_seed(str(2**63 - 1)) == 2**63 - 1
