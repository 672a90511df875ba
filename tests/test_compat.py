"""What earlier versions wrote still loads and redraws: a pair folder written by napari-cosynth 0.1.0.

``tests/data/v0.1.0/pair-5`` was written by 0.1.0 (commit 5672c5e) with the tiny model of
``conftest.tiny_checkpoint`` (same config, same initial weights), one torch thread, UniPC 3 steps, seed 5,
from the three points below. The bundled ``default`` model was written by an earlier version too and is
loaded by ``test_default_model.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from napari_cosynth.data.folder import read_sample
from napari_cosynth.engine.pipeline.pipeline import CoSynthPipeline
from napari_cosynth.napari.reader import get_reader
from napari_cosynth.sample import PointTable
from napari_cosynth.vocabularies import CONSEP

OLD_PAIR = Path(__file__).parent / "data" / "v0.1.0" / "pair-5"
POINTS = PointTable([[6.0, 8.0], [20.0, 12.0], [14.0, 26.0]], [1, 3, 4])


def test_a_pair_written_by_0_1_0_reads_back_whole():
    pair = read_sample(OLD_PAIR)
    assert pair.vocabulary == CONSEP and pair.image.shape == (32, 32, 3)
    assert pair.semantic is not None and pair.distance is not None and pair.n_nuclei == 56
    assert pair.provenance["seed"] == 5 and pair.provenance["version"] == "0.1.0"
    layers = get_reader(str(OLD_PAIR))(str(OLD_PAIR))
    assert {kind for _data, _meta, kind in layers} >= {"image", "labels"}


def test_its_recorded_seed_draws_the_same_pair_today(tiny_checkpoint):
    """One seed rule keeps pair 0 at the base seed, so a single pair of 0.1.0 is drawn again exactly with
    its settings; it records no timestep spacing, so it was drawn before the spacing was a setting:
    evenly ("trailing")."""
    old = read_sample(OLD_PAIR)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = CoSynthPipeline.from_pretrained(tiny_checkpoint)
        assert "spacing" not in old.provenance
        (new,) = pipe(POINTS, size=(32, 32), steps=3, spacing="trailing", seed=old.provenance["seed"])
    finally:
        torch.set_num_threads(threads)
    assert new.provenance["prompt"] == old.provenance["prompt"]
    assert np.array_equal(new.image, old.image)
    assert np.array_equal(new.semantic, old.semantic) and np.array_equal(new.instances, old.instances)
