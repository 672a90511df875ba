"""`cosynth generate` end to end with a tiny checkpoint: folder pairs, reproducibility, clear errors."""

import numpy as np
import pytest

from napari_cosynth.cli.main import main
from napari_cosynth.data.folder import list_pairs, read_sample


def _gen(ckpt, out, *extra):
    return main(["generate", "--model", str(ckpt), "--size", "32", "32", "--steps", "4",
                 "--out", str(out), "--quiet", *extra])


def test_generate_writes_reproducible_pairs_and_never_overwrites(tiny_checkpoint, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("x,y,class\n5,5,inflammatory\n20,12,epithelial\n30,30,4\n")
    assert _gen(tiny_checkpoint, tmp_path / "a", "--points", str(points), "--seed", "3", "--n", "2") == 0
    assert _gen(tiny_checkpoint, tmp_path / "a", "--points", str(points), "--seed", "3") == 0
    pairs = sorted(list_pairs(tmp_path / "a"))
    assert len(pairs) == 3  # the rerun of seed 3 got a fresh name, the first pair is untouched
    first, again = (read_sample(p) for p in pairs if p.name.startswith("pair-3"))
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.semantic, again.semantic)
    assert first.provenance["seed"] == 3 and first.provenance["model_id"] == "tiny-test"
    assert "inflammatory" in first.provenance["prompt"] and first.points is not None
    assert first.image.shape == (32, 32, 3) and first.instances.shape == (32, 32)


def test_generate_without_points_draws_a_layout(tiny_checkpoint, tmp_path):
    assert _gen(tiny_checkpoint, tmp_path / "b", "--seed", "1", "--prompt", "an H&E patch") == 0
    (pair,) = (read_sample(p) for p in list_pairs(tmp_path / "b"))
    assert pair.provenance["prompt"] == "an H&E patch"
    assert len(pair.points) > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--points", "{csv}"], "outside"),
        (["--size", "30", "30"], "30"),
        (["--prompt", "nuclei " * 200], "tokens"),
    ],
)
def test_bad_requests_exit_2_with_a_clear_message(tiny_checkpoint, tmp_path, capsys, extra, message):
    csv = tmp_path / "far.csv"
    csv.write_text("x,y,class\n100,5,inflammatory\n")
    extra = [e.replace("{csv}", str(csv)) for e in extra]
    assert _gen(tiny_checkpoint, tmp_path / "c", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("cosynth: error:") and message in err
    assert not (tmp_path / "c").exists() or not list_pairs(tmp_path / "c")


def test_a_pickle_model_is_refused(tmp_path, capsys):
    import pickle

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    assert main(["generate", "--model", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "pickle" in capsys.readouterr().err.lower()
