"""The multistep solvers (DPM-Solver++ 2M, its SDE variant, UniPC) and DDIM eta on the sampler's grid.

Stand-in models and helpers come from test_engine_sampler; the command line through the tiny checkpoint.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

from napari_cosynth.cli.main import main
from napari_cosynth.data.folder import list_pairs, read_sample
from napari_cosynth.engine.diffusion.sampler import sample
from napari_cosynth.engine.diffusion.sampler_names import SOLVERS, check_sampler
from napari_cosynth.engine.diffusion.schedule import NoiseSchedule
from napari_cosynth.engine.diffusion.solvers import make_solver
from napari_cosynth.errors import CosynthError
from napari_cosynth.progress import run_to_end as drain
from test_engine_sampler import GaussianOracle, K, StandIn, _conds, _run, assert_returns_known_data

MULTISTEP = ("dpm++2m", "dpm++2m-sde", "unipc")


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(1000, "cosine")


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("kind", SOLVERS)
@pytest.mark.parametrize("steps", [10, 61])  # 61: a count where diffusers' own trailing grid breaks
def test_a_model_that_knows_the_data_returns_it(kind, prediction, steps):
    assert_returns_known_data(kind, prediction, steps, eta=0.5 if kind == "ddim" else None)


def _oracle_std(schedule, kind, steps, eta=None):
    out = drain(sample(GaussianOracle(0.04, schedule), None, None, (4, 32, 32), kind=kind, steps=steps,
                       eta=eta, schedule=schedule, generator=torch.Generator().manual_seed(0)))
    values = torch.cat([out.image.flatten(), out.distance.flatten()])
    assert abs(float(values.mean())) < 0.02
    return float(values.std())


@pytest.mark.parametrize("kind", MULTISTEP)
def test_solvers_draw_the_data_variance_closer_than_ddim(kind, schedule):
    """Bayes-optimal noise prediction for N(0, 0.04) data (std 0.2): every sampler under-disperses
    with few steps, DDIM the most (0.169 at 20 steps, seed 0); the multistep solvers about 0.185."""
    ddim = _oracle_std(schedule, "ddim", 20)
    solver = _oracle_std(schedule, kind, 20)
    assert solver > ddim + 0.01 and abs(solver - 0.2) < 0.025


@pytest.mark.parametrize("cls, kwargs", [
    (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    (UniPCMultistepScheduler, {}),
])
def test_the_grid_is_diffusers_own_where_that_one_is_right(cls, kwargs, schedule):
    """On 20 steps diffusers' trailing grid is ours: the overwritten sigmas must be its own."""
    theirs = cls(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", **kwargs)
    theirs.set_timesteps(20)
    ours = make_solver("dpm++2m" if cls is DPMSolverMultistepScheduler else "unipc", schedule,
                       schedule.sampling_timesteps(20)).scheduler
    assert ours.timesteps.tolist() == theirs.timesteps.tolist()
    torch.testing.assert_close(ours.sigmas, theirs.sigmas, rtol=1e-5, atol=0)
    torch.testing.assert_close(ours.alphas_cumprod, schedule.alphas_cumprod, rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", MULTISTEP)
def test_guidance_is_one_batched_forward_per_step(kind, schedule):
    model = StandIn()
    out = _run(model, schedule, b=3, h=8, w=12, steps=6, guidance=2.0, kind=kind)
    assert model.calls == [6] * 6
    assert out.image.shape == (3, 3, 8, 12) and out.distance.shape == (3, 1, 8, 12)
    assert out.labels.shape == (3, 8, 12) and out.labels.dtype == torch.long
    assert float(out.image.abs().max()) <= 1.0 and 0 <= int(out.labels.min()) <= int(out.labels.max()) < K


@pytest.mark.parametrize("kind, eta", [(k, None) for k in MULTISTEP] + [("ddim", 0.5)])
def test_same_seed_same_output_different_seed_differs(kind, eta, schedule):
    model = StandIn()
    a, b, c = (_run(model, schedule, seed=s, steps=6, guidance=2.0, kind=kind, eta=eta) for s in (5, 5, 6))
    for name in ("image", "distance", "labels"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))


def test_the_sde_solver_and_ddim_eta_add_noise(schedule):
    """Same seed, same model: the stochastic variants draw other images than the deterministic ones."""
    model = StandIn()
    ode, sde = (_run(model, schedule, seed=1, steps=8, kind=k) for k in ("dpm++2m", "dpm++2m-sde"))
    ddim0, ddim_eta = (_run(model, schedule, seed=1, steps=8, kind="ddim", eta=e) for e in (0.0, 0.7))
    assert not torch.equal(ode.image, sde.image)
    assert not torch.equal(ddim0.image, ddim_eta.image)
    # "fast" is DDIM with eta 0: the same draw as "ddim" on the same steps
    assert torch.equal(_run(model, schedule, seed=1, steps=8, kind="fast").image, ddim0.image)


def test_fixed_maps_stay_exact_with_a_multistep_solver(schedule):
    model = StandIn()
    g = torch.Generator().manual_seed(9)
    labels = torch.randint(0, K, (2, 8, 8), generator=g)
    distance = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    known = {"labels": labels, "distance": distance}
    out = _run(model, schedule, steps=8, guidance=2.0, kind="dpm++2m", known=known)
    assert torch.equal(out.labels, labels) and torch.equal(out.distance, distance)


def test_bad_solver_settings_are_refused_when_called(schedule):
    model = StandIn()
    cond, uncond = _conds(model)
    ok = {"schedule": schedule, "generator": torch.Generator().manual_seed(0)}
    cases = [
        ({"kind": "euler"}, "unknown sampler 'euler'; choose one of dpm\\+\\+2m, dpm\\+\\+2m-sde, unipc"),
        ({"kind": "unipc", "eta": 0.5}, "eta applies to the ddim sampler only"),
        ({"kind": "ddim", "eta": 1.5}, r"eta must be a number in \[0, 1\]"),
        ({"kind": "ddim", "eta": float("nan")}, r"eta must be a number in \[0, 1\]"),
        ({"kind": "dpm++2m", "steps": 0}, "sampler steps"),
        ({"kind": "dpm++2m", "steps": -3}, "sampler steps"),
        ({"kind": "unipc", "guidance": float("nan")}, "guidance"),
    ]
    for kwargs, message in cases:
        with pytest.raises(CosynthError, match=message):
            sample(model, cond, uncond, (2, 8, 8), **{**ok, **kwargs})
    assert model.calls == []


def test_check_sampler_names_the_flag():
    flags = {"sampler": "--sampler", "steps": "--steps", "eta": "--eta", "guidance": "--guidance"}
    for args, message in [
        (("slow",), "--sampler: unknown sampler 'slow'"),
        (("unipc", 0), "--steps must be a whole number of steps >= 1, got 0"),
        (("unipc", -2), "--steps must be a whole number"),
        (("unipc", None, 0.3), "--eta applies to the ddim sampler only, not 'unipc'"),
        (("ddim", None, None, float("nan")), "--guidance must be a finite number >= 0"),
        (("ddim", None, None, -1.0), "--guidance must be a finite number >= 0"),
    ]:
        with pytest.raises(CosynthError, match=message.replace("+", r"\+")):
            check_sampler(*args, flags=flags)
    check_sampler("ddim", 20, 0.5, 2.0, flags=flags)  # good settings pass


def _gen(ckpt, out, *extra):
    return main(["generate", "--model", str(ckpt), "--size", "32", "32", "--out", str(out), "--quiet",
                 *extra])


def test_cli_generate_with_a_solver_records_it_and_reproduces(tiny_checkpoint, tmp_path):
    for folder in ("a", "b"):
        assert _gen(tiny_checkpoint, tmp_path / folder, "--sampler", "dpm++2m-sde", "--steps", "3",
                    "--seed", "4") == 0
    a, b = (read_sample(next(iter(list_pairs(tmp_path / f)))) for f in ("a", "b"))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.provenance["sampler"] == "dpm++2m-sde" and a.provenance["steps"] == 3
    assert _gen(tiny_checkpoint, tmp_path / "c", "--sampler", "ddim", "--eta", "0.5", "--steps", "3",
                "--seed", "4") == 0
    c = read_sample(next(iter(list_pairs(tmp_path / "c"))))
    assert c.provenance["sampler"] == "ddim" and c.provenance["eta"] == 0.5


def test_a_record_without_a_spacing_was_drawn_evenly_spaced():
    from napari_cosynth.engine.diffusion.sampler_names import recorded_spacing

    assert recorded_spacing({"sampler": "unipc"}) == "trailing"
    assert recorded_spacing({"sampler": "unipc", "spacing": "quadratic"}) == "quadratic"
    assert recorded_spacing({"sampler": "reference"}) is None
    assert recorded_spacing({"sampler": "ddim", "sampler_spacing": "quadratic"}, "sampler_spacing") == "quadratic"


def test_the_spacing_is_recorded_and_decides_the_pair(tiny_checkpoint, tmp_path):
    """UniPC spaces its steps quadratically unless told otherwise; the others evenly ("trailing");
    every pair records which, and the same seed with another spacing draws another pair."""
    runs = {"unipc": [], "unipc-trailing": ["--spacing", "trailing"], "ddim": ["--sampler", "ddim"],
            "ddim-quadratic": ["--sampler", "ddim", "--spacing", "quadratic"]}
    pairs = {}
    for name, extra in runs.items():
        assert _gen(tiny_checkpoint, tmp_path / name, "--steps", "4", "--seed", "4", *extra) == 0
        pairs[name] = read_sample(next(iter(list_pairs(tmp_path / name))))
    spacing = {name: pair.provenance["spacing"] for name, pair in pairs.items()}
    assert spacing == {"unipc": "quadratic", "unipc-trailing": "trailing", "ddim": "trailing",
                       "ddim-quadratic": "quadratic"}
    assert not np.array_equal(pairs["unipc"].image, pairs["unipc-trailing"].image)
    assert not np.array_equal(pairs["ddim"].image, pairs["ddim-quadratic"].image)
    assert _gen(tiny_checkpoint, tmp_path / "again", "--steps", "4", "--seed", "4") == 0
    np.testing.assert_array_equal(read_sample(next(iter(list_pairs(tmp_path / "again")))).image,
                                  pairs["unipc"].image)


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "--steps must be a whole number of steps >= 1, got 0"),
    (["--steps", "-5"], "--steps must be a whole number of steps >= 1, got -5"),
    (["--guidance", "nan"], "--guidance must be a finite number"),
    (["--sampler", "unipc", "--eta", "0.2"], "--eta applies to the ddim sampler only"),
    (["--sampler", "ddim", "--eta", "2"], r"--eta must be a number in \[0, 1\]"),
    (["--sampler", "reference", "--spacing", "trailing"], "--spacing does not apply to the reference sampler"),
])
def test_cli_generate_bad_sampler_settings_give_one_line(tiny_checkpoint, tmp_path, capsys, extra, message):
    assert _gen(tiny_checkpoint, tmp_path / "x", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cosynth: error:")
    assert re.search(message, err), err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_cli_generate_unknown_sampler_names_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--sampler", "euler", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "--sampler" in err and "invalid choice: 'euler'" in err
