import json

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from napari_cosynth.errors import CosynthError, DatasetError
from napari_cosynth.layouts.process import (
    load_model,
    parse_mix,
    sample_layout,
    sample_layouts,
    save_model,
)
from napari_cosynth.layouts.real import Layout
from napari_cosynth.layouts.strauss_fit import fit_strauss
from napari_cosynth.sample import PointTable, Vocabulary

VOC = Vocabulary.of("a", "b")


def poisson_layouts(n, shape, intensities, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        counts = rng.poisson(np.asarray(intensities) * shape[0] * shape[1])
        classes = np.repeat(np.arange(1, len(counts) + 1), counts)
        xy = rng.uniform((0, 0), (shape[1] - 1, shape[0] - 1), size=(len(classes), 2))
        out.append(Layout(PointTable(xy, classes), shape, f"p{k}"))
    return out


def test_fit_recovers_the_intensity_of_a_synthetic_pattern():
    layouts = poisson_layouts(30, (64, 64), [0.004, 0.002])
    model = fit_strauss(layouts, VOC, iterations=0)
    np.testing.assert_allclose(model.intensity, [0.004, 0.002], rtol=0.12)
    assert model.window == (64, 64)
    # CSR data: the low-density gamma estimate is close to 1 (no interaction) for the common class.
    assert 0.7 < model.gamma[0, 0] < 1.3


def test_samples_respect_the_hardcore_distance():
    layouts = poisson_layouts(10, (64, 64), [0.004, 0.002])
    model = fit_strauss(layouts, VOC, iterations=0)
    model.hardcore[:] = 5.0
    for seed in range(5):
        pts = sample_layout(model, (64, 64), density=0.006, rng=seed, sweeps=5)
        assert len(pts) > 5
        assert pdist(pts.xy).min() >= 5.0 - 1e-9
        assert not pts.outside((64, 64)).any()


def test_requested_density_and_mix_are_honoured():
    model = fit_strauss(poisson_layouts(10, (64, 64), [0.004, 0.002]), VOC, iterations=0)
    layouts = sample_layouts(model, 30, (64, 64), density=0.003, mix={"a": 0.2, "b": 0.8}, seed=3, sweeps=2)
    classes = np.concatenate([lay.points.classes for lay in layouts])
    density = len(classes) / (30 * 64 * 64)
    assert density == pytest.approx(0.003, rel=0.1)
    assert (classes == 2).mean() == pytest.approx(0.8, abs=0.05)


def test_layout_i_depends_only_on_seed_and_i():
    model = fit_strauss(poisson_layouts(5, (32, 32), [0.01, 0.01]), VOC, iterations=0)
    a = sample_layouts(model, 3, (32, 32), seed=7, sweeps=2)
    b = sample_layouts(model, 2, (32, 32), seed=7, sweeps=2)
    np.testing.assert_array_equal(a[1].points.xy, b[1].points.xy)


def test_bad_mix_and_density_are_refused():
    with pytest.raises(CosynthError, match="unknown class 'c'"):
        parse_mix({"c": 1.0}, VOC)
    with pytest.raises(CosynthError, match="positive sum"):
        parse_mix([0, 0], VOC)
    model = fit_strauss(poisson_layouts(3, (32, 32), [0.01, 0.01]), VOC, iterations=0)
    with pytest.raises(CosynthError, match="density"):
        sample_layout(model, (32, 32), density=-1)


def test_a_fitted_regular_pattern_samples_regular_layouts():
    # A jittered grid at spacing 8: the hard core is found a little below 8 and samples are far more regular
    # than complete spatial randomness at the same density.
    from napari_cosynth.layouts.realism import compare_layouts

    rng = np.random.default_rng(0)
    g = np.arange(4, 60, 8.0)
    layouts = []
    for _ in range(6):
        xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + rng.normal(0, 0.5, (len(g) ** 2, 2))
        layouts.append(Layout(PointTable(xy, rng.integers(1, 3, len(xy))), (64, 64)))
    model = fit_strauss(layouts, VOC, radius=10.0, iterations=1, calibration_windows=4, sweeps=3)
    assert model.hardcore.min() > 4.5  # grid spacing 8, jitter sd 0.5 per axis
    fitted = sample_layouts(model, 6, (64, 64), seed=1, sweeps=3)
    random = [Layout(PointTable(rng.uniform(0, 63, (len(lay.points), 2)), lay.points.classes), (64, 64))
              for lay in fitted]
    assert (compare_layouts(layouts, fitted, VOC)["pooled"]["nn_ks"]
            < compare_layouts(layouts, random, VOC)["pooled"]["nn_ks"] - 0.2)


def test_model_json_round_trips(tmp_path):
    model = fit_strauss(poisson_layouts(4, (32, 32), [0.01, 0.005]), VOC, magnification=20.0, iterations=0)
    save_model(model, tmp_path / "m.json")
    back = load_model(tmp_path / "m.json")
    assert back.vocabulary == model.vocabulary and back.magnification == 20.0
    for name in ("intensity", "hardcore", "gamma", "patch_intensities"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    assert back.radius == model.radius and back.window == model.window
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not a JSON layout model"),
    ('{"format": "something else"}', "not a layout model"),
    ('{"format": "napari-cosynth layout model", "format_version": 1}', "missing field"),
])
def test_malformed_model_json_names_the_file(tmp_path, text, problem):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=problem) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_negative_gamma_in_model_is_refused(tmp_path):
    model = fit_strauss(poisson_layouts(3, (32, 32), [0.01, 0.01]), VOC, iterations=0)
    data = model.to_dict()
    data["gamma"][0][0] = -1
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="gamma"):
        load_model(tmp_path / "m.json")
