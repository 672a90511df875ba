"""A file a user is handed never runs code or reaches the network (issue 13, "Security").

Each test hands the project a crafted file whose loading would create a marker file (a pickle's
``__reduce__``), or a model that names weights to fetch, and checks that it is refused in one line and
that nothing ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from evaluate_fixtures import write_tiny_folder
from napari_cosynth.cli.main import main
from napari_cosynth.errors import CheckpointError, CosynthError

# ------------------------------------------------------------------------------------------ pickles


class _Payload:
    """Unpickling this calls os.mkdir(marker): proof that the file's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def malicious_pickle(path: Path, marker: Path) -> Path:
    """A .pth that creates ``marker`` when loaded with torch.load(weights_only=False), as
    torch-fidelity and open_clip load weights."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"Conv2d_1a_3x3.conv.weight": _Payload(marker)}, path)
    return path


def test_the_crafted_pickle_really_runs_code_when_loaded(tmp_path):
    # Guards the tests below against passing vacuously with a payload that does nothing.
    import torch

    marker = tmp_path / "ran"
    torch.load(malicious_pickle(tmp_path / "x.pth", marker), weights_only=False)
    assert marker.exists()


@pytest.fixture
def image_sets(tmp_path):
    return write_tiny_folder(tmp_path / "real", n=3, seed=0), write_tiny_folder(tmp_path / "fake", n=3, seed=1)


def test_fid_features_pickle_is_refused_and_never_unpickled(image_sets, tmp_path, capsys):
    real, fake = image_sets
    marker = tmp_path / "ran"
    evil = malicious_pickle(tmp_path / "inception.pth", marker)
    code = main(["evaluate", "fid", "--real", str(real), "--real-format", "folder", "--fake", str(fake),
                 "--features", str(evil)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not marker.exists()
    assert len(err.splitlines()) == 1
    assert "SHA-256" in err and ".safetensors" in err and str(evil) in err


def test_a_pickle_under_the_inception_file_name_in_the_cache_is_refused(image_sets, tmp_path, monkeypatch):
    import torch

    from napari_cosynth.evaluate.fid import INCEPTION_WEIGHTS_FILE, fid_report

    hub = tmp_path / "hub"
    marker = tmp_path / "ran"
    malicious_pickle(hub / "checkpoints" / INCEPTION_WEIGHTS_FILE, marker)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    real, fake = image_sets
    with pytest.raises(CosynthError, match="not the published Inception-v3 weights"):
        fid_report(real, "folder", fake, "folder", features="inception")
    assert not marker.exists()


def _inception_state() -> dict:
    """torch-fidelity's Inception-v3 with random weights (its constructor insists on loading a file)."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # Only for building the reference tensors here: hand its loader an empty state, skip the check.
    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state: None
    torch.manual_seed(0)
    try:
        empty = Path(os.environ.get("TMPDIR", "/tmp")) / f"cosynth-empty-{os.getpid()}.pth"
        torch.save({}, empty)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(empty))
        empty.unlink()
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    # PyTorch's default initialisation (batch-norm statistics 0 and 1): finite features.
    return {k: v.contiguous() for k, v in net.state_dict().items()}


@pytest.mark.slow
def test_inception_weights_as_safetensors_are_accepted(image_sets, tmp_path):
    from safetensors.torch import save_file

    from napari_cosynth.evaluate.fid import fid_report

    weights = tmp_path / "inception.safetensors"
    save_file(_inception_state(), str(weights))
    real, fake = image_sets
    report = fid_report(real, "folder", fake, "folder", features=str(weights))
    assert np.isfinite(report["fid"]) and report["fid"] >= 0
    assert set(report["inception_score"]) == {"mean", "std"}
    assert str(weights) in report["features"]


def test_safetensors_of_other_tensors_is_refused_in_one_line(image_sets, tmp_path):
    import torch
    from safetensors.torch import save_file

    from napari_cosynth.evaluate.fid import fid_report

    weights = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(weights))
    real, fake = image_sets
    with pytest.raises(CosynthError, match="does not hold torch-fidelity's Inception-v3 weights") as err:
        fid_report(real, "folder", fake, "folder", features=str(weights))
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CosynthError, match="not a readable safetensors file"):
        fid_report(real, "folder", fake, "folder", features=str(broken))


# ------------------------------------------------------------------------------ open_clip text towers


def _edit_config(folder: Path, edit) -> None:
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.fixture
def model_copy(tiny_checkpoint, tmp_path):
    import shutil

    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "model"))


@pytest.fixture
def no_open_clip_loading(monkeypatch):
    """Record every call that would load open_clip weights or fetch anything."""
    import open_clip
    import open_clip.pretrained
    import torch

    calls = []

    def refuse(name):
        def record(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return record

    monkeypatch.setattr(open_clip, "create_model", refuse("open_clip.create_model"))
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_hf", refuse("download_from_hf"))
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", refuse("download_pretrained"))
    monkeypatch.setattr(torch, "load", refuse("torch.load"))
    return calls


@pytest.mark.parametrize("pretrained", ["local-file", "openai"])
def test_a_model_naming_pretrained_text_weights_is_refused_without_loading_them(
        model_copy, tmp_path, no_open_clip_loading, pretrained):
    from napari_cosynth.engine.networks.checkpoint import load_model

    marker = tmp_path / "ran"
    source = str(malicious_pickle(tmp_path / "text.pt", marker)) if pretrained == "local-file" else pretrained

    def edit(meta):
        meta["config"]["text"].update(kind="open_clip", open_clip_model="ViT-B-32", pretrained=source)
        meta.pop("text_architecture", None)

    _edit_config(model_copy, edit)
    with pytest.raises(CheckpointError, match="records no text_architecture") as err:
        load_model(model_copy)
    assert "never loads text.pretrained" in str(err.value)
    assert no_open_clip_loading == [] and not marker.exists()


def test_a_recorded_hugging_face_text_tower_is_refused_without_fetching(model_copy, no_open_clip_loading):
    from napari_cosynth.engine.networks.checkpoint import load_model

    def edit(meta):
        meta["config"]["text"].update(kind="open_clip", open_clip_model="hf-hub:org/model", pretrained=None)
        meta["text_architecture"] = {"open_clip_model": "hf-hub:org/model", "embed_dim": 16,
                                     "quick_gelu": False,
                                     "text_cfg": {"hf_model_name": "org/model", "width": 16}}

    _edit_config(model_copy, edit)
    with pytest.raises(CheckpointError, match="Hugging Face text tower is not supported"):
        load_model(model_copy)
    assert no_open_clip_loading == []


def test_an_open_clip_model_with_its_recorded_architecture_loads_offline(tmp_path, no_open_clip_loading):
    """A saved open_clip-tower model loads from its own safetensors, touching nothing else."""
    import torch

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.networks.checkpoint import load_model, save_model
    from napari_cosynth.engine.networks.model import CoSynNet
    from napari_cosynth.vocabularies import CONSEP

    arch = {"open_clip_model": "ViT-tiny-test", "embed_dim": 16, "quick_gelu": False,
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    config = CosynthConfig.from_dict({
        "model": {"base_channels": 8, "channel_mult": [1, 2], "attention_levels": [], "attention_head_dim": 8,
                  "norm_num_groups": 4, "point_channels": 4, "point_blocks": 1},
        "text": {"kind": "open_clip", "open_clip_model": "local-dir:/nowhere"},
        "data": {"path": ".", "crop_size": 32},
    })
    model = CoSynNet(config.model, config.text, CONSEP.n_classes, text_architecture=arch)
    with torch.no_grad():
        model.text.tower.token_embedding.weight.fill_(0.25)
    folder = save_model(tmp_path / "m", model, config, {"classes": list(CONSEP.names)})
    loaded, meta = load_model(folder)
    assert torch.equal(loaded.text.tower.token_embedding.weight, model.text.tower.token_embedding.weight)
    assert meta["text_architecture"]["text_cfg"]["width"] == 16
    assert no_open_clip_loading == []


# ------------------------------------------------------------------------------------ export names


def _sample(name: str):
    from data_fixtures import disk_instances
    from napari_cosynth.sample import Sample
    from napari_cosynth.vocabularies import CONSEP

    instances = disk_instances((16, 16), [(5, 5), (10, 11)])
    image = np.full((16, 16, 3), 128, dtype=np.uint8)
    return Sample(name=name, image=image, instances=instances, classes=np.array([1, 2]),
                  vocabulary=CONSEP, magnification=40.0, tissue="colon")


def _escaped(root: Path, inside: Path) -> list[str]:
    """Files under ``root`` but outside ``inside`` (the export folder)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and inside not in p.parents)


@pytest.mark.parametrize("name", ["../escaped", "../../escaped", "ABSOLUTE", "..", "a/../../b"])
def test_exports_keep_every_sample_name_inside_the_export_folder(tmp_path, name):
    from napari_cosynth.data.exports import export_hovernet, export_lizard, write_hovernet_patch

    if name == "ABSOLUTE":  # an absolute path would replace the folder in Path(folder) / name
        name = str(tmp_path / "absolute-escaped")
    for writer in (export_hovernet, export_lizard):
        top = tmp_path / writer.__name__
        folder = top / "deep" / "er" / "export"
        writer([_sample(name)], folder)
        assert _escaped(top, folder) == [], writer.__name__
        assert len([p for p in folder.rglob("*") if p.is_file()]) >= 2  # a pair's file(s), classes.json
    patch = write_hovernet_patch(_sample(name), tmp_path / "patches", name=name)
    assert patch.parent == tmp_path / "patches" and not (tmp_path / "absolute-escaped.npy").exists()


def test_the_napari_export_keeps_the_hovernet_patch_inside_the_folder(tmp_path):
    from napari_cosynth.napari.export import export_pair

    folder = tmp_path / "a" / "pairs"
    path, _ = export_pair(_sample("../../escaped"), folder, hovernet=True)
    assert folder in path.parents
    assert _escaped(tmp_path, folder) == []
    assert len(list((folder / "hovernet").glob("*.npy"))) == 1
