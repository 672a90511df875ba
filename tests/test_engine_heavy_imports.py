"""engine/heavy_imports.py: the collector is paused inside the block and left as it was found after it."""

from __future__ import annotations

import gc

import pytest

from napari_cosynth.engine.heavy_imports import collector_paused


def test_the_collector_is_off_inside_and_on_again_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: the inner block must not turn it on early
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # nothing is left frozen


def test_a_collector_someone_else_turned_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_after_an_error():
    with pytest.raises(ImportError), collector_paused():
        import napari_cosynth_no_such_module  # noqa: F401
    assert gc.isenabled()


def test_objects_frozen_by_someone_else_stay_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
