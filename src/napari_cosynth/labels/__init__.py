"""The label toolkit: numpy, scipy and scikit-image only (no torch, Qt or napari).

Turns annotations into the model's targets (semantic map, point map, distance map) and generated maps
back into instances.
"""
