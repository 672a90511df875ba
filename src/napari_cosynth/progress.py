"""Long work as generators: the one progress protocol and the one driver that runs them.

Training, sampling, bulk generation, evaluation and the downstream experiment are generators that
yield a progress object after every unit of work and return their result (``StopIteration.value``),
so that the command line (a tqdm bar), the napari widget (a thread worker with a cancel button) and
plain Python drive the same code and can stop it between two steps (as stardist-napari does).

Every progress object has ``step`` (units done, counting those of a resumed run), ``total`` (the unit
it stops at) and ``postfix()`` (one short line for a progress bar). The kinds of progress differ in
what else they carry (losses, a preview, the pair just written) but the drivers read only these three.

No torch, Qt or napari here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar, runtime_checkable

R = TypeVar("R")


@runtime_checkable
class Progress(Protocol):
    """What every long job yields: ``step`` of ``total`` done, and a line for a progress bar."""

    step: int
    total: int

    def postfix(self) -> str: ...


def run_to_end(work: Generator[Any, None, R], on_progress: Callable[[Any], None] | None = None) -> R:
    """Drive ``work`` to its end, calling ``on_progress`` with every item it yields; return its result.

    Closing the generator (``KeyboardInterrupt`` in ``on_progress``, an exception it raises) runs the
    job's own clean-up at once rather than at garbage collection.
    """
    try:
        while True:
            try:
                item = next(work)
            except StopIteration as stop:
                return stop.value
            if on_progress is not None:
                on_progress(item)
    finally:
        work.close()


def relay(work: Generator[Any, None, R], wrap: Callable[[Any], Any]) -> Generator[Any, None, R]:
    """Yield ``wrap(item)`` for every item ``work`` yields; return what it returns.

    How a long job built from other long jobs (bulk generation inside the downstream experiment,
    segmenter trainings) reports their progress as its own: ``result = yield from relay(inner, wrap)``.
    """
    while True:
        try:
            item = next(work)
        except StopIteration as stop:
            return stop.value
        yield wrap(item)
