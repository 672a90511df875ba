"""poisson_layout: the no-interaction (CSR) baseline with a fitted model's intensities."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from napari_cosynth.errors import CosynthError
from napari_cosynth.layouts.process import poisson_layout
from napari_cosynth.layouts.real import Layout
from napari_cosynth.layouts.strauss_fit import fit_strauss
from napari_cosynth.sample import PointTable, Vocabulary

VOC = Vocabulary.of("a", "b")


def _model():
    rng = np.random.default_rng(0)
    layouts = []
    for _ in range(10):
        counts = rng.poisson(np.array([0.004, 0.002]) * 64 * 64)
        classes = np.repeat([1, 2], counts)
        xy = rng.uniform((0, 0), (63, 63), size=(len(classes), 2))
        layouts.append(Layout(PointTable(xy, classes), (64, 64)))
    return fit_strauss(layouts, VOC, iterations=0)


def test_poisson_layout_ignores_the_hard_core_and_interaction():
    model = _model()
    model.hardcore[:] = 20.0  # the Strauss sampler could not place two points closer than this
    model.gamma[:] = 1e-3
    pts = poisson_layout(model, (64, 64), density=0.006, rng=1)
    assert len(pts) > 5
    assert pdist(pts.xy).min() < 20.0
    assert not pts.outside((64, 64)).any()


def test_poisson_layout_honours_density_and_mix_and_is_seeded():
    model = _model()
    layouts = [poisson_layout(model, (64, 64), density=0.003, mix={"a": 0.2, "b": 0.8}, rng=[2, i])
               for i in range(30)]
    classes = np.concatenate([pts.classes for pts in layouts])
    assert len(classes) / (30 * 64 * 64) == pytest.approx(0.003, rel=0.1)
    assert (classes == 2).mean() == pytest.approx(0.8, abs=0.05)
    again = poisson_layout(model, (64, 64), density=0.003, mix={"a": 0.2, "b": 0.8}, rng=[2, 0])
    np.testing.assert_array_equal(again.xy, layouts[0].xy)


def test_poisson_layout_refuses_a_negative_density():
    with pytest.raises(CosynthError, match="density"):
        poisson_layout(_model(), (64, 64), density=-1.0)
