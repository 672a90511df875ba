"""The CoSynth dock widget driven as a user drives it, with a tiny random-weight model.

Run under Xvfb (napari's canvas needs OpenGL): ``xvfb-run -a python -m pytest tests/test_napari_*.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_cosynth.data.folder import list_pairs, read_sample
from napari_cosynth.labels.distance import distance_map
from napari_cosynth.labels.instances import SeparationParams, instances_from_maps
from napari_cosynth.vocabularies import CONSEP

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


@pytest.fixture
def errors(monkeypatch):
    """Messages the widget shows as napari error notifications."""
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    return shown


def open_widget(make_napari_viewer, qtbot, checkpoint):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cosynth", "CoSynth")
    widget.model.value = str(checkpoint)
    qtbot.waitUntil(lambda: widget.loaded is not None, timeout=WAIT_MS)
    return viewer, widget


def draw_layout(widget, points_by_class):
    widget.new_points_layer.native.click()
    layer = widget.points_layer.value
    for name, coords in points_by_class.items():
        widget.point_class.value = name
        layer.add(np.asarray(coords, dtype=float))
    return layer


def click_and_wait(qtbot, widget, button):
    getattr(widget, button).native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def same_pair_as_cosynth_generate(widget, layer, checkpoint, tmp_path):
    """The seed rule: the widget's run with seed S is `cosynth generate --seed S` (pair 0 keeps S)."""
    from napari_cosynth.cli.main import main
    from napari_cosynth.data.points_csv import write_points_csv
    from napari_cosynth.napari.points import points_from_layer

    drawn = widget.runs[-1].sample
    csv = tmp_path / "layout.csv"
    write_points_csv(points_from_layer(layer, CONSEP), CONSEP, csv)
    assert main(["generate", "--model", str(checkpoint), "--points", str(csv), "--size", "32", "32",
                 "--steps", "4", "--seed", "7", "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    (folder,) = list_pairs(tmp_path / "cli")
    cli = read_sample(folder)
    assert cli.provenance["seed"] == drawn.provenance["seed"] == 7
    assert cli.provenance["prompt"] == drawn.provenance["prompt"]
    np.testing.assert_array_equal(cli.image, drawn.image)
    np.testing.assert_array_equal(cli.semantic, drawn.semantic)


@pytest.mark.slow
def test_generate_edit_resynthesize_export(make_napari_viewer, qtbot, tiny_checkpoint, tmp_path, errors):
    viewer, widget = open_widget(make_napari_viewer, qtbot, tiny_checkpoint)
    assert widget.point_class.choices == CONSEP.nucleus_classes
    assert widget.tissue.value == "colon"

    layer = draw_layout(widget, {"epithelial": [[8, 8], [8, 20]], "inflammatory": [[24, 12]]})
    # each click took the class picked in the widget; the column lists every class of the model
    assert list(layer.features["class"]) == ["epithelial", "epithelial", "inflammatory"]
    assert list(layer.features["class"].cat.categories) == list(CONSEP.nucleus_classes)
    assert layer.feature_defaults["class"][0] == "inflammatory"
    assert "epithelial" in widget.prompt.value and "inflammatory" in widget.prompt.value
    assert "colon" in widget.prompt.value

    viewer.add_image(np.zeros((40, 36)), name="reference")  # a reference image sets the canvas
    assert (widget.height.value, widget.width.value) == (40, 36)
    viewer.layers.remove("reference")
    widget.height.value = widget.width.value = 32
    widget.steps.value = 4
    widget.seed.value = "7"
    click_and_wait(qtbot, widget, "generate")
    assert errors == []
    names = [layer.name for layer in viewer.layers]
    # the run's layers go under the layout, which stays on top and visible
    assert names[-5:] == ["cosynth 1 image", "cosynth 1 semantic", "cosynth 1 distance",
                          "cosynth 1 instances", layer.name]
    assert not any(n.endswith("preview") for n in names)
    image, semantic, distance, instances = viewer.layers[-5:-1]
    assert image.rgb and image.data.shape == (32, 32, 3) and image.data.dtype == np.uint8
    assert semantic.data.shape == (32, 32) and semantic.data.dtype == np.uint8
    assert list(semantic.features["class"]) == list(CONSEP.names)
    assert distance.data.dtype == np.float32 and 0 <= distance.data.min() <= distance.data.max() <= 1
    assert instances.data.dtype == np.int32
    n = int(instances.data.max())
    assert list(instances.features["index"]) == list(range(1, n + 1))
    assert widget.seed_info.value == "seed used: 7"
    assert widget.device_info.value == "auto: cpu"
    assert widget.prompt.value == widget.runs[-1].sample.provenance["prompt"]  # the box shows what ran
    same_pair_as_cosynth_generate(widget, layer, tiny_checkpoint, tmp_path)

    # paint a nucleus of class 4 through napari's own tool API: it goes through undo history
    before = semantic.data.copy()
    semantic.brush_size = 5
    semantic.paint((16, 16), 4)
    assert (semantic.data != before).any()
    semantic.undo()
    np.testing.assert_array_equal(semantic.data, before)
    semantic.paint((16, 16), 4)
    run = widget.runs[-1]
    assert run.edited == {"semantic"}

    generated = instances.data.copy()
    widget.recompute_instances.native.click()
    expected, classes = instances_from_maps(semantic.data, distance.data, SeparationParams.for_magnification(20.0))
    np.testing.assert_array_equal(instances.data, expected)
    assert list(instances.features["class_id"]) == list(classes)
    assert run.edited == {"semantic"}  # the widget's own write is not a user edit
    instances.undo()  # the recompute is one undoable edit
    np.testing.assert_array_equal(instances.data, generated)
    instances.redo()
    np.testing.assert_array_equal(instances.data, expected)

    old_image = image.data.copy()
    edited_semantic = semantic.data.copy()
    click_and_wait(qtbot, widget, "resynthesize")
    assert errors == []
    assert not np.array_equal(image.data, old_image)
    np.testing.assert_array_equal(semantic.data, edited_semantic)
    # the labels were edited, so the distance map now comes from the instances
    np.testing.assert_allclose(distance.data, distance_map(instances.data), atol=1e-6)
    assert widget.runs[-1].sample.provenance["resynthesized"] == "image"

    widget.export_dir.value = str(tmp_path / "curated")
    widget.export.native.click()
    widget.export.native.click()  # a second export never overwrites the first
    assert errors == []
    pairs = list_pairs(tmp_path / "curated")
    assert len(pairs) == 2 and widget.export_info.value.startswith("2 pair(s)")
    pair = read_sample(pairs[0])
    np.testing.assert_array_equal(pair.image, image.data)
    np.testing.assert_array_equal(pair.semantic, semantic.data)
    np.testing.assert_array_equal(pair.instances > 0, instances.data > 0)
    assert pair.provenance["model_id"] == "tiny-test" and pair.provenance["version"]
    assert pair.provenance["prompt"] and pair.provenance["edited"] == ["semantic"]
    assert isinstance(pair.provenance["seed"], int)


@pytest.mark.slow
def test_cancel_and_replace(make_napari_viewer, qtbot, tiny_checkpoint, errors):
    from qtpy.QtCore import QTimer

    viewer, widget = open_widget(make_napari_viewer, qtbot, tiny_checkpoint)
    layout = draw_layout(widget, {"spindle-shaped": [[10, 10], [20, 20]]})
    widget.height.value = widget.width.value = 32
    widget.steps.value = 3
    click_and_wait(qtbot, widget, "generate")
    # seed "random": the widget draws the base seed and the prompt box shows the prompt it ran with
    assert widget.seed_info.value == f"seed used: {widget.runs[-1].sample.provenance['seed']}"
    assert widget.prompt.value == widget.runs[-1].sample.provenance["prompt"]
    first = {layer.name: layer for layer in viewer.layers}
    data = {name: np.array(layer.data, copy=True) for name, layer in first.items()}

    # cancel a long run half-way: the viewer's event loop keeps running while the worker samples
    # (how long it may pause is a speed figure: benchmarks/gui_responsiveness.py measures it)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.last_step))
    timer.start(10)
    assert widget.steps.max == 100  # the tiny model's T
    widget.steps.value = 100
    widget.generate.native.click()
    # the first live preview comes after step 10 (ten previews per run)
    qtbot.waitUntil(lambda: widget.last_step is not None and widget.last_step.step >= 10, timeout=WAIT_MS)
    bar = widget.runner.task.bar  # napari's progress bar advances once per denoising step
    assert bar.total == 100 and 10 <= bar.n < 100
    # the run will replace cosynth 1: its live preview is shown in cosynth 1's image layer, no layer added
    assert [layer.name for layer in viewer.layers] == list(first)
    assert viewer.layers[-1] is layout
    image = viewer.layers["cosynth 1 image"]
    qtbot.waitUntil(lambda: not np.array_equal(image.data, data["cosynth 1 image"]), timeout=WAIT_MS)
    shown = {layer.name for layer in viewer.layers if layer.visible}
    assert "cosynth 1 semantic" not in shown and "cosynth 1 instances" not in shown  # old labels hidden
    widget.cancel.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    timer.stop()
    assert widget.last_step.step < 100
    assert "cancelled" in widget.status.value
    assert [layer.name for layer in viewer.layers] == list(first)  # nothing added, the preview undone
    assert viewer.layers["cosynth 1 semantic"].visible and viewer.layers["cosynth 1 instances"].visible
    for name, layer in first.items():
        assert viewer.layers[name] is layer
        np.testing.assert_array_equal(layer.data, data[name])
    # the event loop ticked between denoising steps, not only after the run
    sampled = [t.step for t in ticks if t is not None and t.total == 100 and t.step < 100]
    assert len(set(sampled)) >= 2
    assert widget.generate.enabled and errors == []

    # a new run replaces the previous one's layers, but asks first when they were edited
    widget.steps.value = 3
    semantic = viewer.layers["cosynth 1 semantic"]
    semantic.paint((5, 5), 2)
    asked = []
    widget.confirm = lambda question: asked.append(question) or False
    click_and_wait(qtbot, widget, "generate")
    assert len(asked) == 1 and "cosynth 1" in asked[0]
    assert viewer.layers["cosynth 1 semantic"] is semantic  # kept: the user said no
    assert "cosynth 2 image" in viewer.layers
    widget.confirm = lambda question: asked.append(question) or True
    index = viewer.layers.index(viewer.layers["cosynth 2 image"])
    click_and_wait(qtbot, widget, "generate")
    assert len(asked) == 1  # cosynth 2 was not edited: replaced without asking
    assert "cosynth 2 image" not in viewer.layers
    assert viewer.layers.index(viewer.layers["cosynth 3 image"]) == index
    # an edited run replaced on the user's word: Ctrl+Z cannot bring its painted pixels back
    semantic = viewer.layers["cosynth 3 semantic"]
    semantic.mode = "paint"
    semantic.paint((5, 5), 2)
    click_and_wait(qtbot, widget, "generate")
    assert len(asked) == 2 and viewer.layers["cosynth 4 semantic"] is semantic
    fresh = semantic.data.copy()
    semantic.undo()
    np.testing.assert_array_equal(semantic.data, fresh)
    assert semantic.mode == "paint" and semantic.editable
    assert errors == []


def test_errors_are_notifications(make_napari_viewer, qtbot, tiny_checkpoint, tmp_path, errors):
    _, widget = open_widget(make_napari_viewer, qtbot, tiny_checkpoint)
    widget.generate.native.click()
    assert "no points layer" in errors[-1]

    layer = draw_layout(widget, {})
    widget.generate.native.click()
    assert "is empty" in errors[-1]

    widget.point_class.value = "other"
    layer.add([[40, 40]])
    widget.height.value = widget.width.value = 32
    assert "1 outside the 32x32 canvas" in widget.layout_info.value
    widget.generate.native.click()
    assert "outside the 32x32 canvas" in errors[-1]

    widget.prompt.value = "nuclei " * 80
    assert widget.prompt_info.value.startswith("TOO LONG")
    layer.data = np.array([[10.0, 10.0]])
    widget.generate.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert "tokens" in errors[-1] and "at most 77" in errors[-1]
    widget.prompt.value = ""  # cleared: filled again from the layout
    assert widget.prompt.value.startswith("high quality histopathology colon")

    widget.export.native.click()
    assert "choose a folder" in errors[-1]

    (tmp_path / "weights.pt").write_bytes(b"\x80\x04not really a pickle")
    widget.model.value = str(tmp_path / "weights.pt")
    qtbot.waitUntil(lambda: "never unpickles" in (errors[-1] if errors else ""), timeout=WAIT_MS)
    assert widget.loaded is None and widget.model_info.value == "no model loaded"
    assert widget.generate.enabled  # still usable


def test_the_bundled_model_is_the_widgets_default(make_napari_viewer, qtbot, errors):
    """A fresh widget loads the shipped `default` model with no checkpoint given, and generates."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cosynth", "CoSynth")
    qtbot.waitUntil(lambda: widget.loaded is not None, timeout=WAIT_MS)
    assert errors == []
    assert widget.loaded.card.model_id.startswith("default-")
    assert (widget.height.value, widget.width.value) == (128, 128)  # the bundled model's canvas_size
    widget.height.value = widget.width.value = 64
    draw_layout(widget, {"spindle-shaped": [[20, 20], [40, 44]], "epithelial": [[12, 50]]})
    widget.steps.value = 4
    click_and_wait(qtbot, widget, "generate")
    assert errors == []
    image, semantic, _, _ = viewer.layers[-5:-1]
    assert image.data.shape == (64, 64, 3) and semantic.data.shape == (64, 64)
    assert widget.runs[-1].sample.provenance["model_id"].startswith("default-")


def test_a_failed_job_ends_and_puts_back_the_layer_its_preview_was_shown_in(make_napari_viewer, qtbot):
    """A job failing with a RuntimeError (what torch raises, out of memory included) is reported and
    ends (superqt's worker would drop it and leave the widget busy); a replacing run or a re-synthesis
    previews in the layer it will overwrite, and after a failure that layer shows what it showed."""
    import time

    from magicgui.widgets import Label

    from napari_cosynth.engine.pipeline.conditions import GenerationProgress
    from napari_cosynth.napari.worker import Runner

    viewer = make_napari_viewer()
    before = np.zeros((8, 8, 3), np.uint8)
    layer = viewer.add_image(before.copy(), rgb=True, name="cosynth 1 image")
    seen, failed = [], []
    runner = Runner(viewer, status=Label(), on_busy=lambda busy: None, on_error=failed.append)
    runner.on_layer_added = lambda: seen.append("added")

    def make():
        yield GenerationProgress(1, 2, {"image": np.full((1, 8, 8, 3), 200, np.uint8)})
        time.sleep(0.5)  # the preview reaches the layer before the failure does
        raise RuntimeError("the sampler failed")

    runner.start(make, "cosynth 2", on_result=lambda value: None, preview_into=layer)
    qtbot.waitUntil(lambda: int(np.asarray(layer.data).max()) == 200, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not runner.busy, timeout=WAIT_MS)
    assert [str(e) for e in failed] == ["the sampler failed"]
    assert [lyr.name for lyr in viewer.layers] == ["cosynth 1 image"] and not seen  # no preview layer
    np.testing.assert_array_equal(layer.data, before)
