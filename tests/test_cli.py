import json
import shutil
import subprocess
import sys

import pytest

from napari_cosynth.cli.main import build_parser, main

TINY_CONFIG = __import__("pathlib").Path(__file__).parents[1] / "configs" / "tiny-cpu.yaml"


def _subcommand_paths(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommand_paths(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    paths = list(_subcommand_paths(build_parser()))
    assert ("info",) in paths and ("dataset", "stats") in paths and ("evaluate", "separation") in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, "--help"])
        assert exit_.value.code == 0
        assert "usage: cosynth" in capsys.readouterr().out


@pytest.mark.slow
def test_info_json_from_the_console_script():
    exe = shutil.which("cosynth") or str(__import__("pathlib").Path(sys.executable).with_name("cosynth"))
    out = subprocess.run([exe, "info", "--json"], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["napari_cosynth"] and info["torch"] and info["napari"]
    assert info["device"] in {"cpu", "cuda", "mps"}


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    code = main(["dataset", "stats", str(tmp_path / "missing"), "--format", "consep", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cosynth: error:") and "missing" in err
    assert "Traceback" not in err


def test_train_refuses_a_misspelt_override_before_training(tmp_path, capsys):
    code = main(["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "run"),
                 "--set", "train.stpes=3"])
    assert code == 2
    assert "train.stpes" in capsys.readouterr().err and not (tmp_path / "run").exists()
    code = main(["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "run"), "--set", "oops"])
    assert code == 2 and "KEY=VALUE" in capsys.readouterr().err
