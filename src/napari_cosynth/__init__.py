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

__all__ = ["CoSynthPipeline", "ModelCard", "PointTable", "Sample", "SamplerSettings", "Vocabulary",
           "__version__"]

# The pipeline imports torch: loaded on first use (PEP 562), so the line above stays cheap.
_LAZY = {
    "CoSynthPipeline": "napari_cosynth.engine.pipeline.pipeline",
    "ModelCard": "napari_cosynth.engine.pipeline.card",
    "SamplerSettings": "napari_cosynth.engine.pipeline.settings",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_cosynth' has no attribute {name!r}")
