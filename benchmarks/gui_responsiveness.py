"""How long the napari event loop stalls while the CoSynth widget samples a pair; prints JSON.

A 10 ms QTimer runs in the viewer's event loop during one ``generate`` click (the widget's own thread
worker, progress bar and live preview, exactly as a user triggers it), and every gap between its
ticks is recorded: the longest gap is the longest time the viewer could not repaint or react to the
mouse. The run uses the shipped sample layout. Optionally saves a screenshot of the whole window.

Run under a display (or Xvfb)::

    xvfb-run -a python benchmarks/gui_responsiveness.py --model default --size 128 --steps 50
    xvfb-run -a python benchmarks/gui_responsiveness.py --model tiny --screenshot docs/images/widget.png

``--model tiny`` builds a small random-weight model (the GUI tests' fixture) when no trained model
is at hand; its images are noise, but the widget's threading is the same.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def tiny_model(folder: Path) -> Path:
    """A random-weight CoSynNet with CoNSeP's classes (the GUI tests' configuration)."""
    import torch

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.networks.checkpoint import save_model
    from napari_cosynth.engine.networks.model import CoSynNet
    from napari_cosynth.vocabularies import CONSEP

    config = CosynthConfig.from_dict({
        "model": {"base_channels": 8, "channel_mult": [1, 2, 2], "attention_levels": [],
                  "attention_head_dim": 8, "label_embed_dim": 4, "point_embed_dim": 4,
                  "point_channels": 4, "point_blocks": 1, "norm_num_groups": 4},
        "text": {"kind": "small", "width": 16, "layers": 1, "heads": 2, "output_dim": 16},
        "data": {"path": ".", "format": "consep", "crop_size": 128, "magnification": 20.0},
    })
    torch.manual_seed(0)
    model = CoSynNet(config.model, config.text, CONSEP.n_classes)
    return save_model(folder / "tiny", model, config, {"classes": list(CONSEP.names),
                                                       "tissues": ["colon"], "model_id": "tiny-random"})


def wait(app_loop_condition, timeout_s: float) -> None:
    """Run the Qt event loop until ``app_loop_condition()`` is true."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    check = QTimer()
    check.timeout.connect(lambda: loop.quit() if app_loop_condition() or time.monotonic() > deadline
                          else None)
    check.start(20)
    loop.exec()
    check.stop()
    if not app_loop_condition():
        raise TimeoutError(f"gave up after {timeout_s} s")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="'default', 'tiny' or a checkpoint folder")
    parser.add_argument("--size", type=int, default=128, help="canvas height and width")
    parser.add_argument("--steps", type=int, default=50, help="fast sampler steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the window after the run")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QElapsedTimer, QTimer

    from napari_cosynth.napari.sample_data import layout_sample

    model = args.model
    tmp = tempfile.TemporaryDirectory()
    if model == "tiny":
        model = str(tiny_model(Path(tmp.name)))

    viewer = napari.Viewer(title="napari-cosynth")
    viewer.window._qt_window.resize(1500, 950)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cosynth", "CoSynth")
    if model != "default":  # the widget opens on the bundled model; its field then reads "default"
        widget.model.value = model
    wait(lambda: widget.loaded is not None or widget.model_info.value == "no model loaded", 300)
    if widget.loaded is None:
        raise SystemExit(f"could not load model {model!r}")
    (data, kwargs, _), = layout_sample()
    layout = viewer.add_points(data, **kwargs)
    widget.points_layer.value = layout
    widget.height.value = widget.width.value = args.size
    widget.steps.value = args.steps
    widget.seed.value = str(args.seed)
    wait(lambda: True, 1)  # let the window settle before measuring

    ticks, clock = [], QElapsedTimer()  # (time the tick ran, gap since the previous tick) in ms
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append((time.perf_counter() * 1000, clock.restart())))
    clock.start()
    timer.start(10)
    started = time.perf_counter()
    widget.generate.native.click()
    # Sampling ends when the worker's result reaches the main thread; the widget then adds layers.
    result_at = []
    widget.runner.task.worker.returned.connect(lambda _: result_at.append(time.perf_counter() * 1000))
    wait(lambda: not widget.busy, 3600)
    seconds = time.perf_counter() - started
    timer.stop()
    at, gaps = (np.asarray(v, dtype=float) for v in zip(*ticks[1:]))
    during = gaps[at <= result_at[0]]  # ticks before the result arrived: the sampling phase
    showing = gaps[at > result_at[0]]
    result = {
        "model": widget.loaded.card.model_id,
        "device": widget.device_info.value,
        "canvas": [args.size, args.size],
        "steps": args.steps,
        "run_seconds": round(seconds, 2),
        "timer_interval_ms": 10,
        "sampling": {
            "ticks": int(during.size),
            "max_gap_ms": float(during.max()),
            "p99_gap_ms": float(np.percentile(during, 99)),
            "median_gap_ms": float(np.median(during)),
            "gaps_over_100ms": int((during > 100).sum()),
        },
        "showing_result_max_gap_ms": float(showing.max()) if showing.size else None,
        "status": widget.status.value,
    }
    if args.screenshot:
        layers = viewer.layers
        layers.move(layers.index(layout), len(layers))  # the layout's points over the pair
        layers.selection.active = layers[-4]  # the semantic labels, ready to paint
        viewer.reset_view()
        wait(lambda: True, 1)
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(args.screenshot), canvas_only=False)
        result["screenshot"] = str(args.screenshot)
    print(json.dumps(result, indent=2))
    viewer.close()
    tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
