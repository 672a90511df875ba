"""Generation through CoSynthPipeline: pairs from points and prompts, checks on the request,
reproducibility, fixed-map redraws."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from napari_cosynth import __version__
from napari_cosynth.engine.config import CosynthConfig
from napari_cosynth.engine.networks.checkpoint import load_model, resolve_model, save_model
from napari_cosynth.engine.networks.model import CoSynNet
from napari_cosynth.engine.networks.text import PromptTooLongError
from napari_cosynth.engine.pipeline.card import ModelCard
from napari_cosynth.engine.pipeline.conditions import GenerationProgress
from napari_cosynth.engine.pipeline.pipeline import CoSynthPipeline
from napari_cosynth.errors import CheckpointError, CosynthError
from napari_cosynth.labels.instances import SeparationParams
from napari_cosynth.progress import run_to_end
from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.seeds import pair_seed
from napari_cosynth.vocabularies import CONSEP
from test_engine_train import TINY_CPU

H = W = 32


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny untrained model saved as a checkpoint (so its card is the real thing)."""
    config = CosynthConfig.from_yaml(TINY_CPU).with_overrides(
        {"diffusion.timesteps": 20, "data.crop_size": 32}
    )
    torch.manual_seed(0)
    model = CoSynNet(config.model, config.text, CONSEP.n_classes)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_model(folder, model, config, {"classes": list(CONSEP.names), "tissues": ["colon"],
                                       "model_id": "tiny-test"})
    return folder


@pytest.fixture(scope="module")
def pipe(tiny_folder):
    return CoSynthPipeline.from_pretrained(tiny_folder)


def _points():
    return PointTable([[4.0, 5.0], [20.0, 10.0], [12.0, 25.0]], [1, 3, 4])


def _gen(pipe, **kw):
    kw.setdefault("steps", 3)
    kw.setdefault("seed", 11)
    return pipe.generate(kw.pop("points", _points()), size=kw.pop("shape", (H, W)), **kw)


def test_generate_returns_complete_pairs_with_provenance(pipe):
    run = _gen(pipe, n=2)
    progress = []
    while True:
        try:
            progress.append(next(run))
        except StopIteration as stop:
            pairs = stop.value
            break
    assert [p.step for p in progress] == [1, 2, 3]
    assert all(isinstance(p, GenerationProgress) for p in progress)
    assert len(pairs) == 2
    for i, pair in enumerate(pairs):
        assert isinstance(pair, Sample)
        assert pair.image.shape == (H, W, 3) and pair.image.dtype == np.uint8
        assert pair.semantic.shape == (H, W) and pair.semantic.dtype == np.uint8
        assert pair.distance.dtype == np.float32 and 0 <= pair.distance.min() <= pair.distance.max() <= 1
        assert pair.instances.shape == (H, W) and len(pair.classes) == pair.instances.max()
        assert pair.vocabulary == CONSEP and pair.tissue == "colon"
        assert np.array_equal(pair.points.xy, _points().xy)
        prov = pair.provenance
        assert prov["seed"] == pair_seed(11, i) and prov["base_seed"] == 11
        assert prov["index"] == i and prov["n"] == 2
        assert prov["sampler"] == "unipc" and prov["steps"] == 3 and prov["guidance"] == 2.0
        assert prov["model_id"] == "tiny-test" and prov["version"] == __version__ and prov["device"] == "cpu"
        # The built prompt names the tissue and exactly the points' classes.
        assert prov["prompt"].startswith("high quality histopathology colon tissue image")
        for name in ("other", "epithelial", "spindle-shaped"):
            assert name in prov["prompt"]
        assert "inflammatory" not in prov["prompt"]


def test_same_seed_same_pairs_other_seed_differs(pipe):
    a = run_to_end(_gen(pipe, seed=5))[0]
    b = run_to_end(_gen(pipe, seed=5))[0]
    c = run_to_end(_gen(pipe, seed=6))[0]
    for key in ("image", "semantic", "distance", "instances"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.image, c.image)


def test_a_drawn_seed_is_recorded_and_reproduces_the_pair(pipe):
    a = run_to_end(_gen(pipe, seed=None))[0]
    seed = a.provenance["seed"]
    assert isinstance(seed, int) and seed >= 0
    b = run_to_end(_gen(pipe, seed=seed))[0]
    assert np.array_equal(a.image, b.image) and a.provenance["prompt"] == b.provenance["prompt"]


def test_reference_sampler_takes_every_timestep(pipe):
    run = _gen(pipe, sampler="reference", steps=None, guidance=1.0)
    steps = []
    while True:
        try:
            steps.append(next(run).total)
        except StopIteration as stop:
            pair = stop.value[0]
            break
    assert set(steps) == {20} and len(steps) == 20 and pair.provenance["steps"] == 20


def test_given_prompt_and_previews(pipe):
    run = _gen(pipe, prompt="a colon patch", preview_every=1)
    first = next(run)
    assert first.preview["image"].shape == (1, H, W, 3) and first.preview["image"].dtype == np.uint8
    assert first.preview["semantic"].shape == (1, H, W)
    pairs = run_to_end(run)
    assert pairs[0].provenance["prompt"] == "a colon patch"


def test_bad_requests_are_refused_when_called(pipe):
    off = PointTable([[4.0, 5.0], [40.0, 3.0], [-2.0, 8.0]], [1, 2, 2])
    outside = r"2 of 3 point\(s\) lie outside the 32x32 canvas \(first at x=40.0, y=3.0\)"
    with pytest.raises(CosynthError, match=outside):
        _gen(pipe, points=off)
    with pytest.raises(CosynthError, match="class id 7 is outside 1..4"):
        _gen(pipe, points=PointTable([[3.0, 3.0]], [7]))
    with pytest.raises(PromptTooLongError, match=r"has \d+ tokens but the text encoder takes at most 77"):
        _gen(pipe, prompt="nuclei " * 100)
    with pytest.raises(CosynthError, match="size 33x32 is not supported"):
        _gen(pipe, shape=(33, 32), points=PointTable.empty())
    with pytest.raises(CosynthError, match="n must be a positive"):
        _gen(pipe, n=0)
    with pytest.raises(CosynthError, match="unknown sampler"):
        _gen(pipe, sampler="slow")


def test_generate_leaves_a_training_model_in_training_mode(pipe):
    model = pipe.model
    model.train()
    try:
        run_to_end(_gen(pipe))
        assert model.training
    finally:
        model.eval()


def test_the_card_reads_the_checkpoint(pipe, tiny_folder):
    card = pipe.card
    assert card.vocabulary == CONSEP and card.model_id == "tiny-test" and card.tissues == ("colon",)
    _model, meta = load_model(tiny_folder)
    assert card.timesteps == 20 and card.canvas == 32 and card.magnification == meta["magnification"]
    with pytest.raises(CheckpointError, match="no class vocabulary"):
        ModelCard.from_meta({**meta, "classes": []})


# ------------------------------------------------------------------------------- fixed-map redraws


@pytest.fixture(scope="module")
def pair(pipe):
    return run_to_end(_gen(pipe, seed=3))[0]


def test_resynthesize_image_keeps_the_edited_maps_exactly(pipe, pair):
    edited_sem = pair.semantic.copy()
    edited_sem[:8, :8] = 2
    edited = pair.with_(semantic=edited_sem)
    out = pipe.resynthesize(edited, target="image", steps=3, seed=1)
    assert np.array_equal(out.semantic, edited_sem) and np.array_equal(out.distance, pair.distance)
    assert not np.array_equal(out.image, pair.image)
    assert out.provenance["resynthesized"] == "image" and out.provenance["seed"] == 1
    again = run_to_end(pipe.resynthesize_steps(edited, steps=3, seed=1))
    assert np.array_equal(again.image, out.image)


def test_an_edited_semantic_map_carries_its_erasure_into_every_map(pipe):
    """pipe.resynthesize(pair, edited_semantic): the instances, distance map and points follow the edit."""
    from data_fixtures import disk_instances, grid_centres
    from napari_cosynth.labels.distance import distance_map

    instances = disk_instances((H, W), grid_centres((H, W), 3), radius=3)
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    pair = Sample(image, instances, np.array([1, 3, 4]), CONSEP, tissue="colon", magnification=20.0)
    pair = pair.with_(semantic=pair.semantic_map(), distance=pair.distance_map())
    assert pair.n_nuclei == 3
    gone = pair.instances == 1
    edited_sem = pair.semantic.copy()
    edited_sem[gone] = 0
    out = pipe.resynthesize(pair, edited_sem, steps=3, seed=1)
    assert np.array_equal(out.semantic, edited_sem)
    assert out.n_nuclei == pair.n_nuclei - 1 and not out.instances[gone].any()
    assert np.array_equal(out.distance, distance_map(out.instances).astype(np.float32))
    assert not out.distance[gone].any() and pair.distance[gone].any()


def test_resynthesize_image_inside_a_region_only(pipe, pair):
    region = np.zeros((H, W), bool)
    region[8:24, 8:24] = True
    out = pipe.resynthesize(pair, target="image", region=region, steps=3, seed=2)
    assert np.array_equal(out.image[~region], pair.image[~region])
    assert not np.array_equal(out.image[region], pair.image[region])
    assert np.array_equal(out.semantic, pair.semantic)


def test_resynthesize_labels_keeps_the_image(pipe, pair):
    out = pipe.resynthesize(pair, target="labels", steps=3, seed=4)
    assert np.array_equal(out.image, pair.image)
    assert out.semantic.shape == (H, W) and out.distance.dtype == np.float32
    assert out.provenance["resynthesized"] == "labels"
    with pytest.raises(CosynthError, match="target must be one of"):
        pipe.resynthesize_steps(pair, target="both")
    with pytest.raises(CosynthError, match="boolean 32x32 mask"):
        pipe.resynthesize_steps(pair, region=np.zeros((4, 4), bool))


def test_resynthesize_of_annotated_instances_keeps_them(pipe, pair):
    annotated = Sample(pair.image, pair.instances, pair.classes, CONSEP, tissue="colon")
    out = pipe.resynthesize(annotated, target="image", steps=2, seed=0)
    assert np.array_equal(out.instances, pair.instances) and np.array_equal(out.classes, pair.classes)


def test_the_canvas_prefers_the_models_named_canvas_then_its_training_crop(tiny_folder):
    _model, meta = load_model(tiny_folder)
    meta = {k: v for k, v in meta.items() if k not in ("canvas_size", "patch_size")}
    assert ModelCard.from_meta({**meta, "canvas_size": 128, "patch_size": 64}).canvas == 128
    assert ModelCard.from_meta({**meta, "patch_size": 64}).canvas == 64
    assert ModelCard.from_meta(meta).canvas == 32  # the config's crop


def test_a_model_may_carry_its_own_instance_recovery_settings(tiny_folder):
    _model, meta = load_model(tiny_folder)
    preset = SeparationParams.for_generated(meta["magnification"])
    assert ModelCard.from_meta(meta).separation == preset  # no entry: the preset, pairs redrawn as before
    card = ModelCard.from_meta({**meta, "separation": {"min_marker_size": 5}})
    assert card.separation == replace(preset, min_marker_size=5)
    with pytest.raises(CheckpointError, match="min_marker_sise"):
        ModelCard.from_meta({**meta, "separation": {"min_marker_sise": 5}})
    with pytest.raises(CheckpointError, match="min_marker_size must be a whole number"):
        ModelCard.from_meta({**meta, "separation": {"min_marker_size": 0}})


def test_pairs_record_how_their_instances_were_cut(pipe, pair):
    # The tiny model carries no "separation" entry: its pairs are cut with the generated-map preset.
    recorded = pair.provenance["instance_recovery"]
    assert recorded == asdict(SeparationParams.for_generated(pair.magnification))
    assert recorded["foreground"] == "semantic_or_distance"


def test_the_bundled_model_cuts_instances_with_the_settings_chosen_on_its_output():
    meta = json.loads((resolve_model("default") / "config.json").read_text())
    card = ModelCard.from_meta(meta)
    assert card.separation.min_marker_size == 5 and card.separation.foreground == "semantic_or_distance"
    assert card.separation.split_depth == 0  # tried and not adopted (docs/labels.md)
