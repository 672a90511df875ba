"""napari-cosynth: co-synthesis of histopathology nuclei image-label pairs.

The core (``labels``, ``data``, ``prompts``, ``metrics``, ``sample``) needs only numpy, scipy and
scikit-image; ``engine`` needs torch; ``napari`` needs napari and Qt. Nothing here imports torch or
napari at package import time, so ``import napari_cosynth`` and napari's manifest load stay fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-cosynth")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .sample import PointTable, Sample, Vocabulary

__all__ = ["PointTable", "Sample", "Vocabulary", "__version__"]
