"""RePaint's resampling jumps in fixed-map sampling: the jump itself, call counts, exactness, errors."""

import pytest
import torch

from napari_cosynth.engine.diffusion.repaint import jump_back
from napari_cosynth.engine.diffusion.schedule import NoiseSchedule
from napari_cosynth.errors import CosynthError
from test_engine_sampler import K, StandIn, _conds, _run


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(1000, "cosine")


def test_the_jump_is_the_forward_transition(schedule):
    s, t = 300, 500
    a = float(schedule.abar(torch.tensor(t)) / schedule.abar(torch.tensor(s)))
    x = torch.full((4, 3, 64, 64), 0.5)
    labels = torch.full((4, 64, 64), 2)
    g = torch.Generator().manual_seed(0)
    image, _distance, new_labels = jump_back(schedule, K, x, x[:, :1], labels, s, t, g)
    assert abs(float(image.mean()) - a**0.5 * 0.5) < 0.01
    assert abs(float(image.std()) - (1 - a) ** 0.5) < 0.01
    kept = float((new_labels == 2).float().mean())
    assert abs(kept - (a + (1 - a) / K)) < 0.01


@pytest.mark.parametrize("kind", ["ddim", "dpm++2m", "unipc"])
def test_jumps_retake_every_step_but_the_last_and_keep_the_maps_exact(kind, schedule):
    model = StandIn()
    g = torch.Generator().manual_seed(9)
    labels = torch.randint(0, K, (2, 8, 8), generator=g)
    distance = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    known = {"labels": labels, "distance": distance}
    out = _run(model, schedule, steps=6, guidance=2.0, kind=kind, known=known, resample=3)
    assert model.calls == [4] * (5 * 3 + 1)
    assert torch.equal(out.labels, labels) and torch.equal(out.distance, distance)
    again = _run(model, schedule, steps=6, guidance=2.0, kind=kind, known=known, resample=3)
    plain = _run(model, schedule, steps=6, guidance=2.0, kind=kind, known=known)
    assert torch.equal(out.image, again.image) and not torch.equal(out.image, plain.image)


def test_resample_one_is_the_plain_sampler(schedule):
    model = StandIn()
    known = {"labels": torch.ones(2, 8, 8, dtype=torch.long)}
    a = _run(model, schedule, steps=5, known=known)
    b = _run(model, schedule, steps=5, known=known, resample=1)
    assert torch.equal(a.image, b.image) and torch.equal(a.distance, b.distance)


def test_bad_resample_is_refused(schedule):
    from napari_cosynth.engine.diffusion.sampler import sample

    model = StandIn()
    cond, uncond = _conds(model)
    known = {"labels": torch.ones(2, 8, 8, dtype=torch.long)}
    for kwargs, message in [({"resample": 0, "known": known}, "resample must be a whole number >= 1"),
                            ({"resample": 2}, "applies to fixed-map sampling only")]:
        with pytest.raises(CosynthError, match=message):
            sample(model, cond, uncond, (2, 8, 8), schedule=schedule, **kwargs)
    assert model.calls == []
