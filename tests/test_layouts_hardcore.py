import numpy as np
import pytest
from scipy.spatial.distance import pdist

from napari_cosynth.errors import CosynthError
from napari_cosynth.layouts.hardcore import hardcore_layout, layout_like_training_data
from napari_cosynth.vocabularies import CONSEP


def test_points_keep_their_distance_and_the_canvas():
    pts = hardcore_layout((64, 96), 40, [1, 1, 2, 0], min_distance=6, rng=0)
    assert len(pts) == 40
    assert pdist(pts.xy).min() >= 6
    assert not pts.outside((64, 96)).any()
    assert set(pts.classes) <= {1, 2, 3}


def test_saturated_canvas_gives_fewer_points_not_closer_ones():
    pts = hardcore_layout((20, 20), 500, [1], min_distance=8, rng=1)
    assert 2 < len(pts) < 20
    assert pdist(pts.xy).min() >= 8


def test_same_seed_same_layout_and_bad_weights_refused():
    a = hardcore_layout((32, 32), 10, [1, 2], 4, rng=5)
    b = hardcore_layout((32, 32), 10, [1, 2], 4, rng=5)
    np.testing.assert_array_equal(a.xy, b.xy)
    with pytest.raises(CosynthError, match="class_probs"):
        hardcore_layout((32, 32), 10, [-1, 2], 4)


def test_density_and_mix_follow_the_training_summary():
    summary = {"samples": 10, "image_sizes": [[100, 100]],
               "nuclei": {"other": 0, "inflammatory": 0, "epithelial": 500, "spindle-shaped": 0}}
    pts = layout_like_training_data(summary, CONSEP, (100, 100), 20.0, rng=0)
    assert len(pts) == 50 and set(pts.classes) == {3}
