"""Importing diffusers and open_clip with Python's cyclic garbage collector paused.

Their imports build a few million long-lived objects (the classes, functions and dicts of some 3,000
modules: torch._dynamo, triton, sympy, timm and scipy.stats among them). The collector runs every 700
new objects and now and then walks the whole heap again, so while they import it spends about a
quarter of their import time finding nothing to free (1.0 s of 4.0 s on the 2-core development VM;
docs/benchmarks.md, "Start-up"). Module-level objects are not garbage, so the collector is paused
for the import. Afterwards the objects are handed to the oldest generation (``gc.freeze()`` then
``gc.unfreeze()``, which puts the frozen objects back into the oldest generation), where they would
have ended up anyway; left in the youngest, the first collections after the import would walk all of
them once more (0.6 s). Nothing stays frozen, so a long-lived process (napari) collects as before.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic garbage collector in this block (process-wide; reference counting goes on).

    Only the block that found the collector on turns it on again (nested or concurrent uses are
    safe), and only then, and when no one else has frozen objects, moves the objects alive to the
    oldest generation.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
