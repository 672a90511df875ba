"""Training: the training-state files, the crop dataset, the run loop, checkpoints and exact resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from data_fixtures import write_consep
from napari_cosynth.engine.config import CosynthConfig
from napari_cosynth.engine.training import state as st
from napari_cosynth.engine.training.crop_stream import StepBatchSampler, batch_keys, order_index
from napari_cosynth.engine.training.data import _BALANCE_STREAM, _CROP_STREAM, CropDataset, check_classes
from napari_cosynth.engine.training.train import (
    Trainer,
    TrainProgress,
    latest_checkpoint,
    list_checkpoints,
    train,
)
from napari_cosynth.errors import CheckpointError, ConfigError, DatasetError
from napari_cosynth.labels.points import centroid_table, points_from_map
from napari_cosynth.sample import Sample
from napari_cosynth.vocabularies import CONSEP, PANNUKE

CONSEP_TRAIN = Path("/work/shared/data/consep/train")


# ------------------------------------------------------------------------------------ training state


def test_flatten_round_trips_nested_state_with_int_keys_tuples_and_arrays():
    state = {
        "step": 7,
        "opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}},
                "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0], "fused": None}]},
        "np": ("MT19937", np.arange(5, dtype=np.uint32), 3, 0, 0.25),
        "big": 2**100 + 1,
        "flag": True,
        "bf16": torch.ones(2, dtype=torch.bfloat16),
    }
    structure, tensors = st.flatten_state(state)
    json.dumps(structure)  # JSON-able
    back = st.unflatten_state(json.loads(json.dumps(structure)), tensors)
    assert back["step"] == 7 and back["big"] == 2**100 + 1 and back["flag"] is True
    assert list(back["opt"]["state"]) == [0]  # int key survives
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["opt"]["param_groups"][0]["fused"] is None
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    assert back["np"][1].dtype == np.uint32 and np.array_equal(back["np"][1], np.arange(5))
    assert back["bf16"].dtype == torch.bfloat16


def test_flatten_refuses_objects_it_cannot_store():
    with pytest.raises(TypeError, match="cannot store a object"):
        st.flatten_state({"x": object()})


def test_rng_states_restore_every_generator(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    st.save_training_state(tmp_path, {"rng": st.rng_states()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    st.set_rng_states(st.load_training_state(tmp_path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_training_state_files_hold_no_pickle(tmp_path):
    st.save_training_state(tmp_path, {"rng": st.rng_states(), "w": torch.randn(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([st.STATE_TENSORS, st.STATE_JSON])
    doc = json.loads((tmp_path / st.STATE_JSON).read_text())
    assert doc["format"] == st.FORMAT
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    raw = (tmp_path / st.STATE_TENSORS).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    json.loads(raw[8 : 8 + n])


def test_corrupt_or_missing_training_state_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        st.load_training_state(tmp_path)
    st.save_training_state(tmp_path, {"w": torch.randn(3)})
    (tmp_path / st.STATE_TENSORS).write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="corrupt"):
        st.load_training_state(tmp_path)
    st.save_training_state(tmp_path, {"w": torch.randn(3)})
    (tmp_path / st.STATE_JSON).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        st.load_training_state(tmp_path)


# ------------------------------------------------------------------------------------ crop dataset


def _tokenize(prompts):
    # A stand-in tokenizer: the dataset only forwards what the model's tokenizer returns.
    return torch.tensor([[len(p), sum(map(ord, p)) % 1000] for p in prompts], dtype=torch.int64)


def _synthetic_samples(n=3, size=48, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    rows, cols = np.mgrid[:size, :size]
    for k in range(n):
        inst = np.zeros((size, size), np.int32)
        centres = rng.integers(4, size - 4, size=(8, 2))
        for i, (r, c) in enumerate(centres, start=1):
            inst[(rows - r) ** 2 + (cols - c) ** 2 <= 9] = i
        # Overlaps can erase an id entirely; renumber 1..N.
        ids = np.unique(inst[inst > 0])
        lut = np.zeros(inst.max() + 1, np.int32)
        lut[ids] = np.arange(1, len(ids) + 1)
        inst = lut[inst]
        classes = rng.integers(1, CONSEP.n_classes, size=len(ids))
        image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        samples.append(Sample(image, inst, classes, CONSEP, tissue="colon", magnification=20.0, name=f"s{k}"))
    return samples


def _dataset(samples=None, crop=32, seed=0, **kw):
    return CropDataset(samples or _synthetic_samples(), crop_size=crop, tokenize=_tokenize,
                       vocabulary=CONSEP, seed=seed, **kw)


def test_crop_has_the_documented_tensors_and_ranges():
    item = _dataset()[(1, 5)]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["distance"].shape == (1, 32, 32)
    assert -1 <= item["distance"].min() <= item["distance"].max() <= 1
    assert item["labels"].shape == (32, 32) and item["labels"].dtype == torch.int64
    assert item["point_map"].shape == (32, 32) and item["point_map"].dtype == torch.int64
    assert item["tokens"].dtype == torch.int64 and int(item["index"]) == 1
    assert item["prompt"].startswith("high quality histopathology colon tissue image")


def test_crop_maps_stay_aligned_through_crop_rotation_and_flip():
    samples = _synthetic_samples()
    ds = _dataset(samples)
    for position in range(12):
        item = ds[(0, position)]
        labels = item["labels"].numpy()
        dist = (item["distance"][0].numpy() + 1) / 2
        # Foreground of the distance map is exactly the foreground of the semantic map.
        assert np.array_equal(dist > 0, labels > 0)
        # Every point sits on a nucleus pixel of its own class.
        pts = points_from_map(item["point_map"].numpy())
        rows, cols = pts.xy[:, 1].astype(int), pts.xy[:, 0].astype(int)
        assert np.array_equal(labels[rows, cols], pts.classes)
        # The image pixels moved with the labels: find this crop inside the source by brute force.
        img = np.round((item["image"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        src = samples[0]
        assert _found_in(img, labels, src)


def _found_in(img, labels, src):
    for k in range(4):
        for flip in (False, True):
            # Undo: flip then inverse rotation.
            a = img[:, ::-1] if flip else img
            lab = labels[:, ::-1] if flip else labels
            a, lab = np.rot90(a, -k), np.rot90(lab, -k)
            h, w = lab.shape
            sem = src.semantic_map()
            for y in range(src.shape[0] - h + 1):
                for x in range(src.shape[1] - w + 1):
                    if np.array_equal(src.image[y:y + h, x:x + w], a):
                        return np.array_equal(sem[y:y + h, x:x + w], lab)
    return False


def test_points_of_a_cut_nucleus_are_the_centroid_of_its_visible_part():
    ds = _dataset()
    item = ds[(2, 3)]
    # Replay the crop's draws on the instance map (touching nuclei of one class cannot be told
    # apart in the labels) and compare with the toolkit's centroids of the visible parts.
    patch = ds.patches[2]
    rng = np.random.default_rng([ds.seed, _CROP_STREAM, 3])
    c = ds.crop_size
    y0 = int(rng.integers(0, patch.instances.shape[0] - c + 1))
    x0 = int(rng.integers(0, patch.instances.shape[1] - c + 1))
    k, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
    inst = np.rot90(patch.instances[y0:y0 + c, x0:x0 + c], k)
    inst = np.ascontiguousarray(inst[:, ::-1] if flip else inst)
    expected = centroid_table(inst, patch.classes)
    got = points_from_map(item["point_map"].numpy())
    assert len(got) == len(expected)
    assert set(map(tuple, np.round(expected.xy).astype(int))) == set(map(tuple, got.xy.astype(int)))


def test_same_key_gives_the_same_crop_and_other_keys_differ():
    a, b = _dataset(), _dataset()
    for key in [(0, 0), (1, 17), (2, 99)]:
        x, y = a[key], b[key]
        assert all(torch.equal(x[k], y[k]) for k in ("image", "distance", "labels", "point_map", "tokens"))
    assert not torch.equal(a[(0, 0)]["image"], a[(0, 1)]["image"])
    assert not torch.equal(_dataset(seed=1)[(0, 0)]["image"], a[(0, 0)]["image"])


def test_data_order_visits_every_sample_once_per_epoch_and_splits_over_ranks():
    n = 7
    epoch0 = [order_index(n, 3, p) for p in range(n)]
    assert sorted(epoch0) == list(range(n))
    assert [order_index(n, 3, p) for p in range(n, 2 * n)] != epoch0
    one = batch_keys(n, 3, first_position=8, batch_size=4, world_size=1, rank=0)
    two = batch_keys(n, 3, 8, 2, 2, 0) + batch_keys(n, 3, 8, 2, 2, 1)
    assert one == two  # two ranks of batch 2 read the global batch of one rank of batch 4


def test_repeat_visits_every_sample_that_often_per_epoch():
    epoch = [order_index(5, 0, p, repeat=3) for p in range(15)]
    assert sorted(epoch) == sorted(list(range(5)) * 3)


def test_without_augmentation_crops_are_plain_windows():
    samples = _synthetic_samples()
    ds = _dataset(samples, augment=False)
    for position in range(6):
        img = np.round((ds[(1, position)]["image"].numpy().transpose(1, 2, 0) + 1) * 127.5)
        src = samples[1].image
        assert any(np.array_equal(src[y:y + 32, x:x + 32], img)
                   for y in range(17) for x in range(17))


def _rare_class_samples(n=6, size=48):
    """Samples whose nuclei are all class 3 but for a single class-1 nucleus in sample 0."""
    samples = _synthetic_samples(n=n, size=size)
    for s in samples:
        s.classes[:] = 3
    samples[0].classes[0] = 1
    return samples


def _point_classes(item):
    return set(points_from_map(item["point_map"].numpy()).classes.tolist())


def test_class_balance_changes_only_the_crops_it_balances():
    # Which positions are balanced comes from a stream of its own: every other position keeps the
    # uniform crop of an unbalanced run, so b = 0 is exactly the earlier crops.
    samples = _rare_class_samples()
    plain, balanced = _dataset(samples), _dataset(samples, class_balance=0.5)
    same = changed = 0
    for position in range(60):
        key = (position % 6, position)
        draw = np.random.default_rng([balanced.seed, _BALANCE_STREAM, position]).random()
        equal = torch.equal(plain[key]["image"], balanced[key]["image"])
        if draw >= 0.5:
            assert equal
            same += 1
        changed += not equal
    assert same > 10 and changed > 10


@pytest.mark.slow
def test_class_balance_shows_the_rare_class_in_its_share_of_crops():
    samples = _rare_class_samples()
    keys = [(p % 6, p) for p in range(400)]
    uniform = sum(1 in _point_classes(_dataset(samples)[k]) for k in keys)
    ds = _dataset(samples, class_balance=0.8)
    balanced = [ds[k] for k in keys]
    with_rare = sum(1 in _point_classes(item) for item in balanced)
    # Half of the balanced draws (0.8 x one class of two) centre on the single class-1 nucleus.
    assert with_rare >= uniform + 0.3 * len(keys)
    # A balanced crop is still a real window of its sample (the maps stay aligned).
    for item in balanced[:20]:
        if 1 in _point_classes(item):
            img = np.round((item["image"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
            assert _found_in(img, item["labels"].numpy(), samples[0])
            break
    else:
        raise AssertionError("no balanced crop held the rare nucleus")
    # Deterministic per key.
    again = _dataset(samples, class_balance=0.8)
    assert all(torch.equal(again[k]["image"], item["image"]) for k, item in zip(keys[:30], balanced))


def test_class_balance_outside_zero_one_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="data.class_balance"):
        _dataset(class_balance=1.5)


def test_worker_processes_load_the_same_batches():
    ds = _dataset()
    batches = []
    for workers in (0, 1):
        sampler = StepBatchSampler(len(ds), 0, start=0, stop=3, start_position=0, batch_size=2)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=workers)
        batches.append([b["image"] for b in loader])
    assert all(torch.equal(a, b) for a, b in zip(*batches, strict=True))


def test_step_sampler_resumes_mid_stream():
    full = list(StepBatchSampler(5, 0, start=0, stop=6, start_position=0, batch_size=3))
    s = StepBatchSampler(5, 0, start=0, stop=6, start_position=0, batch_size=3)
    resumed = list(StepBatchSampler(5, 0, start=4, stop=6, start_position=s.position(4), batch_size=3))
    assert resumed == full[4:]


def test_crop_larger_than_images_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"data.crop_size: 64 .*48x48"):
        _dataset(crop=64)


def test_vocabulary_mismatch_is_refused_naming_the_key():
    assert check_classes(None, CONSEP, "d") is CONSEP
    assert check_classes(["background", *CONSEP.nucleus_classes], CONSEP, "d") is CONSEP
    with pytest.raises(ConfigError, match="data.classes"):
        check_classes(["a", "b"], CONSEP, "d")
    with pytest.raises(ConfigError, match="data.classes"):
        check_classes(list(reversed(CONSEP.nucleus_classes)), CONSEP, "d")
    other = _synthetic_samples(1)[0]
    other = Sample(other.image, other.instances, np.minimum(other.classes, 5), PANNUKE, name="p")
    with pytest.raises(ConfigError, match="data.classes"):
        _dataset([*_synthetic_samples(1), other])


def test_points_only_samples_are_refused():
    s = _synthetic_samples(1)[0]
    pts = Sample(s.image, None, np.zeros(0), CONSEP, points=s.point_table(), name="pts")
    with pytest.raises(DatasetError, match="points-only"):
        _dataset([pts])


# ------------------------------------------------------------------------------------ training runs

TINY_CPU = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"


def write_tiny_consep(root: Path, n: int = 4, size: int = 48) -> Path:
    """A CoNSeP-format split of ``n`` random 48x48 patches with 8-12 nuclei of all 4 classes."""
    classes = [[1 + (i + k) % 4 for i in range(8 + k)] for k in range(n)]
    write_consep(root, classes, size=size, rng=np.random.default_rng(7))
    return root


def tiny_config(data: Path, **train) -> CosynthConfig:
    """configs/tiny-cpu.yaml on ``data`` at its own 40x, 32 px crops, few diffusion steps."""
    overrides = {
        "data.path": str(data), "data.format": "consep", "data.magnification": 40.0, "data.crop_size": 32,
        "diffusion.timesteps": 50,
        "train.steps": 4, "train.batch_size": 2, "train.checkpoint_every": 2, "train.sample_every": 1000,
        "train.log_every": 1, "train.num_workers": 0, "train.mixed_precision": "no",
    }
    overrides.update({f"train.{k}": v for k, v in train.items()})
    return CosynthConfig.from_yaml(TINY_CPU).with_overrides(overrides)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_consep(tmp_path_factory.mktemp("consep"))


def _run(gen):
    return list(gen)


def _tensors(folder: Path, name: str) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / name)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_train_yields_progress_and_writes_the_run_folder(tiny_data, tmp_path):
    out = tmp_path / "run"
    progress = _run(train(tiny_config(tiny_data, steps=3, sample_every=3), out))
    assert [p.step for p in progress] == [1, 2, 3] and all(p.total == 3 for p in progress)
    assert isinstance(progress[0], TrainProgress) and "loss" in progress[0].postfix()
    assert set(progress[0].losses) >= {"total", "image", "distance", "labels", "grad_norm"}
    assert all(np.isfinite(v) for p in progress for v in p.losses.values())
    assert [Path(p.checkpoint).name if p.checkpoint else None for p in progress] == [
        None, "step-0000002", "step-0000003"]
    assert [c.name for c in list_checkpoints(out)] == ["step-0000002", "step-0000003"]
    last = json.loads((out / "last.json").read_text())
    assert last == {"step": 3, "checkpoint": "checkpoints/step-0000003"}
    rows = (out / "loss.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["step", "loss"]
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert CosynthConfig.from_yaml(out / "config.yaml") == tiny_config(tiny_data, steps=3, sample_every=3)
    # Sample grid: 4 rows (of the 4 patches) x 6 panels of 32 px, scaled x4.
    import imageio.v3 as iio

    grid = iio.imread(out / "samples" / "step-0000003.png")
    assert progress[-1].samples.endswith("step-0000003.png")
    assert grid.shape == (4 * 32 * 4, 6 * 32 * 4, 3) and grid.dtype == np.uint8


def test_learning_rate_schedule_is_applied_and_logged(tiny_data, tmp_path):
    out = tmp_path / "run"
    _run(train(tiny_config(tiny_data, lr_schedule="linear", lr=0.001, checkpoint_every=10), out))
    rows = [r.split(",") for r in (out / "loss.csv").read_text().splitlines()]
    lr = rows[0].index("lr")
    assert [float(r[lr]) for r in rows[1:]] == pytest.approx([0.001, 0.00075, 0.0005, 0.00025])
    # --steps (the CLI's override) sets the span too, and the run's record says so.
    short = tmp_path / "short"
    _run(train(tiny_config(tiny_data, steps=100, lr_schedule="linear", lr=0.001, checkpoint_every=10),
               short, steps=2))
    rows = [r.split(",") for r in (short / "loss.csv").read_text().splitlines()]
    assert [float(r[lr]) for r in rows[1:]] == pytest.approx([0.001, 0.0005])
    assert CosynthConfig.from_yaml(short / "config.yaml").train.steps == 2
    decaying = tiny_config(tiny_data, steps=100, lr_schedule="linear", lr_decay_steps=50)
    with pytest.raises(ConfigError, match=r"--steps: 2 is fewer than train.lr_decay_steps \(50\)"):
        train(decaying, tmp_path / "too-short", steps=2)


@pytest.mark.slow
def test_checkpoint_holds_the_ema_weights_and_loads_without_pickle(tiny_data, tmp_path):
    from napari_cosynth.engine.networks.checkpoint import load_model

    trainer = Trainer(tiny_config(tiny_data, steps=2), tmp_path / "run")
    _run(trainer.run())
    model, meta = load_model(latest_checkpoint(tmp_path / "run"))
    assert meta["step"] == 2 and meta["classes"] == list(CONSEP.names) and meta["magnification"] == 40.0
    assert meta["training_data"]["samples"] == 4 and meta["patch_size"] == 32
    loaded = dict(model.named_parameters())
    ema = dict(zip([n for n, p in trainer.model.named_parameters() if p.requires_grad],
                   trainer.ema.shadow_params, strict=True))
    online = dict(trainer.model.named_parameters())
    assert all(torch.equal(loaded[n], ema[n].cpu()) for n in ema)
    assert any(not torch.equal(loaded[n], online[n].detach()) for n in ema)
    for f in latest_checkpoint(tmp_path / "run").iterdir():
        assert f.suffix in (".safetensors", ".json")


@pytest.mark.slow
def test_resume_after_a_kill_continues_exactly(tiny_data, tmp_path):
    straight = tmp_path / "straight"
    _run(train(tiny_config(tiny_data), straight))

    killed = tmp_path / "killed"
    run = train(tiny_config(tiny_data), killed)
    for p in run:
        if p.step == 3:  # checkpoint at 2, step 3 done and logged, then the process "dies"
            break
    run.close()
    # A checkpoint that was being written when the process died is a hidden temporary folder.
    partial = killed / "checkpoints" / ".step-0000004.x1y2.tmp" / "step-0000004"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half a file")
    assert latest_checkpoint(killed).name == "step-0000002"

    resumed = _run(train(tiny_config(tiny_data), killed, resume=True))
    assert [p.step for p in resumed] == [3, 4] and "resumed from" in resumed[0].notes[0]
    assert not partial.parent.exists()
    for name in ("model.safetensors", "training_state.safetensors"):
        assert _same_tensors(_tensors(straight / "checkpoints" / "step-0000004", name),
                             _tensors(killed / "checkpoints" / "step-0000004", name))
    # The log lost the row of the step that was redone, not its redo.
    assert (killed / "loss.csv").read_text().splitlines()[1:] != []
    assert [r.split(",")[:2] for r in (killed / "loss.csv").read_text().splitlines()[1:]] == [
        r.split(",")[:2] for r in (straight / "loss.csv").read_text().splitlines()[1:]]


@pytest.mark.slow
def test_resume_with_more_steps_matches_one_long_run(tiny_data, tmp_path):
    long = tmp_path / "long"
    _run(train(tiny_config(tiny_data, checkpoint_every=10), long, steps=3))
    short = tmp_path / "short"
    _run(train(tiny_config(tiny_data, checkpoint_every=10), short, steps=1))
    _run(train(tiny_config(tiny_data, checkpoint_every=10), short, steps=3, resume=True))
    assert _same_tensors(_tensors(long / "checkpoints" / "step-0000003", "training_state.safetensors"),
                         _tensors(short / "checkpoints" / "step-0000003", "training_state.safetensors"))


@pytest.mark.slow
def test_existing_runs_and_changed_configs_are_refused(tiny_data, tmp_path):
    out = tmp_path / "run"
    _run(train(tiny_config(tiny_data, steps=2), out))
    with pytest.raises(ConfigError, match="already holds a training run.*--resume"):
        train(tiny_config(tiny_data, steps=2), out)
    changed = tiny_config(tiny_data, steps=3).with_overrides({"diffusion.timesteps": 60})
    with pytest.raises(ConfigError, match="diffusion.timesteps: the run in"):
        train(changed, out, resume=True)
    # Nothing to resume: a fresh start, said so.
    fresh = _run(train(tiny_config(tiny_data, steps=1), tmp_path / "new", resume=True))
    assert "starting at step 0" in fresh[0].notes[0]


def test_bad_config_is_refused_before_training_with_the_key_named(tiny_data, tmp_path):
    big = tiny_config(tiny_data).with_overrides({"data.crop_size": 64})
    with pytest.raises(ConfigError, match=r"data.crop_size: 64 is larger than .*48x48"):
        train(big, tmp_path / "a")
    wrong = tiny_config(tiny_data).with_overrides({"data.classes": ["tumour", "stroma"]})
    with pytest.raises(ConfigError, match="data.classes"):
        train(wrong, tmp_path / "b")
    with pytest.raises(ConfigError, match="--steps"):
        train(tiny_config(tiny_data), tmp_path / "c", steps=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_mixed_precision_on_cpu_trains_in_float32_and_says_so(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, steps=1, mixed_precision="bf16")
    progress = _run(train(cfg, tmp_path / "run"))
    assert "CUDA only" in progress[0].notes[0]


@pytest.mark.slow
def test_init_from_a_saved_model_starts_a_fresh_run_from_its_weights(tiny_data, tmp_path):
    from napari_cosynth.engine.networks.checkpoint import load_model

    _run(train(tiny_config(tiny_data, steps=2), tmp_path / "donor"))
    donor_folder = latest_checkpoint(tmp_path / "donor")
    donor, _ = load_model(donor_folder)
    # A fine-tuning run may change what it learns (here the prediction target), not the architecture.
    tuned = tiny_config(tiny_data, steps=1).with_overrides({"diffusion.prediction": "v"})
    trainer = Trainer(tuned, tmp_path / "tuned", init_from=donor_folder)
    assert trainer.step == 0 and any("initialised from" in n for n in trainer.notes)
    ours = trainer.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in donor.state_dict().items())
    ema = trainer.ema.shadow_params
    assert all(torch.equal(e, p.detach()) for e, p in zip(ema, trainer.params, strict=True))
    progress = _run(trainer.run())
    assert progress[-1].step == 1
    # The starting weights are part of the saved model's provenance, also after a resume.
    _, meta = load_model(latest_checkpoint(tmp_path / "tuned"))
    assert meta["init_from"] == str(donor_folder)
    _run(train(tuned, tmp_path / "tuned", steps=2, resume=True))
    _, meta = load_model(latest_checkpoint(tmp_path / "tuned"))
    assert meta["step"] == 2 and meta["init_from"] == str(donor_folder)

    wider = tiny_config(tiny_data).with_overrides({"model.base_channels": 32})
    with pytest.raises(ConfigError, match="init from .*architecture differs.*config.json"):
        Trainer(wider, tmp_path / "wider", init_from=donor_folder)
