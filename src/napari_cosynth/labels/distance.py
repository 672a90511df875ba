"""The normalised distance map: the model's cue for where one nucleus ends and the next begins.

CoSyn's network has a distance channel but its code never defines it, so this project does: per
nucleus, the Euclidean distance of each pixel to the nucleus boundary divided by that nucleus's own
maximum, so every nucleus peaks at 1 at its centre whatever its size, and background is 0. Because
each nucleus is normalised separately, the map dips to about ``1 / max`` on both sides of a contact
between two touching nuclei, which is what lets
:func:`~napari_cosynth.labels.instances.instances_from_maps` cut them apart again.

The transform runs per object on its bounding box (``ndi.find_objects``) rather than once on the whole
image: a single EDT of the foreground would treat touching nuclei as one blob, and per-object boxes
keep the cost proportional to the nuclei's area (a 256x256 CoNSeP patch takes a few milliseconds).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def distance_map(instances: np.ndarray) -> np.ndarray:
    """Per-nucleus normalised distance to the boundary.

    Parameters
    ----------
    instances : np.ndarray
        (H, W) integer instance map, 0 = background, nuclei > 0 (ids need not be sequential).

    Returns
    -------
    np.ndarray
        (H, W) float32 in [0, 1]: for a pixel of nucleus ``i``, ``edt_i(p) / max(edt_i)`` where
        ``edt_i`` is the Euclidean distance transform of nucleus ``i``'s mask alone, padded by one
        background pixel on every side. A boundary pixel is 1 pixel from the outside, so it holds
        ``1 / max(edt_i)``, never 0; the centre holds 1; background holds 0. The padding makes a
        nucleus cut by the image border end at the border, as if the image stopped there, so the
        map of a crop does not depend on what lay outside it.

    Raises
    ------
    ValueError
        If ``instances`` is not a 2-D integer array of non-negative ids.
    """
    inst = np.asarray(instances)
    if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
        raise ValueError(
            f"distance_map needs a 2-D integer instance map, got {inst.dtype} {inst.shape}"
        )
    if inst.size and inst.min() < 0:
        raise ValueError(
            f"instance ids must be >= 0 (0 = background), found {int(inst.min())}"
        )
    out = np.zeros(inst.shape, dtype=np.float32)
    for _, box, mask, edt in object_edts(inst):
        out[box][mask] = edt[mask] / edt.max()
    return out


def object_edts(instances: np.ndarray):
    """Yield ``(id, box, mask, edt)`` for every nucleus: its bounding box (a tuple of slices), its
    mask within the box and the Euclidean distance transform of that mask padded by one background
    pixel (so ``edt.max()`` is the nucleus's depth in pixels). Shared by :func:`distance_map` and the
    instance recovery, which needs each region's depth. ``instances`` must hold ids >= 0."""
    inst = np.asarray(instances)
    if not inst.size:
        return
    # find_objects wants a signed or small type; ids are non-negative here so intp is lossless.
    if inst.dtype.itemsize > np.dtype(np.intp).itemsize or inst.dtype.kind == "u":
        inst = inst.astype(np.intp)
    for index, box in enumerate(ndi.find_objects(inst)):
        if box is None:
            continue
        mask = inst[box] == index + 1
        yield index + 1, box, mask, ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
