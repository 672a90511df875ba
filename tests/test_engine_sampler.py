"""The fast (DDIM) and reference samplers: steps, guidance batching, fixed maps, seeding, stopping,
previews. The multistep solvers are tested in test_engine_solvers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from model_fixtures import small_cosynnet
from napari_cosynth.engine.diffusion.sampler import (
    SampleOutput,
    SamplerStep,
    _predict,
    sample,
)
from napari_cosynth.engine.diffusion.schedule import NoiseSchedule
from napari_cosynth.engine.networks.model import Conditions, ModelOutput
from napari_cosynth.errors import CosynthError
from napari_cosynth.progress import run_to_end as drain

K = 4


class StandIn(nn.Module):
    """A tiny model with CoSynNet's interface (and its Conditions); records every forward's batch size."""

    def __init__(self, n_classes=K, multiple=4):
        super().__init__()
        torch.manual_seed(0)
        self.n_classes = n_classes
        self.multiple = multiple
        self.embed = nn.Embedding(n_classes, 3)
        self.conv = nn.Conv2d(3 + 1 + 3 + 2 + 1, 4 + n_classes, 3, padding=1)
        self.text = nn.Linear(2, 4 + n_classes)
        self.calls: list[int] = []

    def check_size(self, h, w):
        if h % self.multiple or w % self.multiple:
            raise CosynthError(f"size {h}x{w}: height and width must be multiples of {self.multiple}")

    def encode_conditions(self, point_map, tokens, drop_text=None, drop_points=None):
        pooled = torch.stack([tokens.float().mean(1), tokens.float().std(1)], 1) / 100
        feats = torch.stack([(point_map > 0).float(), point_map.float() / self.n_classes], 1)
        if drop_text is not None:
            pooled = torch.where(drop_text[:, None], torch.zeros_like(pooled), pooled)
        if drop_points is not None:
            feats = torch.where(drop_points[:, None, None, None], torch.zeros_like(feats), feats)
        return Conditions(pooled[:, None], pooled, feats)

    def forward(self, x_image, x_distance, x_labels, t, cond):
        self.calls.append(x_labels.shape[0])
        tt = (t.float() / 1000).view(-1, 1, 1, 1).expand(-1, 1, *x_labels.shape[1:])
        lab = self.embed(x_labels).permute(0, 3, 1, 2)
        y = self.conv(torch.cat([x_image, x_distance, lab, cond.point_features, tt], 1))
        y = 0.1 * (y + self.text(cond.text_pooled)[:, :, None, None])
        # eps ~ x_t, right at high noise, keeps the predicted x0 away from the clip at +-1
        return ModelOutput(x_image + y[:, :3], x_distance + y[:, 3:4], 10 * y[:, 4:])


class Oracle(nn.Module):
    """Knows the data is one fixed pair: predicts its noise exactly and its labels with certainty."""

    def __init__(self, image, distance, labels, schedule):
        super().__init__()
        self.image, self.distance, self.labels = image, distance, labels
        self.schedule = schedule
        self.n_classes = K
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the sampler a device

    def check_size(self, h, w):
        pass

    def forward(self, x_image, x_distance, x_labels, t, cond):
        abar = self.schedule.abar(t).float().view(-1, 1, 1, 1)
        if self.schedule.prediction == "v":
            # v = sqrt(abar) eps - sqrt(1 - abar) x0, with eps read off x_t
            head = lambda x, x0: (abar.sqrt() * x - x0) / (1 - abar).sqrt()
        else:
            head = lambda x, x0: (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        logits = 50.0 * nn.functional.one_hot(self.labels, K).permute(0, 3, 1, 2).float()
        return ModelOutput(head(x_image, self.image), head(x_distance, self.distance), logits)


class GaussianOracle(nn.Module):
    """Bayes-optimal noise prediction for data that is i.i.d. N(0, var) in every channel."""

    def __init__(self, var, schedule):
        super().__init__()
        self.var, self.schedule, self.n_classes = var, schedule, K
        self.anchor = nn.Parameter(torch.zeros(1))

    def check_size(self, h, w):
        pass

    def forward(self, x_image, x_distance, x_labels, t, cond):
        abar = self.schedule.abar(t).float().view(-1, 1, 1, 1)
        eps = lambda x: (1 - abar).sqrt() * x / (abar * self.var + 1 - abar)
        return ModelOutput(
            eps(x_image),
            eps(x_distance),
            torch.zeros(x_labels.shape[0], K, *x_labels.shape[1:]),
        )


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(1000, "cosine")


def _conds(model, b=2, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    points = torch.zeros(b, h, w, dtype=torch.long)
    points[:, 0, 1] = 1
    points[:, h - 1, w - 2] = 3
    tokens = torch.randint(1, 1000, (b, 12), generator=g)
    cond = model.encode_conditions(points, tokens)
    uncond = model.encode_conditions(points, tokens, drop_text=torch.ones(b, dtype=torch.bool))
    return cond, uncond


def _run(model, schedule, b=2, h=8, w=8, seed=0, **kwargs):
    cond, uncond = _conds(model, b, h, w)
    gen = sample(
        model,
        cond,
        uncond,
        (b, h, w),
        generator=torch.Generator().manual_seed(seed),
        schedule=schedule,
        **kwargs,
    )
    return drain(gen)


def test_fast_sampler_shapes_and_dtypes(schedule):
    model = StandIn()
    out = _run(model, schedule, b=3, h=8, w=12, steps=5)
    assert isinstance(out, SampleOutput)
    assert out.image.shape == (3, 3, 8, 12) and out.image.dtype == torch.float32
    assert out.distance.shape == (3, 1, 8, 12) and out.distance.dtype == torch.float32
    assert out.labels.shape == (3, 8, 12) and out.labels.dtype == torch.long
    assert float(out.image.abs().max()) <= 1.0 and float(out.distance.abs().max()) <= 1.0
    assert int(out.labels.min()) >= 0 and int(out.labels.max()) < K


def test_step_counts_fast_and_reference(schedule):
    model = StandIn()
    cond, _ = _conds(model, b=1, h=4, w=4)
    steps = list(sample(model, cond, None, (1, 4, 4), schedule=schedule))
    assert [s.step for s in steps] == list(range(1, 51)) and {s.total for s in steps} == {50}
    assert len(model.calls) == 50
    model.calls.clear()
    steps = list(sample(model, cond, None, (1, 4, 4), steps=7, schedule=schedule))
    assert len(steps) == 7 and len(model.calls) == 7
    model.calls.clear()
    steps = list(sample(model, cond, None, (1, 4, 4), kind="reference", schedule=schedule))
    assert len(steps) == 1000 and steps[-1] == SamplerStep(1000, 1000, None)
    assert len(model.calls) == 1000


def test_guidance_runs_one_batched_forward_per_step(schedule):
    model = StandIn()
    _run(model, schedule, b=3, steps=6, guidance=2.0)
    assert model.calls == [6] * 6  # one forward of 2B per step
    model.calls.clear()
    _run(model, schedule, b=3, steps=6, guidance=1.0)
    assert model.calls == [3] * 6


def test_guidance_combines_all_three_heads(schedule):
    model = StandIn()
    cond, uncond = _conds(model, b=2)
    g = torch.Generator().manual_seed(0)
    x_image, x_distance = (
        torch.randn(2, 3, 8, 8, generator=g),
        torch.randn(2, 1, 8, 8, generator=g),
    )
    x_labels = torch.randint(0, K, (2, 8, 8), generator=g)
    with torch.no_grad():
        guided = _predict(model, x_image, x_distance, x_labels, 500, Conditions.cat(cond, uncond), 3.0)
        t = torch.full((2,), 500)
        c = model(x_image, x_distance, x_labels, t, cond)
        u = model(x_image, x_distance, x_labels, t, uncond)
    expected = [
        u.pred_image + 3 * (c.pred_image - u.pred_image),
        u.pred_distance + 3 * (c.pred_distance - u.pred_distance),
        u.label_logits + 3 * (c.label_logits - u.label_logits),
    ]
    for got, want in zip(guided, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def assert_returns_known_data(kind, prediction, steps, eta=None):
    """A model that knows the clean maps: the sampler must end on exactly them."""
    schedule = NoiseSchedule(1000, "cosine", prediction)
    g = torch.Generator().manual_seed(4)
    image = torch.rand(1, 3, 8, 8, generator=g) * 1.6 - 0.8
    distance = torch.rand(1, 1, 8, 8, generator=g) * 2 - 1
    labels = torch.randint(0, K, (1, 8, 8), generator=g)
    model = Oracle(image, distance, labels, schedule)
    out = drain(sample(model, None, None, (1, 8, 8), kind=kind, steps=steps, schedule=schedule, eta=eta,
                       generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(out.image, image, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.distance, distance, atol=1e-4, rtol=0)
    assert torch.equal(out.labels, labels)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("kind", ["fast", "reference"])
def test_a_model_that_knows_the_data_returns_it(kind, prediction):
    assert_returns_known_data(kind, prediction, None if kind == "reference" else 10)


@pytest.mark.slow
def test_reference_sampler_draws_the_data_variance(schedule):
    """With the Bayes-optimal noise prediction for N(0, 0.04) data, ancestral samples have std 0.2."""
    model = GaussianOracle(0.04, schedule)
    out = drain(
        sample(
            model,
            None,
            None,
            (2, 16, 16),
            kind="reference",
            generator=torch.Generator().manual_seed(0),
            schedule=schedule,
        )
    )
    values = torch.cat([out.image.flatten(), out.distance.flatten()])
    assert abs(float(values.std()) - 0.2) < 0.014
    assert abs(float(values.mean())) < 0.02


def test_fixed_maps_are_exact_inside_the_mask_at_the_end(schedule):
    model = StandIn()
    g = torch.Generator().manual_seed(9)
    known_labels = torch.randint(0, K, (2, 8, 8), generator=g)
    known_distance = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:6, 1:7] = True
    known = {"labels": known_labels, "distance": known_distance, "mask": mask}
    out = _run(model, schedule, steps=8, guidance=2.0, known=known)
    inside = mask[:, 0]
    assert torch.equal(out.labels[inside], known_labels[inside])
    assert torch.equal(out.distance[mask], known_distance[mask])
    # outside the mask the maps are drawn, not copied
    assert not torch.equal(out.distance[~mask], known_distance[~mask])
    # the image everywhere (no mask): the image is the known one, labels and distance are drawn
    image = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    out = _run(model, schedule, steps=8, known={"image": image})
    assert torch.equal(out.image, image)


def test_fixed_maps_with_a_mask_per_map(schedule):
    """Redraw the image inside a region only, with the labels held everywhere."""
    model = StandIn()
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    labels = torch.randint(0, K, (2, 8, 8), generator=g)
    region = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    region[:, :, 2:6, 2:6] = True
    known = {"image": image, "labels": labels, "mask": {"image": ~region, "labels": None}}
    out = _run(model, schedule, steps=6, guidance=2.0, known=known)
    outside = (~region).expand(-1, 3, -1, -1)
    assert torch.equal(out.image[outside], image[outside])
    assert not torch.equal(out.image[~outside], image[~outside])
    assert torch.equal(out.labels, labels)
    with pytest.raises(CosynthError, match="not among the fixed maps"):
        sample(model, *_conds(model), (2, 8, 8), known={"image": image, "mask": {"labels": region}})


def test_fixed_maps_steer_the_other_maps(schedule):
    """Known labels everywhere are forward-noised at every step, so the model always sees them."""
    model = StandIn()
    seen = []
    known_labels = torch.randint(0, K, (1, 8, 8), generator=torch.Generator().manual_seed(2))
    forward = model.forward

    def spy(x_image, x_distance, x_labels, t, cond):
        seen.append((int(t[0]), float((x_labels == known_labels).float().mean())))
        return forward(x_image, x_distance, x_labels, t, cond)

    model.forward = spy
    _run(model, schedule, b=1, steps=10, known={"labels": known_labels})
    # agreement with the known map grows as the noise level falls (chance level is 1/K at t = T-1)
    agreement = [a for _, a in seen]
    assert agreement[-1] > 0.95 and agreement[0] < 0.6


@pytest.mark.slow
def test_same_seed_same_output_different_seed_differs(schedule):
    model = StandIn()
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, :4] = True
    known = {"labels": torch.ones(2, 8, 8, dtype=torch.long), "mask": mask}
    a = _run(model, schedule, seed=11, steps=6, guidance=2.0, known=known)
    b = _run(model, schedule, seed=11, steps=6, guidance=2.0, known=known)
    c = _run(model, schedule, seed=12, steps=6, guidance=2.0, known=known)
    for name in ("image", "distance", "labels"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))
    r1 = _run(model, schedule, b=1, h=4, w=4, seed=3, kind="reference")
    r2 = _run(model, schedule, b=1, h=4, w=4, seed=3, kind="reference")
    assert torch.equal(r1.image, r2.image) and torch.equal(r1.labels, r2.labels)


def test_stopping_between_steps(schedule):
    model = StandIn()
    cond, uncond = _conds(model)
    gen = sample(
        model,
        cond,
        uncond,
        (2, 8, 8),
        steps=20,
        guidance=2.0,
        schedule=schedule,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(3):
        step = next(gen)
        # the sampler's no_grad does not leak into the caller between steps
        assert torch.is_grad_enabled()
    gen.close()
    assert step.step == 3 and step.total == 20
    assert len(model.calls) == 3


def test_previews_every_n_steps(schedule):
    model = StandIn()
    cond, _ = _conds(model, b=2)
    steps = list(sample(model, cond, None, (2, 8, 8), steps=10, preview_every=4, schedule=schedule))
    with_preview = [s.step for s in steps if s.preview is not None]
    assert with_preview == [4, 8]
    preview = steps[3].preview
    assert preview["image"].shape == (2, 3, 8, 8) and preview["distance"].shape == (
        2,
        1,
        8,
        8,
    )
    assert preview["labels"].shape == (2, 8, 8) and preview["labels"].dtype == torch.long
    assert float(preview["image"].abs().max()) <= 1.0


def test_bad_arguments_are_refused_when_called(schedule):
    model = StandIn()
    cond, uncond = _conds(model)
    ok = {"schedule": schedule, "generator": torch.Generator().manual_seed(0)}
    cases = [
        ({"kind": "euler"}, "unknown sampler"),
        ({"steps": 0}, "sampler steps"),
        ({"steps": 1001}, "sampler steps"),
        ({"kind": "reference", "steps": 50}, "reference sampler runs all 1000"),
        ({"guidance": float("nan")}, "guidance"),
        ({"guidance": -1.0}, "guidance"),
        ({"preview_every": -2}, "preview_every"),
        (
            {"known": {"semantic": torch.zeros(2, 8, 8, dtype=torch.long)}},
            "unknown key",
        ),
        (
            {"known": {"labels": torch.zeros(2, 4, 4, dtype=torch.long)}},
            "'labels' has shape",
        ),
        ({"known": {"labels": torch.full((2, 8, 8), K)}}, "classes 0..3"),
        ({"known": {"labels": torch.zeros(2, 8, 8)}}, "int64"),
        ({"known": {"image": torch.full((2, 3, 8, 8), 2.0)}}, r"\[-1, 1\]"),
        (
            {"known": {"mask": torch.ones(2, 1, 8, 8, dtype=torch.bool)}},
            "no image, distance or labels",
        ),
        (
            {
                "known": {
                    "image": torch.zeros(2, 3, 8, 8),
                    "mask": torch.ones(2, 1, 8, 8),
                }
            },
            "bool",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(CosynthError, match=message):
            sample(model, cond, uncond, (2, 8, 8), **{**ok, **kwargs})
    with pytest.raises(CosynthError, match="uncond"):
        sample(model, cond, None, (2, 8, 8), guidance=2.0, **ok)
    with pytest.raises(CosynthError, match="multiples of 4"):
        sample(model, cond, uncond, (2, 8, 6), **ok)
    assert model.calls == []


def test_schedule_from_a_config_and_default():
    @dataclass
    class Cfg:
        timesteps: int = 200
        schedule: str = "cosine"

    model = StandIn()
    cond, _ = _conds(model, b=1, h=4, w=4)
    steps = list(sample(model, cond, None, (1, 4, 4), kind="reference", schedule=Cfg()))
    assert len(steps) == 200
    model.calls.clear()
    gen = sample(model, cond, None, (1, 4, 4), kind="reference")
    assert next(gen).total == 1000
    gen.close()


# -- with the real network ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_model():
    return small_cosynnet(n_classes=K).eval()


def test_fast_sampler_with_cosynnet(real_model, schedule):
    from napari_cosynth.engine.config import DiffusionConfig

    model = real_model
    points = torch.zeros(2, 8, 8, dtype=torch.long)
    points[0, 2, 2] = 1
    points[1, 5, 6] = 3
    tokens = model.text.tokenize(["nuclei of type a", "nuclei of type c"])
    cond = model.encode_conditions(points, tokens)
    uncond = model.encode_conditions(points, tokens, drop_text=torch.ones(2, dtype=torch.bool))
    batches, encoder_calls = [], []
    hooks = [
        model.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0])),
        model.points.register_forward_pre_hook(lambda m, args: encoder_calls.append("points")),
        model.text.register_forward_pre_hook(lambda m, args: encoder_calls.append("text")),
    ]
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, :, :4] = True
    known = {
        "labels": torch.randint(0, K, (2, 8, 8), generator=torch.Generator().manual_seed(1)),
        "mask": mask,
    }
    try:
        runs = [
            drain(
                sample(
                    model,
                    cond,
                    uncond,
                    (2, 8, 8),
                    steps=4,
                    guidance=2.0,
                    known=known,
                    generator=torch.Generator().manual_seed(seed),
                    schedule=DiffusionConfig(),
                )
            )
            for seed in (5, 5, 6)
        ]
    finally:
        for hook in hooks:
            hook.remove()
    assert batches == [4] * 12  # 3 runs x 4 steps, each one forward of 2B
    assert encoder_calls == []  # conditions are encoded once, by the caller, not per step
    a, b, c = runs
    assert a.image.shape == (2, 3, 8, 8) and a.distance.shape == (2, 1, 8, 8) and a.labels.shape == (2, 8, 8)
    assert torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.image, c.image)
    assert torch.equal(a.labels[mask[:, 0]], known["labels"][mask[:, 0]])
    with pytest.raises(CosynthError, match="7"):
        sample(model, cond, uncond, (2, 7, 8), generator=torch.Generator().manual_seed(0))
