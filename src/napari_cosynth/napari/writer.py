"""npe2 writer: save the selected layers of a curated pair as a pair folder of the project's format.

``File > Save Selected Layers...`` with the image, the label layers (and optionally the distance map and
the layout) of one pair selected, or ``viewer.layers.save(path, selected=True, plugin="napari-cosynth")``.
The path names the pair folder; if it exists the pair is written beside it under a free numbered name,
since pairs are never overwritten.
"""

from __future__ import annotations

from pathlib import Path

from .export import LayerView, pair_from_layers


def write_pair(path: str, layer_data: list[tuple]) -> list[str]:
    """Write layer data tuples (data, kwargs, type) of one pair; return the folder written.

    Parameters
    ----------
    path : str
        The pair folder to create (its parent is the dataset folder).
    layer_data : list of tuple
        An RGB image layer, a semantic and/or an instance labels layer, optionally a distance image
        and a points layout, as napari passes them to writers.

    Returns
    -------
    list of str
        The one folder written.
    """
    from ..data.folder import write_sample

    target = Path(path)
    views = [LayerView.from_tuple(data, meta, kind) for data, meta, kind in layer_data]
    sample = pair_from_layers(views, name=target.name)
    return [str(write_sample(sample, target.parent, name=target.name))]
