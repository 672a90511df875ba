"""Semantic map: the class of each pixel, from an instance map and a class per instance."""

import numpy as np


def semantic_map(instances: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class id per pixel (0 = background) for instances numbered 1..N with ``classes[i-1]``.

    Parameters
    ----------
    instances : np.ndarray
        (H, W) integer instance map, 0 = background, ids 1..N (gaps allowed).
    classes : np.ndarray
        (N,) class ids in 1..255, ``classes[i - 1]`` for instance ``i``.

    Returns
    -------
    np.ndarray
        (H, W) uint8 class map.

    Raises
    ------
    ValueError
        If an instance id is negative or has no class, or a class does not fit 1..255.
    """
    instances = np.asarray(instances)
    classes = np.asarray(classes).reshape(-1)
    if instances.ndim != 2 or not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(
            f"semantic_map needs a 2-D integer instance map, got {instances.dtype} {instances.shape}"
        )
    if instances.size:
        lo, hi = int(instances.min()), int(instances.max())
        if lo < 0:
            raise ValueError(f"instance ids must be >= 0 (0 = background), found {lo}")
        if hi > len(classes):
            raise ValueError(
                f"the instance map holds id {hi} but only {len(classes)} classes were given "
                f"(instance i takes classes[i-1])"
            )
    if classes.size and (classes.min() < 1 or classes.max() > 255):
        raise ValueError(
            f"nucleus classes must lie in 1..255 (0 is background), got "
            f"{int(classes.min())}..{int(classes.max())}"
        )
    lut = np.zeros(len(classes) + 1, dtype=np.uint8)
    lut[1:] = classes
    return lut[instances]
