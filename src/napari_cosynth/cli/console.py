"""What a ``cosynth`` command shows on the terminal: a progress bar while it works, then its result.

Every subcommand module prints through these two, so a result reads the same (a table, or JSON with
``--json``) and every bar counts the same way whichever command drives it. Kept apart from
:mod:`napari_cosynth.cli.main`, which imports the subcommand modules: they import from here, never
back from ``main``, so the CLI's modules have no import cycle.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, TypeVar

from ..progress import Progress, run_to_end

R = TypeVar("R")


def print_result(result: dict, as_json: bool) -> None:
    """Print a command's result: indented JSON with ``--json``, else a nested ``key: value`` table."""
    if as_json:
        from ..evaluate.report import json_default

        print(json.dumps(result, indent=2, default=json_default))
    else:
        _print_table(result)


def _print_table(result: dict, indent: int = 0) -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            print(" " * indent + f"{key}:")
            _print_table(value, indent + 2)
        elif isinstance(value, float):
            print(" " * indent + f"{key}: {value:.4f}")
        else:
            print(" " * indent + f"{key}: {value}")


def drive_with_progress(work: Generator[Progress, None, R], desc: str, quiet: bool = False,
                        unit: str = "step") -> R:
    """Run a core generator to its end with a tqdm bar counting ``unit``; return its return value.

    ``work`` yields :class:`~napari_cosynth.progress.Progress` objects (``step``, ``total``,
    ``postfix()``); :func:`~napari_cosynth.progress.run_to_end` drives it, so an interrupt closes
    the job at once.
    """
    bar = _Bar(desc, quiet, unit)
    try:
        return run_to_end(work, bar.show)
    finally:
        bar.close()


class _Bar:
    """A tqdm bar opened at the first report, so that it starts at that report's count.

    What was done before it (a resumed run's steps, or the first step, which also paid for loading)
    would otherwise count as done in no time, and the first tick would show tens of thousands of
    steps per second.
    """

    def __init__(self, desc: str, quiet: bool, unit: str) -> None:
        self.desc, self.quiet, self.unit = desc, quiet, unit
        self.tqdm: Any = None

    def show(self, progress: Progress) -> None:
        if self.tqdm is None:
            from tqdm import tqdm

            self.tqdm = tqdm(total=progress.total, desc=self.desc, disable=self.quiet, unit=self.unit,
                             dynamic_ncols=True, initial=progress.step)
        self.tqdm.n = progress.step
        self.tqdm.set_postfix_str(progress.postfix(), refresh=False)
        self.tqdm.refresh()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
