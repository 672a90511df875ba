"""The diffusion math: shared schedule, Gaussian steps against diffusers, multinomial diffusion, loss."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from model_fixtures import small_cosynnet
from napari_cosynth.engine.config import DiffusionConfig, LossWeights
from napari_cosynth.engine.diffusion.categorical import (
    MultinomialDiffusion,
    categorical_kl,
    log_onehot,
    sample_categorical,
)
from napari_cosynth.engine.diffusion.joint import JointDiffusion
from napari_cosynth.engine.diffusion.schedule import NoiseSchedule
from napari_cosynth.engine.networks.model import ModelOutput
from napari_cosynth.errors import ConfigError, CosynthError

T = 1000


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(T, "cosine")


# -- schedule -------------------------------------------------------------------------------------


def test_alpha_bar_is_diffusers_cosine(schedule):
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    assert torch.equal(schedule.alphas_cumprod, ref)
    assert float(schedule.abar(-1)) == 1.0
    abar = schedule.abar(torch.arange(-1, T))
    assert bool((abar[1:] < abar[:-1]).all())
    assert float(abar[-1]) < 1e-8  # x_{T-1} is pure noise


def test_linear_schedule_is_diffusers_linear():
    ref = DDPMScheduler(num_train_timesteps=200, beta_schedule="linear").alphas_cumprod
    assert torch.equal(NoiseSchedule(200, "linear").alphas_cumprod, ref)


def test_unknown_schedule_is_refused():
    with pytest.raises(ConfigError, match="diffusion.schedule"):
        NoiseSchedule(T, "sigmoid")


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_quadratic_timesteps(kind):
    """The trailing grid's endpoints, with small steps at low noise, distinct for every count."""
    sched = NoiseSchedule(T, kind)
    ts = sched.sampling_timesteps(20, "quadratic")
    assert ts[0] == T - 1 and ts[-1] == 49 == sched.sampling_timesteps(20)[-1]
    gaps = [a - b for a, b in itertools.pairwise(ts)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 5 < 50 < 90 < gaps[0]
    for steps in range(1, T + 1):
        ts = sched.sampling_timesteps(steps, "quadratic")
        assert len(ts) == steps and ts[0] == T - 1 and ts[-1] == sched.sampling_timesteps(steps)[-1]
        assert all(a > b for a, b in itertools.pairwise(ts)), steps
    assert sched.sampling_timesteps(T, "quadratic") == list(range(T - 1, -1, -1))
    with pytest.raises(CosynthError, match="unknown timestep spacing 'karras'"):
        sched.sampling_timesteps(20, "karras")


def test_trailing_timesteps(schedule):
    ts = schedule.sampling_timesteps(50)
    assert ts[0] == 999 and ts[-1] == 19 and all(a - b == 20 for a, b in itertools.pairwise(ts))
    assert schedule.sampling_timesteps(T) == list(range(T - 1, -1, -1))
    # diffusers' float arange gives 62 values ending in -1 for 61 steps; ours stays exact
    for steps in (7, 30, 61, 103, 999):
        ts = schedule.sampling_timesteps(steps)
        assert len(ts) == len(set(ts)) == steps and ts[0] == T - 1 and ts[-1] >= 0
        assert all(a > b for a, b in itertools.pairwise(ts))
    for bad in (0, T + 1, 2.5):
        with pytest.raises(CosynthError, match="sampler steps"):
            schedule.sampling_timesteps(bad)


def _diffusers_ddim(prediction_type: str = "epsilon") -> DDIMScheduler:
    """diffusers' DDIM on the same cosine schedule, trailing spacing and clipping as ours."""
    return DDIMScheduler(
        num_train_timesteps=T,
        beta_schedule="squaredcos_cap_v2",
        timestep_spacing="trailing",
        set_alpha_to_one=True,
        clip_sample=True,
        prediction_type=prediction_type,
    )


def test_ddim_step_matches_diffusers_ddim(schedule):
    ddim = _diffusers_ddim()
    ddim.set_timesteps(50)
    assert [int(t) for t in ddim.timesteps] == schedule.sampling_timesteps(50)
    g = torch.Generator().manual_seed(0)
    ts = schedule.sampling_timesteps(50)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        x = torch.randn(2, 4, 8, 8, generator=g) * 1.5
        eps = torch.randn(2, 4, 8, 8, generator=g)
        ref = ddim.step(eps, t, x, eta=0.0, use_clipped_model_output=True)
        ours, x0 = schedule.ddim_step(x, eps, t, s, eta=0.0)
        torch.testing.assert_close(ours, ref.prev_sample, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(x0, ref.pred_original_sample, rtol=1e-4, atol=1e-5)


def test_v_target_is_diffusers_velocity_and_gives_back_the_clean_sample():
    v_schedule = NoiseSchedule(T, "cosine", "v")
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(3, 4, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    abar = v_schedule.abar(t).float().view(-1, 1, 1, 1)
    v = v_schedule.target(x0, noise, t)
    torch.testing.assert_close(v, abar.sqrt() * noise - (1 - abar).sqrt() * x0)
    x_t = v_schedule.add_noise(x0, noise, t)
    for i, step in enumerate(t.tolist()):
        torch.testing.assert_close(v_schedule.x0_from(x_t[i], v[i], step), x0[i], atol=1e-5, rtol=0)
    # epsilon heads are their own target
    eps_schedule = NoiseSchedule(T, "cosine", "epsilon")
    assert eps_schedule.target(x0, noise, t) is noise
    torch.testing.assert_close(eps_schedule.x0_from(x_t[1], noise[1], 500), x0[1], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="diffusion.prediction"):
        NoiseSchedule(T, "cosine", "sample")


def test_ddim_step_with_v_prediction_matches_diffusers_ddim():
    v_schedule = NoiseSchedule(T, "cosine", "v")
    ddim = _diffusers_ddim("v_prediction")
    ddim.set_timesteps(20)
    g = torch.Generator().manual_seed(3)
    ts = v_schedule.sampling_timesteps(20)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        x = torch.randn(2, 4, 8, 8, generator=g)
        v = torch.randn(2, 4, 8, 8, generator=g) * 0.3
        ref = ddim.step(v, t, x, eta=0.0, use_clipped_model_output=True)
        ours, x0 = v_schedule.ddim_step(x, v, t, s, eta=0.0)
        torch.testing.assert_close(ours, ref.prev_sample, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x0, ref.pred_original_sample, rtol=1e-4, atol=1e-4)


def test_eta_one_single_step_is_ddpm_ancestral(schedule):
    ddpm = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", clip_sample=True)
    g = torch.Generator().manual_seed(1)
    for t in (999, 700, 300, 10, 1, 0):
        x = torch.randn(1, 4, 8, 8, generator=g)
        eps = torch.randn(1, 4, 8, 8, generator=g)
        ref = ddpm.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))
        ours, _ = schedule.ddim_step(x, eps, t, t - 1, eta=1.0, noise=noise)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_p2_weight(schedule):
    t = torch.tensor([0, 100, 500, 900, 999])
    assert torch.equal(schedule.p2_weight(t, 0.0), torch.ones(5))
    w = schedule.p2_weight(t, 0.5, 1.0)
    abar = schedule.alphas_cumprod.double()[t]
    torch.testing.assert_close(w, ((1 + abar / (1 - abar)) ** -0.5).float())
    # P2 down-weights the easy, high-SNR (small t) steps
    assert bool((w[1:] > w[:-1]).all()) and float(w[0]) < 0.02 and float(w[-1]) > 0.99


# -- multinomial diffusion ------------------------------------------------------------------------


def _one_step_matrices(schedule, k):
    """Q_i = (1 - beta_i) I + beta_i / K for i = 0..T-1, with 1 - beta_i = abar_i / abar_{i-1}."""
    abar = schedule.abar(torch.arange(-1, T)).numpy()
    alphas = abar[1:] / abar[:-1]
    eye, ones = np.eye(k), np.ones((k, k)) / k
    return [a * eye + (1 - a) * ones for a in alphas]


def _product(mats, first, last):
    """Q_first @ ... @ Q_last (rows: from-state, columns: to-state), identity when empty."""
    out = np.eye(mats[0].shape[0])
    for i in range(first, last + 1):
        out = out @ mats[i]
    return out


def test_q_sample_marginals(schedule):
    k = 4
    diff = MultinomialDiffusion(schedule, k)
    labels = torch.arange(k).repeat_interleave(64 * 64 // k).view(1, 64, 64).repeat(8, 1, 1)
    g = torch.Generator().manual_seed(0)
    for t in (50, 500, 700, 999):
        xt = diff.q_sample(labels, t, g)
        abar = float(schedule.abar(t))
        for true in range(k):
            drawn = xt[labels == true]
            n = drawn.numel()
            for c in range(k):
                p = abar * (c == true) + (1 - abar) / k
                freq = float((drawn == c).float().mean())
                assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4, (
                    t,
                    true,
                    c,
                    freq,
                    p,
                )


def test_posterior_is_bayes_rule_over_the_chain(schedule):
    """q(x_s | x_t, x_0) from the closed form equals Bayes' rule over explicit one-step matrices."""
    k = 3
    diff = MultinomialDiffusion(schedule, k)
    mats = _one_step_matrices(schedule, k)
    grid = torch.tensor([[x0, xt] for x0 in range(k) for xt in range(k)])
    x0 = grid[:, 0].view(-1, 1, 1)
    xt = grid[:, 1].view(-1, 1, 1)
    for t, s in ((1, 0), (10, 3), (400, 380), (999, 950), (600, -1), (0, -1), (20, -1)):
        post = diff.posterior_log_probs(log_onehot(x0, k), xt, t, s).exp()[:, :, 0, 0].double()
        torch.testing.assert_close(post.sum(1), torch.ones(len(grid), dtype=torch.float64), atol=1e-6, rtol=0)
        q_s_given_0 = _product(mats, 0, s)  # q(x_s | x_0), identity at s = -1
        q_t_given_s = _product(mats, s + 1, t)
        for row, (a, b) in enumerate(grid.tolist()):
            joint = q_s_given_0[a, :] * q_t_given_s[:, b]
            expected = joint / joint.sum()
            np.testing.assert_allclose(post[row].numpy(), expected, atol=2e-5, err_msg=f"t={t} s={s}")


def test_skip_posterior_with_previous_step_is_the_one_step_posterior(schedule):
    """s = t - 1 reproduces Hoogeboom's one-step q_posterior, written here the way his code does."""
    k = 5
    diff = MultinomialDiffusion(schedule, k)
    abar = schedule.abar(torch.arange(-1, T)).float()
    log_alpha = torch.log(abar[1:] / abar[:-1])
    log_cumprod = torch.log(abar[1:])
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, k, 6, 6, generator=g) * 3
    log_x0 = torch.log_softmax(logits, 1)
    xt = torch.randint(0, k, (4, 6, 6), generator=g)
    t = torch.tensor([0, 1, 500, 999])

    def lae(a, b):
        return torch.logaddexp(a, b)

    def bcast(v):
        return v.view(-1, 1, 1, 1)

    tm1 = (t - 1).clamp(min=0)
    q_pred = lae(
        log_x0 + bcast(log_cumprod[tm1]),
        torch.log(1 - bcast(log_cumprod[tm1]).exp()) - math.log(k),
    )
    q_pred = torch.where(bcast(t) == 0, log_x0, q_pred)
    one_step = lae(
        log_onehot(xt, k) + bcast(log_alpha[t]),
        torch.log(1 - bcast(log_alpha[t]).exp()) - math.log(k),
    )
    unnormed = q_pred + one_step
    reference = unnormed - torch.logsumexp(unnormed, 1, keepdim=True)
    ours = diff.posterior_log_probs(log_x0, xt, t, t - 1)
    torch.testing.assert_close(ours.exp(), reference.exp(), atol=1e-5, rtol=1e-4)


def test_kl_is_zero_for_a_perfect_prediction_and_positive_otherwise(schedule):
    k = 4
    diff = MultinomialDiffusion(schedule, k)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, k, (5, 8, 8), generator=g)
    t = torch.tensor([0, 1, 30, 500, 999])
    xt = diff.q_sample(labels, t, g)
    perfect = 60.0 * torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float()
    loss = diff.loss_terms(labels, xt, t, perfect)
    assert loss.shape == (5,)
    assert float(loss.abs().max()) < 1e-5
    uniform = torch.zeros_like(perfect)
    wrong = 60.0 * torch.nn.functional.one_hot((labels + 1) % k, k).permute(0, 3, 1, 2).float()
    for logits in (uniform, wrong):
        bad = diff.loss_terms(labels, xt, t, logits)
        # x_t pins the answer down near t = 0 and nothing is recoverable near T, so the terms are
        # small there, but still above the perfect prediction's
        assert bool((bad > loss).all()) and bool((bad > 0).all()), bad
        assert bool((bad[2:4] > 1e-4).all()), bad
    # at t = 0 the term is the decoder NLL: -log p(x_0 | x_t) with uniform logits and x_t kept
    t0 = torch.zeros(5, dtype=torch.long)
    nll = diff.loss_terms(labels, labels, t0, uniform)
    a0 = float(schedule.abar(0))
    expected = -math.log((a0 + (1 - a0) / k) / (a0 + (1 - a0) / k + (k - 1) * (1 - a0) / k))
    torch.testing.assert_close(nll, torch.full((5,), expected), rtol=1e-4, atol=1e-6)


def test_prior_kl_is_tiny_and_non_negative(schedule):
    diff = MultinomialDiffusion(schedule, 6)
    kl = diff.prior_kl(torch.randint(0, 6, (2, 4, 4)))
    assert bool((kl >= 0).all()) and float(kl.max()) < 1e-6


def test_categorical_sampling_follows_the_generator():
    log_p = torch.log_softmax(torch.randn(2, 5, 16, 16), 1)
    a = sample_categorical(log_p, torch.Generator().manual_seed(7))
    b = sample_categorical(log_p, torch.Generator().manual_seed(7))
    c = sample_categorical(log_p, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.long and a.shape == (2, 16, 16)
    # Gumbel-max draws with the given probabilities
    probs = torch.tensor([0.1, 0.2, 0.7]).log().view(1, 3, 1, 1).expand(1, 3, 100, 100)
    draws = sample_categorical(probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws.flatten(), minlength=3).float() / draws.numel()
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.015, rtol=0)


def test_categorical_kl_matches_definition():
    p = torch.log_softmax(torch.randn(1, 3, 2, 2), 1)
    q = torch.log_softmax(torch.randn(1, 3, 2, 2), 1)
    manual = (p.exp() * (p - q)).sum(1)
    torch.testing.assert_close(categorical_kl(p, q), manual)
    assert float(categorical_kl(p, p).abs().max()) == 0.0


# -- joint loss -----------------------------------------------------------------------------------


class TinyNet(nn.Module):
    """Smallest model with CoSynNet's forward signature: one conv over the summed inputs."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes
        self.embed = nn.Embedding(n_classes, 4)
        self.conv = nn.Conv2d(4 + 4 + 1, 4 + n_classes, 3, padding=1)

    def forward(self, x_image, x_distance, x_labels, t, cond):
        lab = self.embed(x_labels).permute(0, 3, 1, 2)
        tt = (t.float() / T).view(-1, 1, 1, 1).expand(-1, 1, *x_labels.shape[1:])
        y = self.conv(torch.cat([x_image, x_distance, lab, tt], 1)) + cond
        return ModelOutput(y[:, :3], y[:, 3:4], y[:, 4:])


def _batch(k=4, b=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, size, size, generator=g) * 2 - 1
    distance = torch.rand(b, 1, size, size, generator=g) * 2 - 1
    labels = torch.randint(0, k, (b, size, size), generator=g)
    return image, distance, labels


def test_training_losses_are_finite_and_backpropagate():
    torch.manual_seed(0)
    k = 4
    model = TinyNet(k)
    jd = JointDiffusion(DiffusionConfig(), k)
    image, distance, labels = _batch(k)
    losses = jd.training_losses(
        model, image, distance, labels, 0.0, generator=torch.Generator().manual_seed(0)
    )
    assert set(losses) == {"total", "image", "distance", "labels", "label_ce"}
    for value in losses.values():
        assert value.dim() == 0 and bool(torch.isfinite(value))
    losses["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_loss_weights_are_applied():
    k = 4
    model = TinyNet(k)
    image, distance, labels = _batch(k)
    t = torch.tensor([3, 400, 999])
    results = {}
    for weights in (
        {"image": 9, "distance": 1, "labels": 3},
        {"image": 0, "distance": 2, "labels": 0.5},
    ):
        jd = JointDiffusion(DiffusionConfig(loss_weights=LossWeights(**weights)), k)
        losses = jd.training_losses(
            model,
            image,
            distance,
            labels,
            0.0,
            t=t,
            generator=torch.Generator().manual_seed(5),
        )
        expected = sum(weights[n] * losses[n] for n in ("image", "distance", "labels"))
        torch.testing.assert_close(losses["total"], expected)
        results[tuple(weights.values())] = losses
    a, b = results.values()
    for name in (
        "image",
        "distance",
        "labels",
    ):  # same draws, so only the weights differ
        torch.testing.assert_close(a[name], b[name])


def _forward_as_the_loss_does(jd, model, image, distance, labels, t, seed):
    """The model output and noise of ``training_losses(..., t=t, generator=seed)``, redrawn in its order."""
    g = torch.Generator().manual_seed(seed)
    noise_image = torch.randn(image.shape, generator=g)
    noise_distance = torch.randn(distance.shape, generator=g)
    x_labels = jd.labels.q_sample(labels, t, g)
    x_image = jd.schedule.add_noise(image, noise_image, t)
    x_distance = jd.schedule.add_noise(distance, noise_distance, t)
    return model(x_image, x_distance, x_labels, t, 0.0), noise_image


def test_label_cross_entropy_joins_the_total_with_its_weight():
    k = 4
    model = TinyNet(k)
    image, distance, labels = _batch(k)
    t = torch.tensor([3, 400, 999])
    off, on = (
        JointDiffusion(DiffusionConfig(label_ce_weight=w), k).training_losses(
            model, image, distance, labels, 0.0, t=t, generator=torch.Generator().manual_seed(5))
        for w in (0.0, 0.5)
    )
    torch.testing.assert_close(on["total"] - off["total"], 0.5 * on["label_ce"])
    # The term is the cross-entropy of the x0 logits against the clean labels, averaged over pixels.
    jd = JointDiffusion(DiffusionConfig(label_ce_weight=0.5), k)
    out, _ = _forward_as_the_loss_does(jd, model, image, distance, labels, t, seed=5)
    expected = torch.nn.functional.cross_entropy(out.label_logits, labels)
    torch.testing.assert_close(on["label_ce"], expected, rtol=1e-5, atol=1e-6)


def test_v_prediction_trains_the_heads_on_the_velocity():
    k = 4
    model = TinyNet(k)
    image, distance, labels = _batch(k)
    t = torch.tensor([10, 500, 990])
    jd = JointDiffusion(DiffusionConfig(prediction="v"), k)
    losses = jd.training_losses(model, image, distance, labels, 0.0, t=t,
                                generator=torch.Generator().manual_seed(6))
    out, noise_image = _forward_as_the_loss_does(jd, model, image, distance, labels, t, seed=6)
    target = jd.schedule.target(image, noise_image, t)
    assert not torch.allclose(target, noise_image)
    torch.testing.assert_close(losses["image"], ((out.pred_image - target) ** 2).mean(), rtol=1e-5, atol=1e-6)


def test_p2_weighting_scales_each_term_by_its_weight():
    k = 4
    model = TinyNet(k)
    image, distance, labels = _batch(k, b=2)
    for t_value in (20, 600):
        t = torch.full((2,), t_value)
        plain = JointDiffusion(DiffusionConfig(p2_gamma=0.0), k)
        p2 = JointDiffusion(DiffusionConfig(p2_gamma=0.5, p2_k=1.0), k)
        a = plain.training_losses(
            model,
            image,
            distance,
            labels,
            0.0,
            t=t,
            generator=torch.Generator().manual_seed(1),
        )
        b = p2.training_losses(
            model,
            image,
            distance,
            labels,
            0.0,
            t=t,
            generator=torch.Generator().manual_seed(1),
        )
        w = float(plain.schedule.p2_weight(torch.tensor([t_value]), 0.5, 1.0))
        assert w < 1
        for name in ("image", "distance", "labels"):
            torch.testing.assert_close(b[name], w * a[name], rtol=1e-5, atol=1e-7)


def test_label_loss_scale_is_cosyn_bits_per_dimension():
    k = 4
    jd = JointDiffusion(DiffusionConfig(), k)
    *_, labels = _batch(k, b=2)
    t = torch.tensor([0, 250])
    xt = jd.labels.q_sample(labels, t, torch.Generator().manual_seed(0))
    logits = torch.randn(2, k, 8, 8)
    bound = jd.label_bound(labels, xt, t, logits)
    expected = (T * jd.labels.loss_terms(labels, xt, t, logits) + jd.labels.prior_kl(labels)) / (
        k * math.log(2)
    )
    torch.testing.assert_close(bound, expected)


def test_timesteps_are_uniform_and_seeded():
    k = 3
    jd = JointDiffusion(DiffusionConfig(), k)
    seen = []

    class Spy(TinyNet):
        def forward(self, x_image, x_distance, x_labels, t, cond):
            seen.append(t.clone())
            return super().forward(x_image, x_distance, x_labels, t, cond)

    model = Spy(k)
    image, distance, labels = _batch(k, b=4, size=4)
    for seed in (0, 0, 1):
        jd.training_losses(
            model,
            image,
            distance,
            labels,
            0.0,
            generator=torch.Generator().manual_seed(seed),
        )
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])
    jd.training_losses(model, image, distance, labels, 0.0)  # the global RNG serves without a generator
    drawn = torch.cat(seen)
    assert bool(((drawn >= 0) & (drawn < T)).all())


def test_condition_dropout_rates():
    jd = JointDiffusion(DiffusionConfig(drop_text=0.1, drop_points=0.0), 3)
    text, points = jd.condition_dropout(20000, generator=torch.Generator().manual_seed(0))
    assert text.dtype == torch.bool and text.shape == (20000,)
    assert abs(float(text.float().mean()) - 0.1) < 0.01
    assert not bool(points.any())


def test_labels_outside_the_vocabulary_are_refused():
    jd = JointDiffusion(DiffusionConfig(), 3)
    image, distance, labels = _batch(3)
    with pytest.raises(ValueError, match="0..2"):
        jd.training_losses(TinyNet(3), image, distance, labels + 1, 0.0)


# -- with the real network ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_model():
    return small_cosynnet(n_classes=4)


def test_training_losses_with_cosynnet(real_model):
    model = real_model
    jd = JointDiffusion(DiffusionConfig(p2_gamma=0.5), model.n_classes)
    image, distance, labels = _batch(model.n_classes, b=2, size=8)
    points = torch.zeros(2, 8, 8, dtype=torch.long)
    points[0, 3, 4] = 2
    points[1, 6, 1] = 1
    tokens = model.text.tokenize(["tissue with nuclei", "more nuclei"])
    g = torch.Generator().manual_seed(0)
    drop_text, drop_points = jd.condition_dropout(2, generator=g)
    model.zero_grad()
    cond = model.encode_conditions(points, tokens, drop_text=drop_text, drop_points=drop_points)
    losses = jd.training_losses(model, image, distance, labels, cond, generator=g)
    for value in losses.values():
        assert value.dim() == 0 and bool(torch.isfinite(value))
    losses["total"].backward()
    for part in (model.unet, model.points, model.embed_labels):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(gr is not None for gr in grads)
        assert sum(float(gr.abs().sum()) for gr in grads) > 0
