"""cosynth segmenter train / predict and cosynth evaluate alignment: argument parsing."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this module's subcommands to ``subparsers`` (an argparse sub-parser action)."""


def register_alignment(evaluate_subparsers) -> None:
    """Add ``cosynth evaluate alignment``."""
