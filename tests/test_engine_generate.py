"""Generation: pairs from points and prompts, checks on the request, reproducibility, fixed-map redraws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cosynth import __version__
from napari_cosynth.engine.networks.checkpoint import load_model, save_model
from napari_cosynth.engine.config import CosynthConfig
from napari_cosynth.engine.pipeline.generate import (
    GenerationProgress,
    generate,
    model_vocabulary,
    resynthesize,
    run_to_end,
)
from napari_cosynth.engine.networks.model import CoSynNet
from napari_cosynth.engine.networks.text import PromptTooLongError
from napari_cosynth.errors import CosynthError
from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.vocabularies import CONSEP
from test_engine_train import TINY_CPU

H = W = 32


@pytest.fixture(scope="module")
def model_and_meta(tmp_path_factory):
    """A tiny untrained model saved and loaded as a checkpoint (so meta is the real thing)."""
    config = CosynthConfig.from_yaml(TINY_CPU).with_overrides(
        {"diffusion.timesteps": 20, "data.crop_size": 32}
    )
    torch.manual_seed(0)
    model = CoSynNet(config.model, config.text, CONSEP.n_classes)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_model(folder, model, config, {"classes": list(CONSEP.names), "tissues": ["colon"],
                                       "model_id": "tiny-test"})
    return load_model(folder)


def _points():
    return PointTable([[4.0, 5.0], [20.0, 10.0], [12.0, 25.0]], [1, 3, 4])


def _gen(model_and_meta, **kw):
    model, meta = model_and_meta
    kw.setdefault("steps", 3)
    kw.setdefault("seed", 11)
    return generate(model, meta, kw.pop("points", _points()), kw.pop("shape", (H, W)), **kw)


def test_generate_returns_complete_pairs_with_provenance(model_and_meta):
    run = _gen(model_and_meta, n=2)
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
        assert prov["seed"] == 11 and prov["index"] == i and prov["n"] == 2
        assert prov["sampler"] == "unipc" and prov["steps"] == 3 and prov["guidance"] == 2.0
        assert prov["model_id"] == "tiny-test" and prov["version"] == __version__ and prov["device"] == "cpu"
        # The built prompt names the tissue and exactly the points' classes.
        assert prov["prompt"].startswith("high quality histopathology colon tissue image")
        for name in ("other", "epithelial", "spindle-shaped"):
            assert name in prov["prompt"]
        assert "inflammatory" not in prov["prompt"]


def test_same_seed_same_pairs_other_seed_differs(model_and_meta):
    a = run_to_end(_gen(model_and_meta, seed=5))[0]
    b = run_to_end(_gen(model_and_meta, seed=5))[0]
    c = run_to_end(_gen(model_and_meta, seed=6))[0]
    for key in ("image", "semantic", "distance", "instances"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.image, c.image)


def test_a_drawn_seed_is_recorded_and_reproduces_the_pair(model_and_meta):
    a = run_to_end(_gen(model_and_meta, seed=None))[0]
    seed = a.provenance["seed"]
    assert isinstance(seed, int) and seed >= 0
    b = run_to_end(_gen(model_and_meta, seed=seed))[0]
    assert np.array_equal(a.image, b.image) and a.provenance["prompt"] == b.provenance["prompt"]


def test_reference_sampler_takes_every_timestep(model_and_meta):
    run = _gen(model_and_meta, sampler="reference", steps=None, guidance=1.0)
    steps = []
    while True:
        try:
            steps.append(next(run).total)
        except StopIteration as stop:
            pair = stop.value[0]
            break
    assert set(steps) == {20} and len(steps) == 20 and pair.provenance["steps"] == 20


def test_given_prompt_and_previews(model_and_meta):
    run = _gen(model_and_meta, prompt="a colon patch", preview_every=1)
    first = next(run)
    assert first.preview["image"].shape == (1, H, W, 3) and first.preview["image"].dtype == np.uint8
    assert first.preview["semantic"].shape == (1, H, W)
    pairs = run_to_end(run)
    assert pairs[0].provenance["prompt"] == "a colon patch"


def test_bad_requests_are_refused_when_called(model_and_meta):
    off = PointTable([[4.0, 5.0], [40.0, 3.0], [-2.0, 8.0]], [1, 2, 2])
    outside = r"2 of 3 point\(s\) lie outside the 32x32 canvas \(first at x=40.0, y=3.0\)"
    with pytest.raises(CosynthError, match=outside):
        _gen(model_and_meta, points=off)
    with pytest.raises(CosynthError, match="class id 7 is outside 1..4"):
        _gen(model_and_meta, points=PointTable([[3.0, 3.0]], [7]))
    with pytest.raises(PromptTooLongError, match=r"has \d+ tokens but the text encoder takes at most 77"):
        _gen(model_and_meta, prompt="nuclei " * 100)
    with pytest.raises(CosynthError, match="size 33x32 is not supported"):
        _gen(model_and_meta, shape=(33, 32), points=PointTable.empty())
    with pytest.raises(CosynthError, match="n must be a positive"):
        _gen(model_and_meta, n=0)
    with pytest.raises(CosynthError, match="unknown sampler"):
        _gen(model_and_meta, sampler="slow")


def test_generate_leaves_a_training_model_in_training_mode(model_and_meta):
    model, _meta = model_and_meta
    model.train()
    try:
        run_to_end(_gen(model_and_meta))
        assert model.training
    finally:
        model.eval()


def test_model_vocabulary_reads_the_checkpoint(model_and_meta):
    assert model_vocabulary(model_and_meta[1]) == CONSEP
    with pytest.raises(CosynthError, match="no class vocabulary"):
        model_vocabulary({})


# ------------------------------------------------------------------------------- fixed-map redraws


@pytest.fixture(scope="module")
def pair(model_and_meta):
    return run_to_end(_gen(model_and_meta, seed=3))[0]


def test_resynthesize_image_keeps_the_edited_maps_exactly(model_and_meta, pair):
    model, meta = model_and_meta
    edited_sem = pair.semantic.copy()
    edited_sem[:8, :8] = 2
    edited = pair.with_(semantic=edited_sem)
    out = run_to_end(resynthesize(model, meta, edited, target="image", steps=3, seed=1))
    assert np.array_equal(out.semantic, edited_sem) and np.array_equal(out.distance, pair.distance)
    assert not np.array_equal(out.image, pair.image)
    assert out.provenance["resynthesized"] == "image" and out.provenance["seed"] == 1
    again = run_to_end(resynthesize(model, meta, edited, target="image", steps=3, seed=1))
    assert np.array_equal(again.image, out.image)


def test_resynthesize_image_inside_a_region_only(model_and_meta, pair):
    model, meta = model_and_meta
    region = np.zeros((H, W), bool)
    region[8:24, 8:24] = True
    out = run_to_end(resynthesize(model, meta, pair, target="image", region=region, steps=3, seed=2))
    assert np.array_equal(out.image[~region], pair.image[~region])
    assert not np.array_equal(out.image[region], pair.image[region])
    assert np.array_equal(out.semantic, pair.semantic)


def test_resynthesize_labels_keeps_the_image(model_and_meta, pair):
    model, meta = model_and_meta
    out = run_to_end(resynthesize(model, meta, pair, target="labels", steps=3, seed=4))
    assert np.array_equal(out.image, pair.image)
    assert out.semantic.shape == (H, W) and out.distance.dtype == np.float32
    assert out.provenance["resynthesized"] == "labels"
    with pytest.raises(CosynthError, match="target must be one of"):
        resynthesize(model, meta, pair, target="both")
    with pytest.raises(CosynthError, match="boolean 32x32 mask"):
        resynthesize(model, meta, pair, region=np.zeros((4, 4), bool))


def test_resynthesize_of_annotated_instances_keeps_them(model_and_meta, pair):
    model, meta = model_and_meta
    annotated = Sample(pair.image, pair.instances, pair.classes, CONSEP, tissue="colon")
    out = run_to_end(resynthesize(model, meta, annotated, target="image", steps=2, seed=0))
    assert np.array_equal(out.instances, pair.instances) and np.array_equal(out.classes, pair.classes)


def test_default_canvas_prefers_the_models_named_canvas_then_its_training_crop():
    from napari_cosynth.engine.pipeline.generate import default_canvas

    assert default_canvas({"canvas_size": 128, "patch_size": 64}) == 128
    assert default_canvas({"patch_size": 64}) == 64
    assert default_canvas({"config": {"data": {"crop_size": 32}}}) == 32
    assert default_canvas({}) == 128
