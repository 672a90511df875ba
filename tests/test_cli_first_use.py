"""A new user's first commands: complete help, consistent option names, honest progress bars, pair names."""

from __future__ import annotations

import argparse
import json

import pytest

from napari_cosynth.cli.console import drive_with_progress
from napari_cosynth.cli.main import build_parser, main
from napari_cosynth.data.folder import list_pairs, read_sample


def _parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_of_every_subcommand_has_help():
    missing = []
    for path, parser in _parsers(build_parser()):
        if path and not parser.description:
            missing.append(f"cosynth {' '.join(path)}: no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"cosynth {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "without help: " + "; ".join(missing)
    assert len(list(_parsers(build_parser()))) > 20  # the walk reached the nested subcommands


def test_generate_help_says_what_a_user_must_know(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Generate image-label pairs" in text  # a description, not only the usage line
    assert "multiples of the model's size step (8 for the bundled model" in text
    assert "128 128 for the bundled model" in text
    for flag in ("--device", "--quiet", "--n", "--sampler"):
        assert f"{flag} " in text


def test_layouts_sample_names_its_layout_model_and_says_to_fit_one(tmp_path, capsys):
    from test_layouts_cli import write_tiny_dataset

    args = ["--n", "1", "--size", "32", "32", "--out", str(tmp_path / "out")]
    assert main(["layouts", "sample", "--layout-model", "hardcore", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--layout-model hardcore: no such file" in err
    assert "cosynth layouts fit" in err and "generate-dataset" in err

    write_tiny_dataset(tmp_path / "data", n=2)
    fitted = tmp_path / "fitted.json"
    assert main(["layouts", "fit", "--data", str(tmp_path / "data"), "--format", "folder",
                 "--iterations", "1", "--out", str(fitted)]) == 0
    assert main(["layouts", "sample", "--layout-model", str(fitted), *args]) == 0
    assert main(["layouts", "sample", "--model", str(fitted), *args[:-1], str(tmp_path / "old")]) == 0
    assert json.loads((tmp_path / "out" / "layouts.json").read_text())["model"] == str(fitted)


class Step:  # the progress protocol of napari_cosynth.progress
    def __init__(self, step, total):
        self.step, self.total = step, total

    def postfix(self) -> str:
        return ""


def _bar_lines(capsys) -> list[str]:
    return [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]


def test_progress_bars_count_their_unit_from_the_first_report(monkeypatch, capsys):
    import tqdm.std

    clock = [1000.0]

    def now():  # every reading of the clock is 0.1 ms later: the first tick is not at the bar's start
        clock[0] += 1e-4
        return clock[0]

    monkeypatch.setattr(tqdm.std, "time", now)

    def resumed_training():  # resumed at step 5000 of 5004: two steps per second from there
        for step in range(5000, 5005):
            if step > 5000:
                clock[0] += 0.5
            yield Step(step, 5004)
        return "done"

    assert drive_with_progress(resumed_training(), "training") == "done"
    lines = _bar_lines(capsys)
    assert "5000/5004" in lines[0] and "?step/s" in lines[0], lines[0]  # not 5000 steps in no time
    later = [line for line in lines if "5000/5004" not in line]
    assert later and all("2.00step/s" in line for line in later), lines

    def pairs():
        for i in range(1, 4):
            clock[0] += 2.0
            yield Step(i, 3)

    drive_with_progress(pairs(), "pairs", unit="pair")
    lines = _bar_lines(capsys)
    assert lines[-1].startswith("pairs: 100%") and "s/pair" in lines[-1] and "step" not in lines[-1]


def test_generated_pair_folders_and_their_meta_name_agree(tiny_checkpoint, tmp_path):
    out = tmp_path / "pairs"
    for _ in range(2):  # the rerun of the same seed gets a suffixed folder name
        assert main(["generate", "--model", str(tiny_checkpoint), "--size", "32", "32", "--steps", "2",
                     "--seed", "5", "--out", str(out), "--quiet"]) == 0
    folders = sorted(list_pairs(out))
    assert [f.name for f in folders] == ["pair-5", "pair-5-001"]
    for folder in folders:
        assert json.loads((folder / "meta.json").read_text())["name"] == folder.name
        assert read_sample(folder).name == folder.name

    # a pair written before the names agreed still loads, under its folder's name
    meta = json.loads((folders[0] / "meta.json").read_text())
    (folders[0] / "meta.json").write_text(json.dumps({**meta, "name": "pair-5-0"}))
    assert read_sample(folders[0]).name == "pair-5"
