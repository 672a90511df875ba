"""FID/IS through torchmetrics with the small fixed feature net; Inception refuses at once when absent."""

import json
import urllib.request

import numpy as np
import pytest

from evaluate_fixtures import write_tiny_folder
from napari_cosynth.cli.main import main
from napari_cosynth.errors import CosynthError
from napari_cosynth.evaluate.fid import INCEPTION_WEIGHTS_FILE, SmallFeatures, fid_report


@pytest.fixture
def sets(tmp_path):
    real = write_tiny_folder(tmp_path / "real", n=4, seed=0)
    other = write_tiny_folder(tmp_path / "other", n=4, seed=1)
    return real, other


def test_fid_of_a_set_against_itself_is_zero_and_against_another_positive(sets):
    real, other = sets
    same = fid_report(real, "folder", real, "folder", features="small")
    diff = fid_report(real, "folder", other, "folder", features="small")
    assert same["n_real"] == same["n_fake"] == 4
    assert diff["fid"] > 0
    assert abs(same["fid"]) < 1e-6 * max(1.0, diff["fid"])
    assert "small" in same["features"]
    assert same["inception_score"].startswith("not available")


def test_small_features_are_fixed_and_take_any_size():
    import torch

    a, b = SmallFeatures.build(), SmallFeatures.build()
    x = torch.randint(0, 256, (2, 3, 20, 28), dtype=torch.uint8)
    fa, fb = a(x), b(x)
    assert fa.shape == (2, a.num_features)
    assert torch.equal(fa, fb)


def test_inception_without_cached_weights_fails_fast_and_says_what_to_do(sets, tmp_path, monkeypatch):
    import torch

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    # Fast means before any download: one attempted (and left to time out offline) fails the test.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    real, other = sets
    with pytest.raises(CosynthError) as err:
        fid_report(real, "folder", other, "folder", features="inception")
    message = str(err.value)
    assert INCEPTION_WEIGHTS_FILE in message and "--features" in message


def test_missing_weights_file_and_too_few_images_are_refused(sets, tmp_path):
    real, other = sets
    with pytest.raises(CosynthError, match="no such weights file"):
        fid_report(real, "folder", other, "folder", features=str(tmp_path / "nope.pth"))
    one = write_tiny_folder(tmp_path / "one", n=1)
    with pytest.raises(CosynthError, match="at least 2"):
        fid_report(real, "folder", one, "folder", features="small")


def test_cli_fid_json_and_report(sets, tmp_path, capsys):
    real, other = sets
    code = main(["evaluate", "fid", "--real", str(real), "--real-format", "folder", "--fake",
                 str(other), "--features", "small", "--out", str(tmp_path / "rep"), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fid"] > 0 and np.isfinite(result["fid"])
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["fid"] == pytest.approx(result["fid"])
    assert "| fid |" in (tmp_path / "rep" / "report.md").read_text()


def test_cli_fid_inception_absent_is_a_one_line_error(sets, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    real, other = sets
    code = main(["evaluate", "fid", "--real", str(real), "--real-format", "folder", "--fake", str(other)])
    assert code == 2
    assert "Inception-v3 weights" in capsys.readouterr().err


def test_magnification_resamples_both_sets_before_the_features(sets):
    from napari_cosynth.evaluate.fid import _images

    real, other = sets
    native = next(_images(real, "folder", "real", None))
    halved = next(_images(real, "folder", "real", 10.0))  # the tiny sets are 20x
    assert halved.shape[:2] == (native.shape[0] // 2, native.shape[1] // 2)
    report = fid_report(real, "folder", other, "folder", features="small", magnification=10.0)
    assert report["magnification"] == 10.0 and report["n_fake"] == 4
    assert report["fid"] != fid_report(real, "folder", other, "folder", features="small")["fid"]
