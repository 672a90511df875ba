"""sample_from_maps and vote_classes: hand-edited maps made into a consistent pair (no napari needed)."""

import numpy as np
import pytest

from data_fixtures import two_nuclei_pair
from napari_cosynth.errors import CosynthError
from napari_cosynth.labels.edited import sample_from_maps
from napari_cosynth.labels.instances import vote_classes
from napari_cosynth.sample import PointTable
from napari_cosynth.vocabularies import CONSEP


def test_sample_from_edited_maps_renumbers_and_votes_classes():
    pair = two_nuclei_pair()
    instances = pair.instances.copy()
    instances[instances == 2] = 7  # painting leaves gaps in the ids
    instances[20:23, 20:23] = 9  # drawn where the semantic map is background
    semantic = pair.semantic_map()
    with pytest.raises(CosynthError, match="instance 3"):
        sample_from_maps(pair.image, semantic, None, instances, CONSEP)
    out = sample_from_maps(pair.image, semantic, None, instances, CONSEP, instance_classes={9: 1})
    assert out.instances.max() == 3
    assert list(out.classes) == [3, 4, 1]
    with pytest.raises(CosynthError, match="must match pixel for pixel"):
        sample_from_maps(pair.image, semantic[:10], None, instances, CONSEP)


def test_sample_from_maps_refuses_what_cannot_be_written_and_clips_the_distance():
    pair = two_nuclei_pair()
    semantic, instances = pair.semantic_map(), pair.instances
    with pytest.raises(CosynthError, match="must be RGB uint8"):
        sample_from_maps(pair.image.astype(np.float32), semantic, None, instances, CONSEP)
    bad = semantic.copy()
    bad[0, 0] = CONSEP.n_classes
    with pytest.raises(CosynthError, match="paint with those labels"):
        sample_from_maps(pair.image, bad, None, instances, CONSEP)
    with pytest.raises(CosynthError, match="negative label"):
        sample_from_maps(pair.image, semantic, None, instances - 1, CONSEP)
    with pytest.raises(CosynthError, match="1 layout point"):
        sample_from_maps(pair.image, semantic, None, instances, CONSEP,
                         points=PointTable([[30.0, 4.0]], [1]))
    distance = np.full(semantic.shape, 2.0, np.float32)
    distance[0, 0] = np.nan
    out = sample_from_maps(pair.image, semantic, distance, instances, CONSEP, points=pair.points,
                           tissue="colon", magnification=20.0, name="edited", provenance={"seed": 5})
    assert out.distance.min() == 0.0 and out.distance.max() == 1.0
    assert (out.name, out.tissue, out.magnification, out.provenance) == ("edited", "colon", 20.0, {"seed": 5})
    np.testing.assert_array_equal(out.points.xy, pair.points.xy)


def test_vote_classes_takes_the_majority_nucleus_class():
    assert list(vote_classes(np.array([[1, 1, 2]]), np.array([[2, 3, 3]]))) == [2, 3]
    # background does not vote, ties go to the lower class
    assert list(vote_classes(np.array([[1, 1, 1, 1]]), np.array([[0, 0, 4, 2]]))) == [2]
    assert list(vote_classes(np.array([[1, 0]]), np.array([[0, 3]]), {1: 2})) == [2]
    assert vote_classes(np.zeros((3, 3), int), np.zeros((3, 3), int)).shape == (0,)
    with pytest.raises(CosynthError, match="instance 1 lies where the semantic map is background"):
        vote_classes(np.array([[1, 0]]), np.array([[0, 3]]))
