"""npe2 sample data: a centroid layout to start from, and a pair the bundled model draws from it.

The layout (``resources/layout_colon_20x.csv``) is the project's own: a 128 x 128 colon patch at 20x
drawn from a simple marked point process (epithelial nuclei on a jittered gland ring, spindle-shaped
nuclei along two stromal bands, a loose inflammatory cluster, hard-core spacing of 5 pixels; the
numbers per class follow CoNSeP's proportions at 20x). No dataset image or annotation ships with the
package. The pair is generated on demand with the bundled ``default`` model and a fixed seed.
"""

from __future__ import annotations

from importlib.resources import as_file, files

from ..sample import PointTable
from ..vocabularies import CONSEP

LAYOUT_FILE = "layout_colon_20x.csv"
LAYOUT_SHAPE = (128, 128)
LAYOUT_TISSUE = "colon"
SAMPLE_SEED = 0


def layout_points() -> PointTable:
    """The shipped layout as a point table of CoNSeP's (merged) classes."""
    from ..data.points_csv import read_points_csv

    with as_file(files("napari_cosynth") / "resources" / LAYOUT_FILE) as path:
        return read_points_csv(path, CONSEP)


def layout_sample() -> list[tuple]:
    """Sample data 'layout': the points layer, ready to generate from or edit."""
    from .points import points_layer_data

    return [points_layer_data(layout_points(), CONSEP, name="colon layout (20x)")]


def generated_pair_sample(steps: int | None = None) -> list[tuple]:
    """Sample data 'pair': the layout and the pair the bundled model draws from it (seed 0).

    The same pair as ``cosynth generate --model default --points resources/layout_colon_20x.csv
    --size 128 128 --tissue colon --seed 0``. Takes a few seconds on a CPU. Raises the engine's
    CheckpointError, which says what to do, when the bundled model is not installed.

    Parameters
    ----------
    steps : int, optional
        Sampler steps (default: the default sampler's).
    """
    from ..engine.pipeline.pipeline import CoSynthPipeline
    from ..errors import CosynthError
    from .layers import sample_to_layers

    pipe = CoSynthPipeline.from_pretrained("default")
    if pipe.vocabulary != CONSEP:
        raise CosynthError(
            f"the bundled model's classes ({', '.join(pipe.vocabulary.nucleus_classes)}) are not CoNSeP's, "
            "which the sample layout uses"
        )
    pair, = pipe(layout_points(), size=LAYOUT_SHAPE, tissue=LAYOUT_TISSUE, seed=SAMPLE_SEED, steps=steps)
    return layout_sample() + sample_to_layers(pair, prefix="sample pair", include_points=False)
