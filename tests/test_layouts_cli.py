import json

import numpy as np

from napari_cosynth.cli.main import main
from napari_cosynth.data.folder import write_sample
from napari_cosynth.data.points_csv import read_points_csv
from napari_cosynth.sample import Sample
from napari_cosynth.vocabularies import CONSEP


def write_tiny_dataset(root, n=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    for k in range(n):
        inst = np.zeros((size, size), dtype=np.int32)
        centres = [(r, c) for r in range(5, size - 4, 9) for c in range(5, size - 4, 9)]
        for i, (r, c) in enumerate(centres, start=1):
            r, c = r + rng.integers(-1, 2), c + rng.integers(-1, 2)
            inst[(rows - r) ** 2 + (cols - c) ** 2 <= 6] = i
        classes = rng.integers(1, 5, len(centres))
        write_sample(Sample(None, inst, classes, CONSEP, magnification=20.0, name=f"s{k}"), root)


def test_fit_sample_realism_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    write_tiny_dataset(data)
    model = tmp_path / "model.json"
    assert main(["layouts", "fit", "--data", str(data), "--format", "folder", "--out", str(model),
                 "--iterations", "1", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["layouts"] == 4 and fit["points"] == 4 * 25
    assert json.loads(model.read_text())["format"] == "napari-cosynth layout model"

    out = tmp_path / "layouts"
    assert main(["layouts", "sample", "--model", str(model), "--n", "3", "--size", "40", "56",
                 "--mix", "inflammatory=1", "--seed", "2", "--out", str(out), "--json"]) == 0
    sampled = json.loads(capsys.readouterr().out)
    files = sorted(out.glob("*.csv"))
    assert [p.name for p in files] == ["layout_00000.csv", "layout_00001.csv", "layout_00002.csv"]
    tables = [read_points_csv(p, CONSEP) for p in files]
    assert sum(len(t) for t in tables) == sampled["points"] > 0
    assert all(set(t.classes) <= {2} and not t.outside((40, 56)).any() for t in tables)

    assert main(["layouts", "realism", "--real", str(data), "--format", "folder",
                 "--generated", str(out), "--json"]) == 0
    realism = json.loads(capsys.readouterr().out)
    assert realism["n_real"] == 4 and realism["n_generated"] == 3
    assert 0 <= realism["pooled"]["nn_ks"] <= 1
    assert set(realism["per_class"]) == set(CONSEP.nucleus_classes)


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    code = main(["layouts", "sample", "--model", str(bad), "--n", "1", "--size", "8", "8",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and str(bad) in capsys.readouterr().err
    model = tmp_path / "m.json"
    write_tiny_dataset(tmp_path / "d", n=1)
    assert main(["layouts", "fit", "--data", str(tmp_path / "d"), "--format", "folder", "--out", str(model),
                 "--iterations", "0"]) == 0
    capsys.readouterr()
    code = main(["layouts", "sample", "--model", str(model), "--n", "1", "--size", "8", "8",
                 "--mix", "inflammatory", "--out", str(tmp_path / "o")])
    assert code == 2 and "name=share" in capsys.readouterr().err
    code = main(["layouts", "realism", "--real", str(tmp_path / "d"), "--format", "folder",
                 "--generated", str(tmp_path / "nowhere")])
    assert code == 2 and "nowhere" in capsys.readouterr().err
