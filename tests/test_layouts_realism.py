import numpy as np

from napari_cosynth.layouts.real import Layout
from napari_cosynth.layouts.realism import compare_layouts, nn_distances, ripley_l
from napari_cosynth.sample import PointTable, Vocabulary

VOC = Vocabulary.of("a", "b")


def csr(n, seed):
    rng = np.random.default_rng(seed)
    return [Layout(PointTable(rng.uniform(0, 63, (50, 2)), rng.integers(1, 3, 50)), (64, 64)) for _ in range(n)]


def grid(n, seed):
    rng = np.random.default_rng(seed)
    g = np.arange(4, 64, 9.0)
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return [Layout(PointTable(xy + rng.normal(0, 0.3, xy.shape), rng.integers(1, 3, len(xy))), (64, 64))
            for _ in range(n)]


def test_identical_sets_score_zero():
    layouts = csr(5, 0)
    result = compare_layouts(layouts, layouts, VOC)
    for entry in [result["pooled"], *result["per_class"].values(), *result["cross_class"].values()]:
        assert entry["nn_ks"] == 0 and entry["L_sup_diff"] == 0 and entry["L_mean_abs_diff"] == 0


def test_csr_is_further_from_a_regular_pattern_than_another_regular_one():
    regular, other_regular, random = grid(6, 0), grid(6, 1), csr(6, 2)
    close = compare_layouts(regular, other_regular, VOC)["pooled"]
    far = compare_layouts(regular, random, VOC)["pooled"]
    assert far["nn_ks"] > 0.5 > close["nn_ks"]
    assert far["L_sup_diff"] > 3 * close["L_sup_diff"]


def test_l_function_of_csr_is_close_to_r_and_a_grid_has_no_close_pairs():
    radii = np.array([4.0, 8.0, 12.0])
    l_csr = ripley_l(csr(40, 3), radii)
    np.testing.assert_allclose(l_csr, radii, rtol=0.12)
    assert ripley_l(grid(3, 0), [5.0])[0] == 0
    assert nn_distances(grid(1, 0)).min() > 7


def test_cross_class_nn_uses_only_the_other_class():
    lay = Layout(PointTable([[0, 0], [1, 0], [10, 0]], [1, 1, 2]), (20, 20))
    np.testing.assert_allclose(nn_distances([lay], 1, 2), [10, 9])
    np.testing.assert_allclose(nn_distances([lay], 1, 1), [1, 1])
    assert np.isnan(ripley_l([lay], [2.0], 2, 2)).all()
