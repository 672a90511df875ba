import numpy as np
import pytest

from napari_cosynth import PointTable, Sample, Vocabulary
from napari_cosynth.vocabularies import CONSEP, class_colors, tissue_display_name


def _sample(**kw):
    inst = np.zeros((8, 8), np.int32)
    inst[1:3, 1:3] = 1
    inst[5:7, 5:7] = 2
    args = {"image": np.zeros((8, 8, 3), np.uint8), "instances": inst, "classes": [1, 3], "vocabulary": CONSEP}
    args.update(kw)
    return Sample(**args)


def test_vocabulary_requires_background_first_and_unique_names():
    assert Vocabulary.of("a", "b").n_classes == 3
    with pytest.raises(ValueError, match="background"):
        Vocabulary(("a", "b"))
    with pytest.raises(ValueError, match="unique"):
        Vocabulary.of("a", "a")
    with pytest.raises(ValueError, match="unknown class 'x'"):
        CONSEP.id_of("x")


def test_sample_derives_maps_and_points():
    s = _sample()
    assert s.shape == (8, 8) and s.n_nuclei == 2
    assert set(np.unique(s.semantic_map())) == {0, 1, 3}
    pts = s.point_table()
    np.testing.assert_allclose(pts.xy, [[1.5, 1.5], [5.5, 5.5]])
    assert list(pts.classes) == [1, 3]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"classes": [1]}, "class table has 1 entries"),
        ({"classes": [1, 9]}, "class id 9 is outside 1..4"),
        ({"image": np.zeros((9, 8, 3), np.uint8)}, "image is 9x8 but the instance map is 8x8"),
        ({"image": np.zeros((8, 8, 3), np.float32)}, "RGB uint8"),
        ({"instances": None}, "needs an instance map or a point table"),
    ],
)
def test_inconsistent_samples_are_refused_with_the_problem_named(changes, message):
    with pytest.raises(ValueError, match=message):
        _sample(**changes)


def test_points_only_sample():
    pts = PointTable([[1, 2], [3, 4]], [1, 2])
    s = Sample(image=None, instances=None, classes=[], vocabulary=CONSEP, points=pts)
    assert not s.has_masks and s.n_nuclei == 2 and s.point_table() is pts


def test_point_table_outside_and_counts():
    pts = PointTable([[0, 0], [7.4, 7.4], [7.6, 3], [-0.1, 2]], [1, 2, 2, 4])
    assert pts.outside((8, 8)).tolist() == [False, False, True, True]
    assert pts.counts(CONSEP) == {"other": 1, "inflammatory": 2, "epithelial": 0, "spindle-shaped": 1}
    with pytest.raises(ValueError, match="3 coordinates but 2 classes"):
        PointTable(np.zeros((3, 2)), [1, 2])


def test_class_colours_and_tissue_names():
    colors = class_colors(CONSEP.n_classes)
    assert colors[0][3] == 0 and all(c[3] == 255 for c in colors[1:])
    assert len(set(colors)) == len(colors)
    assert tissue_display_name("Adrenal_gland") == "adrenal gland"
    assert tissue_display_name("HeadNeck") == "head and neck"
