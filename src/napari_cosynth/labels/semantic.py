"""Semantic map: the class of each pixel, from an instance map and a class per instance."""

import numpy as np


def semantic_map(instances: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class id per pixel (0 = background) for instances numbered 1..N with ``classes[i-1]``."""
    lut = np.zeros(len(classes) + 1, dtype=np.uint8)
    lut[1:] = classes
    return lut[instances]
