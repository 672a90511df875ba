"""Run one of the core's progress generators in a napari thread worker, with a progress bar.

The core's long jobs (``CoSynthPipeline.generate``, ``CoSynthPipeline.resynthesize_steps``) are plain
generators that yield a progress object after every sampler step (the protocol of
:mod:`napari_cosynth.progress`: ``step``, ``total``, ``postfix()``). Here such a generator is created
*inside* the worker thread (so importing torch and moving the model never block the viewer) and driven
step by step; each yield is where :meth:`Task.cancel` can stop it, so a cancel lands within one step.
The napari progress bar lives in the main thread and is advanced from the ``yielded`` signal.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CosynthError
from ..progress import Progress

if TYPE_CHECKING:
    from ..engine.pipeline.conditions import GenerationProgress


class JobFailed(Exception):
    """A job's RuntimeError, carried under another type.

    superqt's generator worker (behind napari's ``thread_worker``) takes any RuntimeError raised by the
    generator for a sign that its own Qt object was deleted: it emits neither ``errored`` nor
    ``finished``, so the widget would stay busy for good. torch raises RuntimeError for most failures
    (out of memory on a GPU included), so the job's RuntimeErrors travel wrapped and are unwrapped
    before ``on_error`` sees them.
    """

    def __init__(self, original: RuntimeError):
        super().__init__(str(original))
        self.original = original


@dataclass
class _PreviewTarget:
    """An existing image layer a job previews in (see :meth:`Runner.start`), and what to put back."""

    layer: Any
    hide: list
    saved: Any = None  # the layer's data before the first preview
    hidden: list = field(default_factory=list)  # the layers of ``hide`` this job made invisible
    delivered: bool = False  # the job's result reached the widget: keep what the layer shows

    def show(self, image, viewer) -> None:
        if self.layer not in viewer.layers:
            return
        if self.saved is None:
            self.saved = self.layer.data
            self.hidden = [layer for layer in self.hide if layer.visible]
            for layer in self.hidden:
                layer.visible = False
        self.layer.data = image

    def restore(self, viewer) -> None:
        if self.saved is not None and not self.delivered and self.layer in viewer.layers:
            self.layer.data = self.saved
        for layer in self.hidden:
            layer.visible = True


class Task:
    """One background job: a generator factory, its worker, its progress bar and its callbacks.

    Parameters
    ----------
    make : callable
        Called in the worker thread with no argument; returns a generator that yields
        :class:`~napari_cosynth.progress.Progress` objects and returns the result.
    description : str
        Label of the progress bar.
    on_step : callable(progress)
        Main thread, after each yield.
    on_result : callable(result)
        Main thread, when the generator finished (not after a cancel).
    on_error : callable(exception)
        Main thread, when creating or running the generator raised.
    on_finished : callable(cancelled: bool)
        Main thread, always last, whatever happened.
    """

    def __init__(
        self,
        make: Callable[[], Generator],
        *,
        description: str,
        on_step: Callable[[Any], None],
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_finished: Callable[[bool], None],
    ):
        from napari.qt.threading import thread_worker
        from napari.utils import progress

        self._inner: Generator | None = None
        self.cancelled = False
        self.steps_done = 0

        # ignore_errors: errors go to on_error only (by default they are re-raised in Qt's loop too).
        @thread_worker(start_thread=False, ignore_errors=True)
        def work():
            from ..engine.threads import use_generation_threads

            # One torch thread unless the user set another count: engine/threads.py says why.
            use_generation_threads()
            try:
                self._inner = make()
                return (yield from self._inner)
            except RuntimeError as err:
                raise JobFailed(err) from err

        self.worker = work()
        # The bar starts indeterminate (model loading) and gets its total with the first step.
        self.bar = progress(total=0, desc=description)
        self.worker.yielded.connect(self._on_yielded)
        self.worker.returned.connect(on_result)
        self.worker.errored.connect(lambda err: on_error(err.original if isinstance(err, JobFailed) else err))
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self._on_step = on_step
        self._on_finished_cb = on_finished

    def start(self) -> Task:
        self.worker.start()
        return self

    @property
    def running(self) -> bool:
        return self.worker.is_running

    def cancel(self) -> None:
        """Ask the worker to stop at its next step (the step in progress is finished first)."""
        self.cancelled = True
        self.worker.quit()

    def _on_yielded(self, item: Progress) -> None:
        self._on_step(item)
        if item.total and self.bar.total != item.total:
            self.bar.total = int(item.total)
        step = int(item.step)
        # Signals can arrive re-entrantly (see Runner._on_step): only ever move the bar forward.
        if step > self.steps_done:
            self.bar.update(step - self.steps_done)
            self.steps_done = step

    def _on_aborted(self) -> None:
        # The worker left the loop at a yield; close the core generator so its cleanup (model back
        # to its training mode, buffers freed) runs now rather than at garbage collection.
        if self._inner is not None:
            self._inner.close()

    def _on_finished(self) -> None:
        self.bar.close()
        self._on_finished_cb(self.cancelled)


class Runner:
    """The widget's jobs, one at a time: progress bar, live preview layer, busy state and cancel.

    Its jobs are the pipeline's generator forms, which yield
    :class:`~napari_cosynth.engine.pipeline.conditions.GenerationProgress` (the protocol's
    ``step``, ``total`` and ``postfix()``, and a ``preview`` every few steps).

    Parameters
    ----------
    viewer : napari.Viewer
        Where the preview layer is shown.
    status : magicgui Label
        Shows the step, the end of a run, or a cancel.
    on_busy : callable(bool)
        Called when a job starts (True) and when it has finished (False).
    on_error : callable(exception)
        Shows a failed job's error.
    on_layer_added : callable()
        Called after the preview layer was added (the widget puts the layout back on top).
    """

    def __init__(self, viewer, *, status, on_busy, on_error, on_layer_added=lambda: None):
        self.viewer = viewer
        self.status = status
        self.on_busy = on_busy
        self.on_error = on_error
        self.on_layer_added = on_layer_added
        self.task: Task | None = None
        self.last_step: GenerationProgress | None = None
        self.preview = None
        self._target: _PreviewTarget | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None

    def start(self, make: Callable[[], Generator], name: str, on_result: Callable[[Any], None], *,
              preview_into=None, hide_while_previewing=()) -> None:
        """Run ``make()``'s generator in a worker; ``on_result`` gets its return value.

        ``make`` is called in the worker thread (it may import torch or move a model).
        ``preview_into``: an image layer that shows the live preview instead of a new layer, for a job
        whose result will overwrite that layer anyway (a run replacing the previous one, a
        re-synthesis). napari pauses the viewer to add a layer and again, for a full garbage
        collection, to remove one (about a second each with torch loaded), so reusing the layer
        keeps the viewer responsive; its data is put back if the job is cancelled or fails.
        ``hide_while_previewing``: layers hidden from the first preview to the end of the job (the
        labels of the run being replaced, which do not belong to the new image).
        """
        import time

        self.last_step = None
        self._target = None if preview_into is None else _PreviewTarget(preview_into, list(hide_while_previewing))
        self.status.value = f"{name}: loading and checking..."
        started = time.perf_counter()

        def result(value):
            try:
                on_result(value)
            except Exception as err:  # noqa: BLE001 - in a slot it would only reach the terminal
                self.on_error(err)
                return
            if self._target is not None:
                self._target.delivered = True
            self.status.value = f"{name}: done in {time.perf_counter() - started:.1f} s"

        self.task = Task(make, description=f"CoSynth {name}", on_step=lambda s: self._on_step(s, name),
                         on_result=result, on_error=self.on_error, on_finished=self._on_finished)
        self.on_busy(True)
        self.task.start()

    def cancel(self) -> None:
        if self.task is not None:
            self.status.value = "cancelling after the current step..."
            self.task.cancel()

    def _on_step(self, step: GenerationProgress, name: str) -> None:
        # Adding a layer lets Qt deliver the worker's queued signals re-entrantly, so a handler can
        # see later steps, or the end of the job, before an earlier step's handler has returned.
        if self.task is None or (self.last_step is not None and step.step <= self.last_step.step):
            return
        self.last_step = step
        self.status.value = f"{name}: {step.postfix()}"
        if step.preview is None:
            return
        image = step.preview["image"][0]
        if self._target is not None:
            self._target.show(image, self.viewer)
            return
        if self.preview is not None:
            self.preview.data = image
            return
        from napari.layers import Image

        self.preview = Image(image, name=f"{name} preview", rgb=True,
                             metadata={"cosynth": {"role": "preview", "run": name}})
        self.viewer.add_layer(self.preview)
        if self.task is None:  # the job ended while the layer was being added
            self._remove_preview()
        else:
            self.on_layer_added()

    def take_preview(self):
        """Hand the live preview layer to the caller (to show the result in); None if there is none."""
        layer, self.preview = self.preview, None
        return layer if layer is not None and layer in self.viewer.layers else None

    def _remove_preview(self) -> None:
        if self.preview is not None and self.preview in self.viewer.layers:
            self.viewer.layers.remove(self.preview)
        self.preview = None

    def _on_finished(self, cancelled: bool) -> None:
        self.task = None
        self._remove_preview()
        if self._target is not None:
            self._target.restore(self.viewer)
            self._target = None
        self.on_busy(False)
        if cancelled:
            step = self.last_step
            done = f" after step {step.step} of {step.total}" if step else ""
            self.status.value = f"cancelled{done}; the layers are as they were"


def call_in_thread(function: Callable[[], Any], *, on_result, on_error, on_finished=None):
    """Run ``function`` in a napari thread worker (no progress, no cancel); return the worker.

    Keep a reference to the returned worker until ``on_finished``: a running worker whose Python
    object is collected loses its signals.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(function, _start_thread=False, _ignore_errors=True)
    worker.returned.connect(on_result)
    worker.errored.connect(on_error)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker


def describe_error(err, device: str = "the device") -> str:
    """What a failed job tells the user: what went wrong and what to do."""
    if isinstance(err, str):
        return err
    if isinstance(err, CosynthError):
        return str(err)
    text = str(err)
    if isinstance(err, MemoryError) or "OutOfMemoryError" in type(err).__name__ \
            or "out of memory" in text.lower():
        return (f"out of memory on {device}: make the canvas (height x width) smaller, or choose "
                "another device")
    if "cuda" in text.lower():
        return f"the CUDA device failed ({text.splitlines()[0]}); choose device 'cpu' and try again"
    return (f"unexpected {type(err).__name__}: {text}; the widget is still usable (details in the "
            "terminal)")
