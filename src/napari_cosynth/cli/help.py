"""Help that every ``cosynth`` subcommand shares: descriptions, and the help of flags left without.

The shared flags (``--model``, the sampling flags, ``--device``, ``--out``, ``--quiet``, ``--json``)
bring their help from :mod:`.flags`. :func:`complete_help` fills in the rest: a subcommand's one-line
help becomes the description its ``--help`` shows, unless it has its own, and a ``--seed`` or a
dataset ``--format`` (``--real-format`` ...) defined without help gets the common one here. What a
subcommand means by its other options is written where it defines them; the tests check that no
option of any subcommand is left without help.
"""

from __future__ import annotations

import argparse

COMMON_HELP = {
    "--seed": "random seed: the same seed gives the same result",
    "--format": "dataset format",
}


def complete_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Fill in, through every subcommand of ``parser``, the help and descriptions left out."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = _sentence(helps[name])
                complete_help(sub)
        elif action.help is None:
            action.help = _common_help(parser, action)
    return parser


def _common_help(parser, action) -> str | None:
    for flag in action.option_strings:
        if flag in COMMON_HELP:
            return COMMON_HELP[flag]
        if flag.endswith("-format"):  # --real-format: the format of --real (or --real-test ...)
            stem = flag[: -len("-format")]
            data = next((f for a in parser._actions for f in a.option_strings
                         if f != flag and (f == stem or f.startswith(stem + "-"))), None)
            return f"dataset format of {data}" if data else "dataset format"
    return None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
