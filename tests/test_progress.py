"""The one progress protocol: every long job's progress has step, total and postfix(); one driver."""

from __future__ import annotations

import pytest

from napari_cosynth.bulk.run import BulkProgress
from napari_cosynth.engine.diffusion.sampler import SamplerStep
from napari_cosynth.engine.pipeline.conditions import GenerationProgress
from napari_cosynth.engine.training.train import TrainProgress
from napari_cosynth.evaluate.adherence import AdherenceProgress
from napari_cosynth.evaluate.downstream import DownstreamProgress
from napari_cosynth.progress import Progress, relay, run_to_end
from napari_cosynth.segmenter.train import SegmenterProgress

LOSSES = {"total": 0.5}


@pytest.mark.parametrize("item", [
    SamplerStep(1, 2),
    GenerationProgress(1, 2),
    BulkProgress(1, 2),
    AdherenceProgress(1, 2, "s0"),
    DownstreamProgress(1, 2, "run"),
    TrainProgress(1, 2, LOSSES, 0.1),
    SegmenterProgress(1, 2, {"total": 0.5, "ce": 0.1, "dice": 0.2, "distance": 0.2}, 0.1),
])
def test_every_progress_type_follows_the_protocol(item):
    assert isinstance(item, Progress)
    assert (item.step, item.total) == (1, 2)
    assert isinstance(item.postfix(), str)


def _job(n):
    for i in range(n):
        yield GenerationProgress(i + 1, n)
    return "done"


def test_run_to_end_reports_every_item_and_returns_the_result():
    seen = []
    assert run_to_end(_job(3), seen.append) == "done"
    assert [p.step for p in seen] == [1, 2, 3]


def test_relay_wraps_items_and_passes_the_result_on():
    seen = []
    assert run_to_end(relay(_job(2), lambda p: p.step * 10), seen.append) == "done"
    assert seen == [10, 20]


def test_a_failing_reporter_closes_the_job():
    closed = []

    def job():
        try:
            yield GenerationProgress(1, 2)
            yield GenerationProgress(2, 2)
        finally:
            closed.append(True)

    def stop(_item):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_end(job(), stop)
    assert closed == [True]
