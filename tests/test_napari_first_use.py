"""A new user's first minutes in napari: opening files, the dock's width, what stays visible.

Run under Xvfb (napari's canvas needs OpenGL): ``xvfb-run -a python -m pytest tests/test_napari_first_use.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_cosynth.data.folder import write_sample
from napari_cosynth.napari.reader import get_reader
from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.vocabularies import CONSEP

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


def a_pair() -> Sample:
    instances = np.zeros((24, 24), np.int32)
    instances[2:8, 2:8] = 1
    return Sample(image=np.full((24, 24, 3), 200, np.uint8), instances=instances, classes=np.array([3]),
                  vocabulary=CONSEP, tissue="colon", magnification=20.0, name="pair",
                  points=PointTable([[4.5, 4.5]], [3]), provenance={"seed": 1})


def test_an_ordinary_png_opens_with_napari_not_cosynth(make_napari_viewer, tmp_path):
    import imageio.v3 as iio
    from napari.plugins import _npe2

    png = tmp_path / "photo.png"
    iio.imwrite(png, np.arange(8 * 10 * 3, dtype=np.uint8).reshape(8, 10, 3))
    viewer = make_napari_viewer()  # discovers the installed plugins
    readers = _npe2.get_readers(str(png))
    assert "napari" in readers and "napari-cosynth" not in readers
    # File > Open passes plugin=None: with two candidate readers napari would stop and ask (in a
    # test: raise MultipleReaderError); with one it just opens the image
    layers = viewer.open(str(png), plugin=None)
    assert len(layers) == 1 and layers[0].data.shape == (8, 10, 3)

    # pair folders are still ours; a folder without a pair is not
    folder = write_sample(a_pair(), tmp_path / "pairs")
    assert "napari-cosynth" in _npe2.get_readers(str(folder))
    opened = viewer.open(str(folder), plugin="napari-cosynth")
    assert {layer.metadata["cosynth"]["role"] for layer in opened} >= {"image", "semantic", "instances"}
    assert get_reader(str(tmp_path)) is None and get_reader(str(png)) is None


def show_widget(make_napari_viewer, qtbot, checkpoint, size=(1024, 700)):
    """The widget docked in a shown viewer window of ``size`` (a small laptop screen)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*size)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cosynth", "CoSynth")
    widget.model.value = str(checkpoint)
    qtbot.waitUntil(lambda: widget.loaded is not None, timeout=WAIT_MS)
    return viewer, widget


def test_the_dock_leaves_the_canvas_room_on_a_laptop(make_napari_viewer, qtbot, tiny_checkpoint):
    from qtpy.QtWidgets import QWidget

    from napari_cosynth.napari.sample_data import layout_sample

    viewer, widget = show_widget(make_napari_viewer, qtbot, tiny_checkpoint)
    (data, kwargs, _), = layout_sample()
    kwargs["name"] = "a layout layer whose name is much longer than the widget is wide"
    widget.points_layer.value = viewer.add_points(data, **kwargs)
    widget.status.value = "a long status line " * 6  # long state lines wrap, they do not widen it
    qtbot.wait(200)
    assert "53 points" in widget.layout_info.value  # the longest line the widget writes itself
    assert widget.sizeHint().width() <= 350  # what a 1024 px wide window can spare
    assert QWidget.width(widget) <= 350
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= 300, f"the canvas is {canvas.width()} px wide in a 1024 px window"
    # the controls scroll rather than make napari's window taller than the screen
    assert viewer.window._qt_window.height() <= 700


@pytest.mark.slow
def test_layout_stays_on_top_and_first_class_is_common(make_napari_viewer, qtbot, tiny_checkpoint):
    viewer, widget = show_widget(make_napari_viewer, qtbot, tiny_checkpoint)
    # the tiny model recorded no class counts: not the catch-all "other" (CoNSeP's first, rarest)
    assert widget.point_class.value == "inflammatory"
    widget.new_points_layer.native.click()
    layout = widget.points_layer.value
    layout.add(np.array([[10.0, 10.0], [20.0, 14.0]]))
    assert list(layout.features["class"]) == ["inflammatory", "inflammatory"]
    widget.height.value = widget.width.value = 32
    widget.steps.value = 3
    for run in (1, 2):  # a new run and a run replacing it
        widget.generate.native.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        assert viewer.layers[-1] is layout, [layer.name for layer in viewer.layers]
        assert f"cosynth {run} image" in viewer.layers


def test_the_first_class_is_the_training_datas_most_frequent():
    """The widget's first class is the model card's ``common_class``."""
    from napari_cosynth.engine.pipeline.card import ModelCard

    def card(**meta):
        return ModelCard.from_meta({"classes": list(CONSEP.names), "config": {"data": {"path": "."}}, **meta})

    counts = {"other": 427, "inflammatory": 4477, "epithelial": 6565, "spindle-shaped": 6631}
    assert card(training_data={"nuclei": counts}).common_class == "spindle-shaped"
    assert card(training_data={"nuclei": {**counts, "epithelial": 9000}}).common_class == "epithelial"
    assert card().common_class == "inflammatory"
    assert card(training_data={"nuclei": "broken"}).common_class == "inflammatory"
    assert card(training_data="a path").common_class == "inflammatory"
