"""cosynth evaluate adherence / fid / grid: argument parsing for the evaluation suite."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this module's subcommands to ``subparsers`` (an argparse sub-parser action)."""
