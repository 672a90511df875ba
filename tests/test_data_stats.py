import json
from pathlib import Path

import pytest

from data_fixtures import consep_sample, points_sample, write_endonuke, write_pannuke
from napari_cosynth.data import dataset_stats, write_sample

REAL = Path("/work/shared/data/consep/train")


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="shared CoNSeP data not present")
def test_real_consep_train_matches_its_readme():
    stats = dataset_stats(REAL, "consep")
    assert stats["n_samples"] == 432 and stats["n_nuclei"] == 18216
    assert stats["nuclei_per_class"] == {
        "other": 432, "inflammatory": 4507, "epithelial": 6609, "spindle-shaped": 6668}
    assert stats["image_sizes"] == {"256x256": 432}
    assert stats["magnification"] == 40.0 and stats["points_only"] == 0
    json.dumps(stats)


def test_pannuke_stats(tmp_path):
    write_pannuke(tmp_path, n=3, size=32)
    stats = dataset_stats(tmp_path, "pannuke")
    assert stats["n_samples"] == 3 and stats["n_nuclei"] == 18
    assert sum(stats["nuclei_per_class"].values()) == 18
    assert list(stats["nuclei_per_class"]) == [
        "neoplastic", "inflammatory", "connective", "dead", "epithelial"]
    assert stats["tissues"] == {"Breast": 1, "Colon": 1, "HeadNeck": 1}
    assert stats["image_sizes"] == {"32x32": 3}


def test_points_only_and_mixed_magnifications(tmp_path):
    written = write_endonuke(tmp_path / "e", with_images=False)
    stats = dataset_stats(tmp_path / "e", "endonuke")
    assert stats["points_only"] == 4 == stats["n_samples"]
    assert stats["n_nuclei"] == sum(len(c) for _, c in written.values())
    assert stats["image_sizes"] == {"unknown": 4}

    write_sample(consep_sample(), tmp_path / "f")
    write_sample(points_sample().with_(magnification=20.0), tmp_path / "f")
    stats = dataset_stats(tmp_path / "f", "folder")
    assert stats["magnification"] is None and stats["magnifications"] == {"20": 1, "40": 1}
    assert stats["vocabulary"] is None and stats["points_only"] == 1
    assert stats["nuclei_per_class"]["stroma"] == 1 and stats["nuclei_per_class"]["other"] == 2
    json.dumps(stats)
