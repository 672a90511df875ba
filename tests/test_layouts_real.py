import numpy as np
import pytest

from napari_cosynth.data.folder import write_sample
from napari_cosynth.errors import CosynthError
from napari_cosynth.layouts.real import jitter, layouts_from_dataset, rebalance
from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.vocabularies import CONSEP


def test_rebalance_changes_the_requested_share_and_keeps_points():
    rng = np.random.default_rng(0)
    classes = np.array([3] * 60 + [4] * 30 + [2] * 8 + [1] * 2)
    pts = PointTable(rng.uniform(0, 50, (100, 2)), classes)
    out = rebalance(pts, 0.5, vocabulary=CONSEP, rng=1)
    np.testing.assert_array_equal(out.xy, pts.xy)
    # Common classes (above 25 each) give half their nuclei to the rarest class (1, "other").
    assert (out.classes == 3).sum() == 30 and (out.classes == 4).sum() == 15
    assert (out.classes == 1).sum() == 2 + 45
    assert (out.classes == 2).sum() == 8
    explicit = rebalance(pts, 0.25, source=[4], target=2, rng=1)
    assert (explicit.classes == 2).sum() == 8 + 8 and (explicit.classes == 4).sum() == 22
    with pytest.raises(CosynthError, match="share"):
        rebalance(pts, 1.5, vocabulary=CONSEP)


def test_jitter_moves_points_but_keeps_them_on_the_canvas():
    pts = PointTable([[0, 0], [10, 10], [19, 29]], [1, 2, 3])
    out = jitter(pts, (30, 20), 2.0, rng=0)
    assert not out.outside((30, 20)).any()
    assert not np.allclose(out.xy, pts.xy)
    np.testing.assert_array_equal(out.classes, pts.classes)
    np.testing.assert_array_equal(jitter(pts, (30, 20), 0.0).xy, pts.xy)


def test_layouts_from_a_folder_dataset(tmp_path):
    inst = np.zeros((24, 32), dtype=np.int32)
    inst[2:6, 2:6] = 1
    inst[10:14, 20:24] = 2
    write_sample(Sample(None, inst, [2, 3], CONSEP, magnification=20.0, name="s0"), tmp_path)
    layouts, vocabulary = layouts_from_dataset(tmp_path, "folder")
    assert vocabulary == CONSEP and len(layouts) == 1
    lay = layouts[0]
    assert lay.shape == (24, 32)
    np.testing.assert_allclose(lay.points.xy, [[3.5, 3.5], [21.5, 11.5]])
    np.testing.assert_array_equal(lay.points.classes, [2, 3])
