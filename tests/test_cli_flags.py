"""The CLI's shared flags: one default per flag across subcommands, and no import cycle in cli/."""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

import pytest

from napari_cosynth.cli.main import build_parser

CLI = Path(__file__).parents[1] / "src" / "napari_cosynth" / "cli"

# (flag, subcommand) -> why that subcommand's default differs from the flag's default elsewhere.
DIFFERENT_ON_PURPOSE = {
    ("--model", "evaluate downstream"): "None: only the synthetic arm needs a joint model, and it asks for one",
    ("--sampler", "generate-dataset"): "None: a rerun continues its folder's sampler (a new folder: unipc)",
    ("--out", "train"): "runs/cosynth: a run folder; where --out is optional elsewhere, none is written",
    ("--n", "evaluate grid"): "4 rows of real patches, not a number of pairs",
    ("--seed", "generate"): "None: a seed is drawn and recorded in every pair",
    ("--seed", "generate-dataset"): "None: the folder's seed on a resume, else drawn and recorded",
    ("--seed", "segmenter train"): "None: the seed of the segmenter's YAML config",
}


def _options(parser, path=()):
    """(flag, 'sub command', action) for every option of every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            for flag in action.option_strings:
                yield flag, " ".join(path), action


def _defaults() -> dict[str, dict[str, object]]:
    """flag -> {subcommand: default} over the subcommands where the flag is optional."""
    defaults = defaultdict(dict)
    for flag, command, action in _options(build_parser()):
        if not action.required:
            defaults[flag][command] = action.default
    return defaults


def test_a_flag_has_the_same_default_in_every_subcommand_that_has_it():
    defaults = _defaults()
    for flag, by_command in defaults.items():
        usual = {repr(v) for c, v in by_command.items() if (flag, c) not in DIFFERENT_ON_PURPOSE}
        assert len(usual) <= 1, f"{flag} has different defaults: {by_command}"
    for (flag, command), why in DIFFERENT_ON_PURPOSE.items():  # each exception still is one
        by_command = defaults[flag]
        assert command in by_command, f"{flag} of {command} ({why}) is gone: drop the exception"
        usual = {repr(v) for c, v in by_command.items() if (flag, c) not in DIFFERENT_ON_PURPOSE}
        assert repr(by_command[command]) not in usual, f"{flag} of {command} no longer differs: drop it"


def test_the_shared_flags_have_one_default_and_one_help():
    defaults = _defaults()
    assert set(defaults["--device"].values()) == {"auto"} and len(defaults["--device"]) >= 9
    assert defaults["--device"].keys() >= {"generate", "generate-dataset", "train", "evaluate adherence",
                                           "evaluate grid", "evaluate downstream", "segmenter train"}
    assert {defaults["--model"][c] for c in ("generate", "generate-dataset", "evaluate adherence",
                                             "evaluate grid")} == {"default"}
    assert set(defaults["--guidance"].values()) == {2.0}
    assert set(defaults["--json"].values()) == {False} and set(defaults["--quiet"].values()) == {False}
    # The help of a shared flag, less what a command adds (torchrun, the default); --steps of train and
    # segmenter train counts training steps, not sampler steps.
    helps = defaultdict(set)
    for flag, command, action in _options(build_parser()):
        if flag in ("--device", "--sampler", "--guidance") or (flag == "--steps" and command in
                                                               defaults["--sampler"]):
            helps[flag].add(action.help.split("; under torchrun")[0].split(" (default: ")[0])
    assert helps.keys() == {"--device", "--sampler", "--steps", "--guidance"}
    assert all(len(texts) == 1 for texts in helps.values()), helps
    (device_help,) = helps["--device"]
    # what auto picks, in the order engine.device.resolve_device tries them
    assert device_help.index("auto (") < device_help.index("CUDA") < device_help.index("MPS") < \
        device_help.index("CPU")


@pytest.mark.parametrize("argv", [["generate", "--out", "x"], ["evaluate", "adherence", "--data", "d",
                                                                 "--format", "folder"]])
def test_an_evaluation_defaults_to_the_bundled_model_on_the_auto_device(argv):
    args = build_parser().parse_args(argv)
    assert args.model == "default" and args.device == "auto" and args.sampler == "unipc"


def _sibling_imports(path: Path) -> set[str]:
    """The cli/ modules that ``path`` imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
    return names


def test_the_cli_modules_import_no_cycle():
    graph = {p.stem: _sibling_imports(p) for p in CLI.glob("*.py")}
    for module, imported in graph.items():
        if module not in ("__init__", "__main__"):
            assert "main" not in imported, f"cli/{module}.py imports cli/main.py, which imports it"

    def visit(module, trail):
        for nxt in graph.get(module, ()):
            assert nxt not in trail, "import cycle: " + " -> ".join([*trail, nxt])
            visit(nxt, (*trail, nxt))

    for module in graph:
        visit(module, (module,))
