"""Checkpoint folders: round trip, float16 storage, and refusal of pickles, corrupt files and mismatches."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from model_fixtures import tiny_open_clip_dir
from napari_cosynth import __version__
from napari_cosynth.engine.config import (
    CosynthConfig,
    DataConfig,
    ModelConfig,
    TextConfig,
)
from napari_cosynth.engine.networks import checkpoint as ckpt
from napari_cosynth.engine.networks.checkpoint import load_model, resolve_model, save_model
from napari_cosynth.engine.networks.model import CoSynNet
from napari_cosynth.errors import CheckpointError

CLASSES = ["background", "other", "inflammatory", "epithelial", "spindle-shaped"]
CONFIG = CosynthConfig(
    model=ModelConfig(
        base_channels=8, channel_mult=(1, 2), attention_levels=(1,), attention_head_dim=8,
        label_embed_dim=4, point_embed_dim=4, point_channels=8, point_blocks=1, norm_num_groups=4,
    ),
    text=TextConfig(width=16, layers=1, heads=2, output_dim=16),
    data=DataConfig(crop_size=32, magnification=20.0),
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CoSynNet(CONFIG.model, CONFIG.text, len(CLASSES)).eval()


@pytest.fixture
def saved(model, tmp_path):
    return save_model(tmp_path / "ckpt", model, CONFIG, {"classes": CLASSES, "step": 7, "tissues": ["colon"]})


def _outputs(net):
    g = torch.Generator().manual_seed(5)
    pm = torch.zeros(2, 32, 32, dtype=torch.long)
    pm[0, 10, 12] = 2
    cond = net.encode_conditions(pm, net.text.tokenize(["epithelial", ""]))
    with torch.no_grad():
        return net(
            torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 1, 32, 32, generator=g),
            torch.randint(0, len(CLASSES), (2, 32, 32), generator=g), torch.tensor([10, 900]), cond,
        )


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything tries to unpickle while loading."""

    def boom(*args, **kwargs):
        raise AssertionError("the loader tried to unpickle a file")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)


def test_round_trip_gives_identical_outputs_and_metadata(model, saved, no_unpickling):
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    loaded, meta = load_model(saved)
    assert not loaded.training
    for a, b in zip(_outputs(model).__dict__.values(), _outputs(loaded).__dict__.values()):
        assert torch.equal(a, b)
    assert meta["classes"] == CLASSES and meta["step"] == 7 and meta["tissues"] == ["colon"]
    assert meta["package_version"] == __version__ and meta["model_id"] == "ckpt"
    assert meta["magnification"] == 20.0 and meta["patch_size"] == 32
    assert CosynthConfig.from_dict(meta["config"]) == CONFIG
    # The weights file or the config file alone names the same model.
    assert load_model(saved / "model.safetensors")[1]["step"] == 7


def test_float16_storage_halves_the_file_and_loads_as_float32(model, saved, tmp_path):
    half = save_model(tmp_path / "half", model, CONFIG, {"vocabulary": CLASSES}, weights_dtype="float16")
    size32 = (saved / "model.safetensors").stat().st_size
    size16 = (half / "model.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    loaded, meta = load_model(half)
    assert meta["weights_dtype"] == "float16" and meta["classes"] == CLASSES
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(_outputs(loaded).pred_image, _outputs(model).pred_image, atol=2e-2, rtol=2e-2)


def test_pickle_files_are_refused_without_unpickling(model, tmp_path, no_unpickling):
    pt = tmp_path / "model.pt"
    with open(pt, "wb") as fh:  # what torch.save writes, made before torch.load is blocked
        torch.serialization.save(model.state_dict(), fh)
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(pt)
    # Only the pickle in a folder: refused, naming it.
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(pt, folder / "weights.ckpt")
    with pytest.raises(CheckpointError, match=r"weights\.ckpt is a PyTorch pickle"):
        load_model(folder)
    # A pickle renamed to model.safetensors is recognised by its first bytes.
    disguised = tmp_path / "disguised"
    disguised.mkdir()
    shutil.copy(pt, disguised / "model.safetensors")
    (disguised / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(disguised)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_model(legacy)


def test_config_that_does_not_match_the_weights_is_refused(saved):
    meta = json.loads((saved / "config.json").read_text())
    meta["config"]["model"]["base_channels"] = 16
    meta["config"]["model"]["norm_num_groups"] = 4
    (saved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"config.json does not match model.safetensors: .*differ in shape"):
        load_model(saved)
    meta["config"]["model"]["base_channels"] = 8
    meta["config"]["model"]["point_blocks"] = 2
    (saved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"are not in the weights \(e\.g\. points\.blocks\.1"):
        load_model(saved)


def test_invalid_config_in_checkpoint_is_a_checkpoint_error(saved):
    meta = json.loads((saved / "config.json").read_text())
    meta["config"]["train"]["stpes"] = 3
    (saved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="did you mean train.steps"):
        load_model(saved)
    (saved / "config.json").write_text('{"format": "napari-cosynth-model", ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(saved)


def test_truncated_weights_are_refused(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(saved)
    # Without the recorded checksum the safetensors reader itself catches it.
    meta = json.loads((saved / "config.json").read_text())
    del meta["weights_sha256"]
    (saved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(saved)


def test_missing_files_and_paths(tmp_path, saved):
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json missing"):
        load_model(saved)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no model at"):
        resolve_model(tmp_path / "nowhere")


def test_save_needs_a_matching_vocabulary(model, tmp_path):
    with pytest.raises(CheckpointError, match="needs the class vocabulary"):
        save_model(tmp_path / "a", model, CONFIG)
    with pytest.raises(CheckpointError, match="has 5 classes"):
        save_model(tmp_path / "b", model, CONFIG, {"classes": CLASSES[:3]})
    other = CosynthConfig(model=CONFIG.model, text=TextConfig(width=32, layers=1, heads=2), data=CONFIG.data)
    with pytest.raises(CheckpointError, match="not the one the model was built from"):
        save_model(tmp_path / "c", model, other, {"classes": CLASSES})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resolve_model_default(tmp_path, monkeypatch, saved):
    monkeypatch.setattr(ckpt, "_BUNDLED", tmp_path / "models")
    with pytest.raises(CheckpointError, match="bundled model 'default' is not installed"):
        resolve_model("default")
    shutil.copytree(saved, tmp_path / "models" / "default")
    assert resolve_model("default") == tmp_path / "models" / "default"
    assert resolve_model(str(saved)) == saved


def test_pretrained_text_tower_is_stored_in_the_checkpoint(tmp_path):
    folder, _ = tiny_open_clip_dir(tmp_path)
    config = CosynthConfig(
        model=CONFIG.model, data=CONFIG.data,
        text=TextConfig(kind="open_clip", open_clip_model=f"local-dir:{folder}"),
    )
    torch.manual_seed(1)
    net = CoSynNet(config.model, config.text, len(CLASSES)).eval()
    out = save_model(tmp_path / "clip-ckpt", net, config, {"classes": CLASSES})
    shutil.rmtree(folder)  # the checkpoint must not need the original weights any more
    loaded, meta = load_model(out)
    assert meta["text_architecture"]["text_cfg"]["width"] == 32
    assert not any(p.requires_grad for p in loaded.text.parameters())
    assert torch.equal(_outputs(loaded).label_logits, _outputs(net).label_logits)
