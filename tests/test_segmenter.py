"""The segmenter: config checks, training (loss falls, exact resume), crops, prediction, scoring, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from napari_cosynth.data.folder import list_pairs, read_sample
from napari_cosynth.errors import ConfigError, CosynthError, DatasetError
from napari_cosynth.segmenter import (
    SegmenterConfig,
    load_segmenter,
    predict_dataset,
    predict_sample,
    score_predictions,
    train_segmenter,
)
from napari_cosynth.segmenter.data import CropSampler, Pool
from napari_cosynth.vocabularies import CONSEP, PANNUKE
from segmenter_fixtures import disc_sample, write_disc_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = SegmenterConfig.from_yaml(REPO / "configs" / "segmenter-tiny.yaml")


def run_to_end(gen):
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as stop:
            return progress, stop.value


@pytest.fixture(scope="module")
def discs(tmp_path_factory):
    return write_disc_dataset(tmp_path_factory.mktemp("discs") / "data")


@pytest.fixture(scope="module")
def trained(discs, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    config = TINY.with_(steps=30, checkpoint_every=15)
    progress, final = run_to_end(train_segmenter(config, discs, "folder", out))
    return out, progress, final


def test_shipped_configs_load():
    cpu = SegmenterConfig.from_yaml(REPO / "configs" / "segmenter-cpu.yaml")
    assert cpu.crop_size % cpu.size_multiple == 0
    assert TINY.encoder_depth == len(TINY.decoder_channels)


@pytest.mark.parametrize("bad, message", [
    ({"crop_sise": 32}, "unknown setting"),
    ({"crop_size": 36}, "multiple of"),
    ({"encoder_depth": 4}, "one width per encoder stage"),
    ({"extra_ratio": 1.5}, "extra_ratio"),
    ({"steps": "ten"}, "steps: expected an integer"),
])
def test_config_refuses_bad_settings(bad, message):
    base = TINY.to_dict()
    base.update(bad)
    with pytest.raises(ConfigError, match=message):
        SegmenterConfig.from_dict(base)


def test_loss_falls_when_overfitting_one_image(tmp_path):
    write_disc_dataset(tmp_path / "one", seeds=(5,))
    progress, final = run_to_end(
        train_segmenter(TINY.with_(steps=40, checkpoint_every=40), tmp_path / "one", "folder",
                        tmp_path / "run")
    )
    losses = [p.losses["total"] for p in progress]
    assert len(losses) == 40 and [p.step for p in progress] == list(range(1, 41))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert final.name == "step-0000040"
    log = (tmp_path / "run" / "loss.csv").read_text().splitlines()
    assert log[0].startswith("step,total") and len(log) == 41


def test_resume_gives_the_same_weights_as_a_straight_run(discs, tmp_path):
    cfg = TINY.with_(steps=6, checkpoint_every=3)
    _, straight = run_to_end(train_segmenter(cfg, discs, "folder", tmp_path / "a"))
    run_to_end(train_segmenter(cfg, discs, "folder", tmp_path / "b", steps=3))
    progress, resumed = run_to_end(train_segmenter(cfg, discs, "folder", tmp_path / "b", resume=True))
    assert [p.step for p in progress] == [4, 5, 6]
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_existing_run_needs_resume_and_same_settings(trained, discs):
    out, _, _ = trained
    with pytest.raises(CosynthError, match="--resume"):
        next(train_segmenter(TINY, discs, "folder", out))
    with pytest.raises(CosynthError, match="lr"):
        other = TINY.with_(steps=30, checkpoint_every=15, lr=0.1)
        next(train_segmenter(other, discs, "folder", out, resume=True))


def test_norm_recalibration_averages_real_crops_only(discs, tmp_path):
    """With extras mixed in, the recalibrated BatchNorm statistics are those of real crops alone."""
    import torch
    from torch import nn

    from napari_cosynth.data.folder import write_sample
    from napari_cosynth.segmenter.data import load_pool
    from napari_cosynth.segmenter.model import SegmenterNet

    for seed in (10, 11):  # extras far brighter than the real discs: a mixed average would show it
        bright = disc_sample(seed)
        write_sample(bright.with_(image=np.clip(bright.image.astype(int) + 120, 0, 255).astype(np.uint8)),
                     tmp_path / "bright")
    extras = [(tmp_path / "bright", "folder")]
    cfg = TINY.with_(steps=6, checkpoint_every=6, extra_ratio=0.5)
    _, plain = run_to_end(train_segmenter(cfg, discs, "folder", tmp_path / "plain", extras=extras))
    _, recal = run_to_end(train_segmenter(cfg.with_(norm_recalibration=5), discs, "folder", tmp_path / "recal",
                                          extras=extras))
    a, b = load_file(str(plain / "model.safetensors")), load_file(str(recal / "model.safetensors"))
    stats = ("running_mean", "running_var", "num_batches_tracked")
    # Only the statistics change: the weights (and so the training stream) are the same.
    for key in a:
        if not key.endswith(stats):
            assert torch.equal(a[key], b[key]), key
    # The first BatchNorm's input depends on the (shared) weights only: its mean over the real crops
    # the recalibration draws is what the recalibrated layer must hold.
    net = SegmenterNet(cfg, 5)
    net.load_state_dict(a)
    name, norm = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    first = f"{name}.running_mean"
    assert not torch.allclose(a[first], b[first])
    seen = []
    norm.register_forward_hook(lambda m, inp, out: seen.append(inp[0].mean(dim=(0, 2, 3))))
    sampler = CropSampler(load_pool(discs, "folder"), [], cfg.crop_size, 0.0, False)
    rng = np.random.default_rng([cfg.seed, 1])
    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.from_numpy(sampler.batch(rng, cfg.batch_size)[0]).permute(0, 3, 1, 2).contiguous())
    expected = torch.stack(seen).mean(0)
    assert torch.allclose(b[first], expected, atol=1e-5)
    assert not torch.allclose(a[first], expected, atol=1e-3)


def test_a_run_recorded_before_norm_recalibration_resumes(discs, tmp_path):
    cfg = TINY.with_(steps=4, checkpoint_every=2)
    run_to_end(train_segmenter(cfg, discs, "folder", tmp_path / "run", steps=2))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    del record["config"]["norm_recalibration"]  # as written before the setting existed
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    progress, _ = run_to_end(train_segmenter(cfg, discs, "folder", tmp_path / "run", resume=True))
    assert [p.step for p in progress] == [3, 4]
    with pytest.raises(CosynthError, match="norm_recalibration"):
        next(train_segmenter(cfg.with_(norm_recalibration=3), discs, "folder", tmp_path / "run", resume=True))


def test_extra_data_must_share_the_vocabulary(discs, tmp_path):
    from napari_cosynth.data.folder import write_sample

    other = disc_sample(3).with_(vocabulary=PANNUKE)
    write_sample(other, tmp_path / "pannuke-like")
    with pytest.raises(DatasetError, match="same vocabulary"):
        next(train_segmenter(TINY, discs, "folder", tmp_path / "run",
                             extras=[(tmp_path / "pannuke-like", "folder")]))


def _pool(value):
    img = np.full((40, 40, 3), value, np.uint8)
    return Pool([img], [np.zeros((40, 40), np.uint8)], [np.zeros((40, 40), np.float32)], CONSEP, 20.0, "x")


def test_crop_sampler_mixes_extra_data_by_ratio():
    rng = np.random.default_rng(0)
    only_extra = CropSampler(_pool(0), [_pool(255)], 32, 1.0, False).batch(rng, 8)[0]
    assert only_extra.min() == 1.0
    no_extra = CropSampler(_pool(0), [_pool(255)], 32, 0.0, False).batch(rng, 8)[0]
    assert no_extra.max() == 0.0
    half = CropSampler(_pool(0), [_pool(255)], 32, 0.5, False).batch(rng, 400)[0]
    share = half[:, 0, 0, 0].mean()
    assert 0.4 < share < 0.6


def test_crops_keep_image_and_targets_aligned_and_pad_small_images():
    sample = disc_sample(7, size=24)
    pool = Pool([sample.image], [sample.semantic_map().astype(np.uint8)],
                [sample.distance_map()], CONSEP, 20.0, "x")
    images, semantic, distance = CropSampler(pool, [], 32, 0.5, True).batch(np.random.default_rng(1), 6)
    assert images.shape == (6, 32, 32, 3) and semantic.shape == distance.shape == (6, 32, 32)
    assert images.min() >= 0.0 and images.max() <= 1.0
    # Class pixels carry distance > 0 and background 0, whatever the rotation / flip / padding.
    assert np.array_equal(semantic > 0, distance > 0)


def test_predict_writes_readable_pairs(trained, discs, tmp_path):
    out, _, _ = trained
    result = predict_dataset(out, discs, "folder", tmp_path / "pred")
    assert result["n_pairs"] == 3
    pairs = list_pairs(tmp_path / "pred")
    assert [p.name for p in pairs] == [p.name for p in list_pairs(discs)]
    for pair in pairs:
        s = read_sample(pair)
        assert s.shape == (48, 48) and s.semantic is not None and s.distance is not None
        assert s.vocabulary == CONSEP and s.magnification == 20.0
    with pytest.raises(CosynthError, match="already holds pairs"):
        predict_dataset(out, discs, "folder", tmp_path / "pred")


def test_trained_segmenter_finds_the_discs(trained, discs):
    # 30 steps on three 48x48 images of flat-coloured discs: foreground should be well under way.
    out, _, final = trained
    model, meta = load_segmenter(out)
    assert meta["path"] == str(final) and meta["step"] == 30
    truths = [read_sample(p) for p in list_pairs(discs)]
    preds = [predict_sample(model, meta, t) for t in truths]
    scores = score_predictions(truths, preds, 20.0)
    assert scores["dice"] > 0.5


def test_predict_refuses_another_magnification(trained):
    out, _, _ = trained
    model, meta = load_segmenter(out)
    with pytest.raises(CosynthError, match="--mag 20"):
        predict_sample(model, meta, disc_sample(0).with_(magnification=40.0))


def test_scoring_truth_against_itself_gives_ones():
    samples = [disc_sample(s) for s in range(3)]
    scores = score_predictions(samples, samples, 20.0)
    for key in ("dice", "aji", "pq", "f_d", "acc"):
        assert scores[key] == 1.0, key
    assert scores["fp"] == scores["fn"] == 0 and scores["n_images"] == 3
    assert all(v in (1.0, None) for v in scores["f1"].values())


def test_scoring_an_empty_prediction_gives_zero_detection():
    truth = [disc_sample(0)]
    empty = [truth[0].with_(instances=np.zeros((48, 48), np.int32), classes=np.zeros(0))]
    scores = score_predictions(truth, empty, 20.0)
    assert scores["dice"] == 0.0 and scores["f_d"] == 0.0 and scores["fn"] == truth[0].n_nuclei


def test_cli_train_and_predict(discs, tmp_path, capsys):
    from napari_cosynth.cli.main import main

    out = tmp_path / "run"
    assert main(["segmenter", "train", "--data", str(discs), "--format", "folder", "--extra", str(discs),
                 "--config", str(REPO / "configs" / "segmenter-tiny.yaml"), "--out", str(out),
                 "--steps", "4", "--seed", "3", "--colour-augment", "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"].endswith("step-0000004")
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["seed"] == 3 and record["config"]["colour_augment"] is True
    assert record["extras"] == [{"path": str(discs), "format": "folder"}]
    assert main(["segmenter", "predict", "--model", str(out), "--data", str(discs), "--format", "folder",
                 "--out", str(tmp_path / "pred"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_pairs"] == 3
    assert main(["segmenter", "predict", "--model", str(tmp_path), "--data", str(discs),
                 "--format", "folder", "--out", str(tmp_path / "p2")]) == 2
    assert "neither a segmenter folder" in capsys.readouterr().err
