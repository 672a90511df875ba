"""``python -m napari_cosynth.cli`` (what torchrun launches): the ``cosynth`` command."""

from .main import run

run()
