"""Sample grid PNGs: layout arithmetic, overlays and contours, and the command with the tiny model."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from data_fixtures import disk_instances
from evaluate_fixtures import write_tiny_folder
from napari_cosynth.cli.main import main
from napari_cosynth.data.registry import open_dataset
from napari_cosynth.engine.pipeline.settings import SamplerSettings
from napari_cosynth.errors import CosynthError
from napari_cosynth.evaluate.grid import GAP, GROUP_GAP, compose_grid, contours, grid_report, overlay
from napari_cosynth.progress import run_to_end
from napari_cosynth.vocabularies import CONSEP, class_colors


def _expected_size(rows, h, w, k):
    return rows * (h + GAP) + GAP, (2 + 3 * k) * (w + GAP) + GAP + k * GROUP_GAP


def test_grid_report_writes_png_of_expected_size(tiny_checkpoint, tmp_path):
    data = write_tiny_folder(tmp_path / "data", shapes=[(32, 32), (32, 36)])
    out = tmp_path / "g.png"
    result = run_to_end(grid_report(tiny_checkpoint, data, "folder", out, n=5, pairs_per_layout=2,
                                    settings=SamplerSettings(steps=2)))
    image = iio.imread(out)
    assert image.shape == (*_expected_size(2, 32, 36, 2), 3) == (result["height"], result["width"], 3)
    assert result["rows"] == 2 and result["columns"] == 8
    # The first cell is the real image itself.
    real = open_dataset(data, "folder")[0].image
    assert np.array_equal(image[GAP:GAP + 32, GAP:GAP + 32], real)


def test_overlay_tints_nuclei_only_and_contours_use_class_colours():
    image = np.full((16, 16, 3), 128, np.uint8)
    instances = disk_instances((16, 16), [(8, 8)], radius=4)
    semantic = np.where(instances > 0, 3, 0).astype(np.uint8)
    tinted = overlay(image, semantic, CONSEP)
    assert np.array_equal(tinted[0, 0], image[0, 0])
    blue = np.asarray(class_colors(CONSEP.n_classes)[3][:3])
    assert np.abs(tinted[8, 8].astype(int) - blue).sum() < np.abs(image[8, 8].astype(int) - blue).sum()
    drawn = contours(image, instances, np.array([3]), CONSEP)
    changed = np.any(drawn != image, axis=2)
    assert changed.any() and not changed[8, 8] and not changed[0, 0]
    assert np.all(drawn[changed] == blue)


def test_points_only_rows_and_mixed_sizes_compose(tmp_path):
    data = write_tiny_folder(tmp_path / "pts", shapes=[(32, 32), (24, 40)], points_only=True)
    samples = list(open_dataset(data, "folder"))
    grid = compose_grid([(s, []) for s in samples], CONSEP)
    assert grid.shape == (2 * (32 + GAP) + GAP, 2 * (40 + GAP) + GAP, 3)
    with pytest.raises(CosynthError):
        compose_grid([], CONSEP)


def test_grid_refuses_non_png_and_bad_counts(tiny_checkpoint, tmp_path):
    data = write_tiny_folder(tmp_path / "data", n=1)
    with pytest.raises(CosynthError, match="PNG"):
        run_to_end(grid_report(tiny_checkpoint, data, "folder", tmp_path / "g.jpg"))
    with pytest.raises(CosynthError, match="positive"):
        run_to_end(grid_report(tiny_checkpoint, data, "folder", tmp_path / "g.png", pairs_per_layout=0))


def test_cli_grid(tiny_checkpoint, tmp_path, capsys):
    data = write_tiny_folder(tmp_path / "data", n=1)
    out = tmp_path / "grid.png"
    code = main(["evaluate", "grid", "--model", str(tiny_checkpoint), "--data", str(data), "--format",
                 "folder", "--n", "1", "--pairs-per-layout", "1", "--steps", "2", "--out", str(out),
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert iio.imread(out).shape == (*_expected_size(1, 32, 32, 1), 3)
    assert result["path"] == str(out)
