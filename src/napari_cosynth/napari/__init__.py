"""The napari layer of the project: widget, readers, writers and sample data.

Thin by design: everything here converts between napari layers and the core's
:class:`~napari_cosynth.sample.Sample`, or drives the core's generators from Qt.
"""

from ._triton_guard import keep_triton_out

# Runs when napari first touches the plugin (widget, sample data, reader, writer), before any model
# is loaded; it imports nothing heavy.
keep_triton_out()
