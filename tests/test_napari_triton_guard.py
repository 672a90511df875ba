"""The plugin keeps triton out of napari: importing it after the viewer's OpenGL is up crashed napari.

Both tests run a fresh Python, because the test process itself imported torch (and triton) long before
any viewer existed, which is the one order that never crashed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("napari")

OPEN_WIDGET_AFTER_VIEWER = """
import time
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
QApplication.processEvents()  # the OpenGL context (Mesa under Xvfb) exists from here on
_, widget = viewer.window.add_plugin_dock_widget("napari-cosynth", "CoSynth")
start = time.time()
while widget.loaded is None and time.time() - start < 120:
    QApplication.processEvents()
    time.sleep(0.05)
print("model loaded:", widget.loaded is not None, "| triton:", sys.modules.get("triton"))
"""


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, check=False)


@pytest.mark.slow
@pytest.mark.gui
def test_the_widget_loads_the_bundled_model_after_the_viewer_is_up():
    done = _python(OPEN_WIDGET_AFTER_VIEWER)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model loaded: True | triton: None" in done.stdout


def test_the_guard_marks_triton_absent_unless_allowed_or_loaded():
    code = ("from napari_cosynth.napari._triton_guard import keep_triton_out\n"
            "print(keep_triton_out())\n"
            "try:\n    import triton\n    print('imported')\nexcept ImportError:\n    print('absent')\n")
    assert _python(code).stdout.split() == ["True", "absent"]
    allowed = _python(code, COSYNTH_ALLOW_TRITON="1").stdout.split()
    assert allowed[0] == "False" and allowed[1] in ("imported", "absent")  # absent where not installed
