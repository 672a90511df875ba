"""The ``cosynth`` command line: argument parsing only; every subcommand calls the core."""

from .main import main

__all__ = ["main"]
