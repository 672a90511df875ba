"""cosynth evaluate realism: the two-sample test separates blurred from sharp texture and not two draws of
one generator; grouped folds never split a group; FD/KID agree with a direct formula; CLI end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy import linalg
from scipy.ndimage import gaussian_filter

from napari_cosynth.data.folder import write_sample
from napari_cosynth.errors import CosynthError
from napari_cosynth.evaluate.c2st import C2STSettings, _auc, grouped_folds, luminance
from napari_cosynth.evaluate.realism import crop_grid, feature_distances, realism_report, tile_of
from segmenter_fixtures import disc_sample

SIZE = 128


def textured(seed: int, blur: float = 0.0):
    """A 128 x 128 H&E-like sample: discs on pink with grainy texture; ``blur`` smooths the image."""
    sample = disc_sample(seed, SIZE, n=20, name=f"tile{seed % 4}_img{seed:03d}")
    if blur:
        sample.image = np.clip(gaussian_filter(sample.image.astype(float), (blur, blur, 0)), 0, 255
                               ).astype(np.uint8)
    return sample


def write_set(root, seeds, blur=0.0):
    for s in seeds:
        write_sample(textured(s, blur), root)
    return root


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("realism")
    return {
        "real": write_set(base / "real", range(16)),
        "blurred": write_set(base / "blurred", range(16), blur=1.5),
        "other": write_set(base / "other", range(100, 116)),
    }


FAST = C2STSettings(folds=4, epochs=8)


@pytest.mark.slow
def test_two_sample_test_tells_blur_apart_but_not_two_draws(sets):
    blurred = realism_report(sets["real"], "folder", sets["blurred"], "folder", settings=FAST)
    same = realism_report(sets["real"], "folder", sets["other"], "folder", settings=FAST)
    b = blurred["comparisons"]["generated_vs_real"]["c2st"]
    s = same["comparisons"]["generated_vs_real"]["c2st"]
    # Blur removes the grain: visible in colour and in standardised luminance alike.
    assert b["luminance"]["accuracy"] > 0.85 and b["colour"]["accuracy"] > 0.85
    assert b["luminance"]["auc"] > 0.9 and b["colour"]["auc"] > 0.9
    assert abs(s["luminance"]["accuracy"] - 0.5) < 0.15 and abs(s["colour"]["accuracy"] - 0.5) < 0.15
    assert abs(s["luminance"]["auc"] - 0.5) < 0.2 and abs(s["colour"]["auc"] - 0.5) < 0.2
    assert b["luminance"]["n_crops"] == 2 * 16 * 4 and b["luminance"]["n_folds"] == 4
    held = [name for fold in b["luminance"]["held_out"] for name in fold]
    assert len(b["luminance"]["held_out"]) == 4 and len(held) == len(set(held)) == 16  # each image in one fold
    # Random halves of one set: the floor.
    halves = blurred["comparisons"]["real_halves"]["c2st"]["luminance"]
    assert abs(halves["accuracy"] - 0.5) < 0.2
    assert blurred["comparisons"]["real_halves"]["n_images"] == [8, 8]


@pytest.mark.slow
def test_same_seed_same_figures(sets):
    quick = C2STSettings(folds=2, epochs=1)
    a = realism_report(sets["real"], "folder", sets["blurred"], "folder", settings=quick)
    b = realism_report(sets["real"], "folder", sets["blurred"], "folder", settings=quick)
    assert a["comparisons"] == b["comparisons"]


def test_luminance_hides_stain():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 180, (3, 16, 16, 3)).astype(np.uint8)
    stained = np.round(crops * 1.2 + 20).astype(np.uint8)
    x, xs = luminance(crops), luminance(stained)
    assert x.shape == (3, 1, 16, 16)
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(1, 2, 3)), 1, atol=1e-3)
    # A brightness and contrast change leaves the standardised grey image as it was.
    np.testing.assert_allclose(x, xs, atol=0.05)


def test_grouped_folds_keep_groups_whole_and_both_labels_in_each_fold():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"t{i}" for i in range(12)], 5)
    labels = np.array([i % 2 for i in range(12)]).repeat(5)  # pure groups: each tile one label
    folds = grouped_folds(labels, groups, 4, seed=3)
    assert len(folds) == 4
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    fold_of = np.empty(60, int)
    for f, held in enumerate(folds):
        assert set(labels[held]) == {0, 1}
        fold_of[held] = f
    for g in set(groups):
        assert len(set(fold_of[groups == g])) == 1
    mixed = rng.integers(0, 2, 60)
    # At most as many folds as groups holding the rarer label.
    expected = min(len(set(groups[mixed == v])) for v in (0, 1))
    assert len(grouped_folds(mixed, groups, 20, seed=0)) == expected < 20
    with pytest.raises(CosynthError, match="at least 2 images"):
        grouped_folds(labels, np.where(labels == 0, "a", "b"), 4, seed=0)


def test_auc_counts_ordered_pairs():
    rng = np.random.default_rng(2)
    scores = np.round(rng.normal(size=40), 1)  # rounding makes ties
    truth = rng.integers(0, 2, 40)
    pos, neg = scores[truth == 1], scores[truth == 0]
    wins = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    assert _auc(scores, truth) == pytest.approx(wins / (len(pos) * len(neg)))
    assert _auc(np.arange(6.0), np.array([0, 0, 0, 1, 1, 1])) == 1.0
    assert _auc(np.arange(4.0), np.ones(4, int)) == 0.5


def test_tile_pattern_and_crop_grid():
    pattern = re.compile(r"(t(?:rain|est)_\d+)_")
    assert tile_of("test_3_011", pattern) == "test_3"
    assert tile_of("0042-test_3_011", pattern) == "test_3"  # a generated pair named after its patch
    assert tile_of("train_3_000", pattern) == "train_3"
    assert tile_of("anything", None) == "anything"
    with pytest.raises(CosynthError, match="--tile-pattern"):
        tile_of("pannuke_17", pattern)
    image = np.arange(130 * 200 * 3, dtype=np.uint8).reshape(130, 200, 3)
    crops = crop_grid(image, 64, 16, np.random.default_rng(0))
    assert len(crops) == 2 * 3 and all(c.shape == (64, 64, 3) for c in crops)
    assert (crops[0] == image[1:65, 4:68]).all()  # the grid is centred
    assert len(crop_grid(image, 64, 4, np.random.default_rng(0))) == 4


def _frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def test_feature_distances_match_the_formula_and_vanish_for_identical_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 8))
    b = rng.normal(size=(300, 8)) * 1.5 + 0.7
    d = feature_distances(a, b)
    assert d["fd"] == pytest.approx(_frechet(a, b), rel=1e-4)
    assert d["fd"] > 5 and d["kid"] > 1 and d["n_crops"] == [300, 300]
    same = feature_distances(a, a)
    # KID's subsets of one set against itself share rows, which biases it a little below zero.
    assert same["fd"] < 1e-6 and abs(same["kid"]) < 0.02 * d["kid"] and same["kid_sd"] > 0
    near = feature_distances(a[:150], a[150:])
    assert near["fd"] < 0.1 * d["fd"] and abs(near["kid"]) < 0.02 * d["kid"]


@pytest.fixture(scope="module")
def tiny_segmenter(sets, tmp_path_factory):
    from pathlib import Path

    from napari_cosynth.segmenter import SegmenterConfig, train_segmenter

    config = SegmenterConfig.from_yaml(Path(__file__).resolve().parents[1] / "configs"
                                       / "segmenter-tiny.yaml")
    out = tmp_path_factory.mktemp("seg") / "run"
    for _ in train_segmenter(config.with_(steps=6, checkpoint_every=6), sets["real"], "folder", out):
        pass
    return out


@pytest.mark.slow
def test_cli_end_to_end_with_segmenter(sets, tiny_segmenter, tmp_path, capsys):
    from napari_cosynth.cli.main import main

    assert main(["evaluate", "realism", "--real", str(sets["real"]), "--real-format", "folder",
                 "--fake", str(sets["blurred"]), "--baseline", str(sets["other"]), "--folds", "2",
                 "--epochs", "1", "--tile-pattern", r"(tile\d)_", "--segmenter", str(tiny_segmenter),
                 "--out", str(tmp_path / "report"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["groups"].startswith("tiles") and result["magnification"] == 20.0
    assert set(result["comparisons"]) == {"generated_vs_real", "real_halves", "baseline_vs_real"}
    for entry in result["comparisons"].values():
        for kind in ("colour", "luminance"):
            assert 0.0 <= entry["c2st"][kind]["accuracy"] <= 1.0
            assert entry["c2st"][kind]["n_folds"] == 2
        assert entry["features"]["fd"] >= 0.0 and np.isfinite(entry["features"]["kid"])
    assert (tmp_path / "report" / "report.json").is_file()
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["comparisons"] == result["comparisons"]


@pytest.mark.parametrize("extra, message", [
    (["--tile-pattern", "(unclosed"], "--tile-pattern '(unclosed' is not a regular expression"),
    (["--tile-pattern", r"(slide\d)"], "does not match the image name"),
    (["--folds", "1"], "--folds 1"),
])
def test_cli_errors_are_one_line(sets, capsys, extra, message):
    from napari_cosynth.cli.main import main

    assert main(["evaluate", "realism", "--real", str(sets["real"]), "--real-format", "folder",
                 "--fake", str(sets["other"]), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_fake_names_the_flag(sets, tmp_path, capsys):
    from napari_cosynth.cli.main import main

    assert main(["evaluate", "realism", "--real", str(sets["real"]), "--real-format", "folder",
                 "--fake", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "--fake" in err and "nothing" in err and "no such file" in err
