"""Every error one line (issue 13): point tables, nested JSON, hand-edited states, corrupt checkpoints.

Each case goes through the real reader or the ``cosynth`` command line and checks for one line that
names the file (and the line, or the checkpoint to use instead), never a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_cosynth.cli.main import main
from napari_cosynth.errors import CheckpointError, CosynthError, DatasetError
from napari_cosynth.vocabularies import CONSEP


def _one_line_error(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("cosynth: error: "), err
    return err


# ------------------------------------------------------------------------------------ point tables


def test_a_points_csv_with_a_byte_order_mark_reads_like_one_without(tmp_path):
    from napari_cosynth.data.points_csv import read_points_csv

    text = "x,y,class\n3.5,4,inflammatory\n10,12,2\n"
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_text(text, encoding="utf-8")
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # what spreadsheet programs write
    a, b = read_points_csv(plain, CONSEP), read_points_csv(marked, CONSEP)
    assert np.array_equal(a.xy, b.xy) and np.array_equal(a.classes, b.classes) and len(b.classes) == 2


def test_a_points_csv_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, capsys, tiny_checkpoint):
    points = tmp_path / "latin1.csv"
    points.write_bytes("x,y,class\n1,2,épithélial\n".encode("latin-1"))
    err = _one_line_error(["generate", "--model", str(tiny_checkpoint), "--points", str(points),
                           "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert str(points) in err and "not UTF-8" in err and "CSV UTF-8" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_non_finite_coordinates_name_their_line(tmp_path, value):
    from napari_cosynth.data.points_csv import read_points_csv

    points = tmp_path / "p.csv"
    # Line 4: the blank line 3 counts, as in any editor.
    points.write_text(f"x,y,class\n1,2,1\n\n{value},5,1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=f"p.csv: line 4: x and y must be finite numbers, got '{value}'"):
        read_points_csv(points, CONSEP)


def test_a_points_csv_the_csv_module_rejects_is_one_line(tmp_path):
    from napari_cosynth.data.points_csv import read_points_csv

    points = tmp_path / "huge-field.csv"
    points.write_text("x,y,class\n1,2,1\n3,4," + "a" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="huge-field.csv: line 3: not a CSV table .*field limit"):
        read_points_csv(points, CONSEP)


# ------------------------------------------------------------------------------------- nested JSON

DEEP = "[" * 100_000 + "]" * 100_000


def _deep_inside(key: str, depth: int) -> str:
    brackets = "[" * depth + "]" * depth
    return f'{{"format": "x", "{key}": {brackets}}}'


def test_a_deeply_nested_meta_json_is_one_line(tmp_path, capsys):
    from evaluate_fixtures import write_tiny_folder

    folder = write_tiny_folder(tmp_path / "pairs", n=2)
    pair = sorted(p for p in folder.iterdir() if p.is_dir())[0]
    for text in (DEEP, _deep_inside("vocabulary", 5000)):
        (pair / "meta.json").write_text(text)
        err = _one_line_error(["dataset", "stats", str(folder), "--format", "folder"], capsys)
        assert str(pair / "meta.json") in err and "nested more than" in err


def test_a_deeply_nested_model_config_json_is_one_line(tiny_checkpoint, tmp_path, capsys):
    model = Path(shutil.copytree(tiny_checkpoint, tmp_path / "model"))
    for text in (DEEP, _deep_inside("config", 5000), _deep_inside("config", 900)):
        (model / "config.json").write_text(text)
        err = _one_line_error(["generate", "--model", str(model), "--out", str(tmp_path / "out")], capsys)
        assert str(model / "config.json") in err and "nested more than" in err


def test_jsonio_reads_what_the_project_writes_and_refuses_the_rest(tmp_path):
    from napari_cosynth.jsonio import MAX_DEPTH, JSONFileError, read_json

    ok = tmp_path / "ok.json"
    ok.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": [[1, 2.5, None, "x"]]}).encode())
    assert read_json(ok) == {"a": [[1, 2.5, None, "x"]]}
    for name, raw in (("deep", ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).encode()),
                      ("latin", '{"a": "é"}'.encode("latin-1")), ("broken", b'{"a": ')):
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(JSONFileError):
            read_json(tmp_path / name)


# ------------------------------------------------------------------- training states and checkpoints


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny training run with checkpoints at steps 2 and 4."""
    from napari_cosynth.engine.training.train import train
    from test_engine_train import tiny_config, write_tiny_consep

    root = tmp_path_factory.mktemp("hardening-run")
    data = write_tiny_consep(root / "data")
    list(train(tiny_config(data, steps=4, checkpoint_every=2), root / "run", device="cpu"))
    return root / "run", tiny_config(data, steps=6, checkpoint_every=2)


@pytest.fixture
def run_copy(finished_run, tmp_path):
    run, config = finished_run
    return Path(shutil.copytree(run, tmp_path / "run")), config


def _edit_state(folder: Path, edit) -> None:
    path = folder / "training_state.json"
    doc = json.loads(path.read_text())
    edit(dict(doc["state"]["__dict__"]), doc["state"]["__dict__"])
    path.write_text(json.dumps(doc))


def _set(items: list, key: str, value) -> None:
    for item in items:
        if item[0] == key:
            item[1] = value
            return
    raise KeyError(key)


@pytest.mark.parametrize("edit", ["step not a number", "optimizer missing", "rng broken", "config a list",
                                  "deeply nested"])
@pytest.mark.slow
def test_a_hand_edited_training_state_is_one_line_suggesting_the_previous_checkpoint(run_copy, edit):
    from napari_cosynth.engine.training.train import train

    run, config = run_copy
    newest = run / "checkpoints" / "step-0000004"
    if edit == "step not a number":
        _edit_state(newest, lambda state, items: _set(items, "step", "four"))
    elif edit == "optimizer missing":
        _edit_state(newest, lambda state, items: items.remove(next(i for i in items if i[0] == "optimizer")))
    elif edit == "rng broken":
        _edit_state(newest, lambda state, items: _set(items, "rng", {"__dict__": [["python", [3, "x"]]]}))
    elif edit == "config a list":
        _edit_state(newest, lambda state, items: _set(items, "config", [1, 2]))
    else:
        (newest / "training_state.json").write_text(DEEP)
    with pytest.raises(CheckpointError) as err:
        list(train(config, run, resume=True, device="cpu"))
    message = str(err.value)
    assert "\n" not in message and str(newest) in message
    assert f"previous checkpoint is {run / 'checkpoints' / 'step-0000002'}" in message


@pytest.mark.slow
def test_resuming_past_a_corrupt_newest_state_works_as_the_message_says(run_copy):
    from napari_cosynth.engine.training.train import train

    run, config = run_copy
    newest = run / "checkpoints" / "step-0000004"
    (newest / "training_state.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="previous checkpoint is .*step-0000002: move .*step-0000004"):
        list(train(config, run, resume=True, device="cpu"))
    shutil.move(str(newest), str(run / "broken-step-0000004"))
    steps = [p.step for p in train(config, run, resume=True, device="cpu")]
    assert steps == [3, 4, 5, 6]


def test_a_corrupt_newest_model_suggests_the_previous_checkpoint(run_copy, tmp_path, capsys):
    run, _ = run_copy
    weights = run / "checkpoints" / "step-0000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    err = _one_line_error(["generate", "--model", str(run), "--out", str(tmp_path / "out")], capsys)
    assert str(weights) in err and "step-0000002" in err and "previous checkpoint" in err


def test_deeply_nested_downstream_records_are_one_line(tmp_path, capsys):
    from napari_cosynth.evaluate.downstream import read_result, run_dir

    folder = tmp_path / "experiment"
    (folder / "plan.json").parent.mkdir(parents=True)
    (folder / "plan.json").write_text(DEEP)
    err = _one_line_error(["evaluate", "downstream-report", str(folder), "--out", str(tmp_path / "r")], capsys)
    assert str(folder / "plan.json") in err and "nested more than" in err
    result = folder / run_dir(0.25, "real", 0) / "result.json"
    result.parent.mkdir(parents=True)
    result.write_text(DEEP)
    with pytest.raises(CosynthError, match="unreadable result .*nested more than"):
        read_result(folder, 0.25, "real", 0)


@pytest.mark.parametrize("raw", [DEEP.encode(), '{"base_seed": "é"}'.encode("latin-1")])
def test_a_broken_bulk_recipe_is_one_line(tmp_path, raw):
    from napari_cosynth.bulk.run import RECIPE_FILE, read_recipe

    (tmp_path / RECIPE_FILE).write_bytes(raw)
    with pytest.raises(CosynthError, match="cannot read the run's recipe .*remove the file") as err:
        read_recipe(tmp_path)
    assert "\n" not in str(err.value)


def test_the_projects_own_documents_are_read_by_one_checker(tmp_path):
    from napari_cosynth.jsonio import read_document

    file = tmp_path / "doc.json"
    spec = {"format": "x", "what": "thing", "version_key": "version", "version": 2}
    file.write_text('{"format": "x", "version": 2, "a": 1}')
    assert read_document(file, **spec)["a"] == 1
    with pytest.raises(CheckpointError, match=r"doc.json: thing version 3 is not supported"):
        file.write_text('{"format": "x", "version": 3}')
        read_document(file, **spec)
    file.write_text('{"format": "x", "version": 1}')
    assert read_document(file, **spec, newer_only=True)["version"] == 1  # older ones still load
    with pytest.raises(CheckpointError, match="newer than this napari-cosynth reads"):
        file.write_text('{"format": "x", "version": 3}')
        read_document(file, **spec, newer_only=True)
    with pytest.raises(CheckpointError, match="is not a napari-cosynth thing"):
        file.write_text('{"format": "y", "version": 2}')
        read_document(file, **spec)
    with pytest.raises(CheckpointError, match="not valid JSON.*corrupt"):
        file.write_text('{"format": ')
        read_document(file, **spec)
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_document(tmp_path / "missing.json", **spec)
