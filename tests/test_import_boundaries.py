"""The core's doors: the label toolkit, readers, metrics and prompts import neither torch nor Qt/napari."""

import subprocess
import sys

CORE = ["napari_cosynth", "napari_cosynth.labels.instances", "napari_cosynth.labels.resample",
        "napari_cosynth.data.registry", "napari_cosynth.data.folder", "napari_cosynth.data.stats",
        "napari_cosynth.metrics.compare", "napari_cosynth.prompts", "napari_cosynth.evaluate.separation",
        "napari_cosynth.layouts.process", "napari_cosynth.cli.main", "napari_cosynth.napari.reader"]


def test_core_modules_do_not_import_torch_or_qt():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in ('torch', 'napari', 'qtpy', 'PyQt6') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
