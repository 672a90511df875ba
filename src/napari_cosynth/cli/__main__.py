"""``python -m napari_cosynth.cli`` (what torchrun launches): the ``cosynth`` command."""

import sys

from .main import main

sys.exit(main())
