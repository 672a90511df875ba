"""The plugin's non-widget parts: manifest, sample data, writer, export, layer conversions, messages.

These need napari importable but no viewer (except where a Points layer object is built).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

from data_fixtures import two_nuclei_pair
from napari_cosynth.data.folder import count_pairs, read_sample, write_sample
from napari_cosynth.errors import CosynthError
from napari_cosynth.napari import sample_data
from napari_cosynth.napari.export import export_pair
from napari_cosynth.napari.layers import sample_to_layers
from napari_cosynth.napari.points import points_from_layer, points_layer_data
from napari_cosynth.napari.reader import get_reader
from napari_cosynth.napari.worker import describe_error
from napari_cosynth.napari.writer import write_pair
from napari_cosynth.sample import PointTable, Sample
from napari_cosynth.vocabularies import CONSEP


def make_pair(name="pair") -> Sample:
    return two_nuclei_pair(name, {"seed": 5, "prompt": "a prompt", "model_id": "m", "version": "0.1.0"})


def test_manifest_lists_the_plugin_contributions():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-cosynth")
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == ["CoSynth"]
    assert {s.key for s in contributions.sample_data} == {"layout", "pair"}
    assert len(contributions.writers) == 1 and len(contributions.readers) == 1


def test_shipped_layout_is_a_realistic_colon_layout():
    points = sample_data.layout_points()
    counts = points.counts(CONSEP)
    assert 40 <= len(points) <= 70  # CoNSeP at 20x: about 42 nuclei per 128x128 patch
    assert counts["epithelial"] > 10 and counts["spindle-shaped"] > 5 and counts["inflammatory"] > 5
    assert not points.outside(sample_data.LAYOUT_SHAPE).any()
    d = np.hypot(*(points.xy[:, None, :] - points.xy[None, :, :]).transpose(2, 0, 1))
    assert d[np.triu_indices(len(points), 1)].min() >= 4.9  # hard-core spacing
    (data, kwargs, kind), = sample_data.layout_sample()
    assert kind == "points" and data.shape == (len(points), 2)
    assert list(kwargs["features"]["class"].cat.categories) == list(CONSEP.nucleus_classes)


def test_sample_pair_is_generated_from_the_layout(tiny_checkpoint, monkeypatch):
    from napari_cosynth.engine.networks import checkpoint

    monkeypatch.setattr(checkpoint, "resolve_model", lambda name: tiny_checkpoint)
    layers = sample_data.generated_pair_sample(steps=2)
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["points", "image", "labels", "image", "labels"]
    image = layers[1][0]
    assert image.shape == (*sample_data.LAYOUT_SHAPE, 3) and image.dtype == np.uint8
    assert layers[1][1]["metadata"]["cosynth"]["provenance"]["seed"] == sample_data.SAMPLE_SEED


def test_points_layer_round_trip_and_errors():
    from napari.layers import Points

    table = PointTable([[3.0, 4.0], [10.0, 2.5]], [2, 4])
    data, kwargs, _ = points_layer_data(table, CONSEP)
    layer = Points(data, **kwargs)
    back = points_from_layer(layer, CONSEP)
    np.testing.assert_array_equal(back.xy, table.xy)
    np.testing.assert_array_equal(back.classes, table.classes)
    plain = Points(data)
    with pytest.raises(CosynthError, match="no 'class' feature"):
        points_from_layer(plain, CONSEP)
    odd = Points(data, features={"class": ["epithelial", "mitotic"]})
    with pytest.raises(CosynthError, match="mitotic"):
        points_from_layer(odd, CONSEP)


def test_writer_writes_a_pair_that_reads_back_and_never_overwrites(tmp_path):
    pair = make_pair()
    tuples = sample_to_layers(pair, prefix="edited")  # image, semantic, distance, instances, points
    written = write_pair(str(tmp_path / "out" / "my-pair"), tuples)
    again = write_pair(str(tmp_path / "out" / "my-pair"), tuples)
    assert written != again and count_pairs(tmp_path / "out") == 2
    back = read_sample(written[0])
    np.testing.assert_array_equal(back.image, pair.image)
    np.testing.assert_array_equal(back.instances, pair.instances)
    np.testing.assert_array_equal(back.classes, pair.classes)
    np.testing.assert_array_equal(back.points.xy, pair.points.xy)
    assert back.provenance["seed"] == 5
    # the reader opens what the writer wrote, as the same layers
    layers = get_reader(written[0])(written[0])
    assert [kw["name"] for _, kw, _ in layers][:4] == [
        "my-pair image", "my-pair semantic", "my-pair distance", "my-pair instances"]
    with pytest.raises(CosynthError, match="RGB image"):
        write_pair(str(tmp_path / "x"), tuples[1:])


def test_export_with_hovernet_npy(tmp_path):
    pair = make_pair()
    write_sample(make_pair("earlier"), tmp_path)
    path, count = export_pair(pair, tmp_path, hovernet=True)
    assert count == 2 and path.name == "pair"
    patch = np.load(tmp_path / "hovernet" / "pair.npy")
    assert patch.shape == (24, 24, 5)
    np.testing.assert_array_equal(patch[..., :3], pair.image)
    np.testing.assert_array_equal(patch[..., 3], pair.instances)
    np.testing.assert_array_equal(patch[..., 4], pair.semantic_map())
    path2, count2 = export_pair(pair, tmp_path, hovernet=True)
    assert count2 == 3 and path2.name == "pair-001" and (tmp_path / "hovernet" / "pair-001.npy").is_file()


def test_error_messages_say_what_to_do():
    class OutOfMemoryError(RuntimeError):
        pass

    assert "smaller" in describe_error(OutOfMemoryError("CUDA out of memory. Tried to allocate"), "cuda")
    assert "choose device 'cpu'" in describe_error(RuntimeError("CUDA error: device-side assert"))
    assert describe_error(CosynthError("exactly this")) == "exactly this"
    assert "still usable" in describe_error(KeyError("x"))


def test_model_field_values_name_the_bundled_model_or_a_folder(tmp_path):
    from napari_cosynth.napari.models import model_path

    # what magicgui's file field hands over for an empty field and for a typed "default"
    for value in ("", ".", "default", Path.cwd() / "default", Path("default")):
        assert model_path(value) == "default"
    real = tmp_path / "default"
    real.mkdir()  # a checkpoint folder that happens to be called "default" stays a folder
    assert model_path(real) == str(real)
    assert model_path(tmp_path / "run") == str(tmp_path / "run")
