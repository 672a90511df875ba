import sys
import types

import numpy as np
import pytest

from data_fixtures import (
    truncate,
    write_consep,
    write_endonuke,
    write_lizard,
    write_pannuke,
)
from napari_cosynth.data import (
    FORMATS,
    REGISTRY,
    TRAINABLE_FORMATS,
    UnknownFormatError,
    count_samples,
    dataset_format,
    open_dataset,
    read_dataset,
    write_sample,
)
from napari_cosynth.errors import CosynthError, DatasetError


def test_formats():
    assert FORMATS == ("consep", "pannuke", "lizard", "endonuke", "folder")
    assert TRAINABLE_FORMATS == ("consep", "pannuke", "lizard", "folder")  # EndoNuke: points only
    for name, entry in REGISTRY.items():
        assert entry.name == name == entry.reader.format
        assert dataset_format(name) is entry
    assert dataset_format("endonuke").staining == "IHC" and not dataset_format("endonuke").has_masks
    assert dataset_format("lizard").magnification == 20.0
    with pytest.raises(UnknownFormatError, match="unknown dataset format 'monuseg'"):
        dataset_format("monuseg")


def test_cli_choices_are_the_registry():
    import importlib

    for module in ("napari_cosynth.cli.main", "napari_cosynth.cli.segmenter"):
        assert importlib.import_module(module).FORMATS is FORMATS


def test_unknown_format_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownFormatError, match="unknown dataset format 'monuseg'; known formats: consep, "
                       "pannuke, lizard, endonuke, folder") as err:
        open_dataset(tmp_path, "monuseg")
    assert isinstance(err.value, CosynthError) and isinstance(err.value, ValueError)


def test_missing_path_and_bad_magnification(tmp_path):
    with pytest.raises(DatasetError, match="nowhere: no such file or folder"):
        read_dataset(tmp_path / "nowhere", "consep")  # fails on the call, not on the first next()
    with pytest.raises(CosynthError, match="magnification must be a positive number"):
        open_dataset(tmp_path, "consep", magnification=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="expected a folder"):
        open_dataset(tmp_path / "file", "lizard")


def test_every_format_counts_and_opens(tmp_path):
    write_consep(tmp_path / "consep", [[1], [2], [3]])
    write_pannuke(tmp_path / "pannuke", n=4)
    write_lizard(tmp_path / "lizard", n=2)
    write_endonuke(tmp_path / "endonuke")
    ds = open_dataset(tmp_path / "consep", "consep")
    for s in list(ds)[:2]:
        write_sample(s, tmp_path / "folder")
    expected = {"consep": 3, "pannuke": 4, "lizard": 2, "endonuke": 4, "folder": 2}
    for fmt, n in expected.items():
        assert count_samples(tmp_path / fmt, fmt) == n
        ds = open_dataset(tmp_path / fmt, fmt)
        assert len(ds) == n == len(ds.names) == len(set(ds.names))
        assert ds[n - 1].name == ds.names[n - 1]
        # What the registry entry says of a format holds for the samples its reader returns.
        entry, sample = dataset_format(fmt), ds[0]
        assert sample.has_masks == entry.has_masks
        if entry.vocabulary is not None:
            assert sample.vocabulary == entry.vocabulary and sample.tissue in entry.tissues
        if fmt != "endonuke":  # EndoNuke's is a fallback: most samples take it from their width
            assert sample.magnification == entry.magnification or entry.magnification is None


def test_reading_is_lazy(tmp_path):
    write_consep(tmp_path, [[1], [2]])
    truncate(tmp_path / "Images" / "patch_1.png")
    samples = read_dataset(tmp_path, "consep")
    assert next(samples).name == "patch_0"  # the broken second image is not touched yet
    with pytest.raises(DatasetError, match="patch_1.png"):
        next(samples)


@pytest.fixture
def fake_resampler(monkeypatch):
    """Stand-in for labels.resample, recording calls (the real one is tested in its own module)."""
    calls = []

    def resample_sample(sample, magnification):
        calls.append((sample.name, sample.magnification, magnification))
        return sample.with_(magnification=magnification)

    module = types.ModuleType("napari_cosynth.labels.resample")
    module.resample_sample = resample_sample
    monkeypatch.setitem(sys.modules, "napari_cosynth.labels.resample", module)
    return calls


def test_resamples_only_when_magnification_differs(tmp_path, fake_resampler):
    write_consep(tmp_path, [[1], [2]])
    assert [s.magnification for s in read_dataset(tmp_path, "consep", magnification=40)] == [40.0, 40.0]
    assert fake_resampler == []
    ds = open_dataset(tmp_path, "consep", magnification=20)
    assert ds[1].magnification == 20.0
    assert fake_resampler == [("patch_1", 40.0, 20.0)]
    assert np.all([s.magnification == 20.0 for s in read_dataset(tmp_path, "consep", magnification=20)])


def test_real_resampler_halves_a_40x_patch(tmp_path):
    write_consep(tmp_path, [[1, 2, 3, 4]], size=32)
    s = open_dataset(tmp_path, "consep", magnification=20)[0]
    assert s.image.shape == (16, 16, 3) and s.instances.shape == (16, 16)
    assert s.magnification == 20.0 and s.n_nuclei == int(s.instances.max())
