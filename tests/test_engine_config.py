"""Run configs: defaults, YAML round trip, and clear refusals naming the key path."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from napari_cosynth.engine.config import (
    CosynthConfig,
    DataConfig,
    DiffusionConfig,
    LossWeights,
    ModelConfig,
    TextConfig,
    TrainConfig,
)
from napari_cosynth.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _refused(d, pattern):
    with pytest.raises(ConfigError, match=pattern):
        CosynthConfig.from_dict(d)


def test_defaults_round_trip_through_dict_and_yaml(tmp_path):
    config = CosynthConfig()
    assert config.diffusion.loss_weights == LossWeights(image=9.0, distance=1.0, labels=3.0)
    assert config.diffusion.drop_text == 0.1 and config.text.context_length == 77
    assert CosynthConfig.from_dict(config.to_dict()) == config
    config.to_yaml(tmp_path / "c.yaml")
    assert CosynthConfig.from_yaml(tmp_path / "c.yaml") == config
    assert CosynthConfig.from_dict({}) == config


def test_unknown_key_names_the_path_and_a_suggestion(tmp_path):
    _refused({"train": {"stpes": 10}}, r"^train\.stpes: unknown key; did you mean train\.steps\?$")
    _refused({"diffusion": {"loss_weights": {"imgae": 1}}}, r"diffusion\.loss_weights\.imgae: .*loss_weights\.image")
    # A key in the wrong section points to the right one.
    _refused({"train": {"crop_size": 64}}, r"train\.crop_size: unknown key; did you mean data\.crop_size\?")
    _refused({"trian": {}}, r"trian: unknown section; did you mean train\?")
    _refused({"train": {"zzz": 1}}, r"train\.zzz: unknown key; known keys: steps, batch_size")
    file = tmp_path / "bad.yaml"
    file.write_text("train:\n  stpes: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: train\.stpes: unknown key; did you mean train\.steps"):
        CosynthConfig.from_yaml(file)


def test_wrong_types_are_refused_with_the_key():
    _refused({"train": {"steps": "100"}}, r"train\.steps: expected an integer, got '100' \(str\)")
    _refused({"train": {"steps": True}}, r"train\.steps: expected an integer")
    _refused({"data": {"augment": "yes"}}, r"data\.augment: expected true or false")
    _refused({"model": {"channel_mult": [1, 2, "x"]}}, r"model\.channel_mult\[2\]: expected an integer")
    _refused({"model": {"channel_mult": 4}}, r"model\.channel_mult: expected a list of integers")
    _refused({"data": {"classes": "epithelial"}}, r"data\.classes: expected a list of strings")
    _refused({"train": "fast"}, r"train: expected a mapping")


def test_yaml_style_exponent_strings_are_numbers_for_float_keys():
    # PyYAML reads 1e-4 (no dot) as a string; a float key takes it as the number it spells.
    assert CosynthConfig.from_dict({"train": {"lr": "1e-4"}}).train.lr == 1e-4
    _refused({"train": {"lr": "fast"}}, r"train\.lr: expected a number")


def test_choices_and_ranges():
    _refused({"train": {"mixed_precision": "fp8"}}, r"train\.mixed_precision: 'fp8' is not one of no, bf16, fp16")
    _refused({"diffusion": {"drop_text": 1.5}}, r"diffusion\.drop_text: must be <= 1")
    _refused({"train": {"batch_size": 0}}, r"train\.batch_size: must be >= 1")
    _refused({"data": {"format": "endonuke"}}, r"data\.format: 'endonuke' is not one of")
    _refused({"text": {"kind": "clip"}}, r"text\.kind: 'clip' is not one of small, open_clip")


def test_rules_across_keys():
    _refused({"data": {"crop_size": 30}}, r"data\.crop_size: 30 is not a multiple of 4, .*try 32")
    _refused({"model": {"attention_levels": [3]}}, r"model\.attention_levels: level 3 does not exist")
    _refused({"model": {"base_channels": 12}}, r"model\.norm_num_groups: 8 does not divide the 12 channels")
    _refused({"model": {"attention_head_dim": 48}}, r"model\.attention_head_dim: 48 does not divide")
    _refused({"text": {"kind": "open_clip"}}, r"text\.open_clip_model: required")
    _refused({"text": {"kind": "open_clip", "open_clip_model": "ViT-B-32"}}, r"text\.pretrained: required")
    _refused({"text": {"pretrained": "w.safetensors"}}, r"text\.kind is 'small'")
    _refused({"text": {"width": 30, "heads": 4}}, r"text\.heads: 4 heads do not divide text\.width 30")
    _refused({"data": {"classes": ["background", "a"]}}, r"data\.classes: list the nucleus classes only")
    ok = CosynthConfig.from_dict(
        {"text": {"kind": "open_clip", "open_clip_model": "local-dir:/models/quilt"}}
    )
    assert ok.text.pretrained is None and ok.text.frozen


def test_learning_rate_schedules_decay_over_the_last_steps():
    from napari_cosynth.engine.config import TrainConfig

    constant = TrainConfig(steps=4, lr=1.0)
    assert [constant.learning_rate(i) for i in range(4)] == [1.0] * 4
    linear = TrainConfig(steps=6, lr=2.0, lr_schedule="linear", lr_decay_steps=4)
    assert [linear.learning_rate(i) for i in range(6)] == pytest.approx([2.0, 2.0, 2.0, 1.5, 1.0, 0.5])
    cosine = TrainConfig(steps=4, lr=1.0, lr_schedule="cosine")  # 0: the decay spans the whole run
    assert [cosine.learning_rate(i) for i in range(4)] == pytest.approx([1.0, 0.8536, 0.5, 0.1464], abs=1e-4)
    # A resumed run given more steps than the schedule was set for stays at the end of the curve.
    assert cosine.learning_rate(9) == 0.0
    _refused({"train": {"lr_decay_steps": 10}}, r"train\.lr_decay_steps: 10 has no effect with lr_schedule 'constant'")
    _refused({"train": {"lr_schedule": "linear", "steps": 5, "lr_decay_steps": 6}},
             r"train\.lr_decay_steps: 6 is more than train\.steps \(5\)")
    _refused({"train": {"lr_schedule": "step"}}, r"train\.lr_schedule: 'step' is not one of constant, linear, cosine")


def test_sections_are_checked_when_built_in_code_too():
    with pytest.raises(ConfigError, match=r"train\.steps: must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match=r"model\.channel_mult: needs at least one level"):
        ModelConfig(channel_mult=())
    config = CosynthConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.train.steps = 5
    with pytest.raises(ConfigError, match=r"diffusion\.timesteps: expected an integer"):
        DiffusionConfig().with_(timesteps=10.5)
    with pytest.raises(ConfigError, match=r"^train\.stpes: unknown key; did you mean train\.steps\?$"):
        TrainConfig(stpes=3)
    assert TextConfig(kind="small").frozen  # only meaningful for open_clip, harmless here
    assert isinstance(ModelConfig(channel_mult=[1, 2], attention_levels=[1]).channel_mult, tuple)


def test_overrides_use_the_same_checks():
    config = CosynthConfig().with_overrides({"data.path": "/data/x", "train.steps": 5,
                                             "diffusion.loss_weights.labels": 1})
    assert config.data.path == "/data/x" and config.train.steps == 5
    assert config.diffusion.loss_weights.labels == 1.0
    with pytest.raises(ConfigError, match=r"train\.stpes: unknown key; did you mean train\.steps"):
        CosynthConfig().with_overrides({"train.stpes": 5})
    with pytest.raises(ConfigError, match=r"trian: unknown key; did you mean train"):
        CosynthConfig().with_overrides({"trian.steps": 5})
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer"):
        CosynthConfig().with_overrides({"train.steps": "x"})


def test_data_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = DataConfig(path="../shared/data")
    assert data.resolved_path() == (tmp_path / "../shared/data").resolve()
    with pytest.raises(ConfigError, match=r"data\.path: no training data given"):
        DataConfig().resolved_path()


@pytest.mark.parametrize("name", ["tiny-cpu.yaml", "default-cpu.yaml", "consep-gpu.yaml"])
def test_repository_configs_load(name, monkeypatch):
    config = CosynthConfig.from_yaml(REPO / "configs" / name)
    assert config.data.format == "consep"
    assert config.data.crop_size % config.model.size_multiple == 0
    monkeypatch.chdir(REPO)
    assert config.data.resolved_path() == (REPO.parent / "shared" / "data" / "consep" / "train").resolve()
