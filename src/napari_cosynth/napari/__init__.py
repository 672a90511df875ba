"""The napari layer of the project: widget, readers, writers and sample data.

Thin by design: everything here converts between napari layers and the core's
:class:`~napari_cosynth.sample.Sample`, or drives the core's generators from Qt.
"""
