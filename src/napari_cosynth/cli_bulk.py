"""cosynth generate-dataset: argument parsing."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this module's subcommands to ``subparsers`` (an argparse sub-parser action)."""
