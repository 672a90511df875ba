"""Adherence measurement and report writing, with the tiny random-weight checkpoint (3 sampler steps)."""

import json

import numpy as np
import pytest

from evaluate_fixtures import write_tiny_folder
from napari_cosynth.cli.main import main
from napari_cosynth.data.folder import list_pairs, write_sample
from napari_cosynth.data.registry import open_dataset
from napari_cosynth.engine.pipeline.settings import SamplerSettings
from napari_cosynth.errors import CosynthError
from napari_cosynth.evaluate.adherence import (
    AdherenceProgress,
    adherence_report,
    crop_to_multiple,
    score_centroids,
)
from napari_cosynth.evaluate.report import flatten, markdown, write_report
from napari_cosynth.progress import run_to_end
from napari_cosynth.sample import Sample
from napari_cosynth.seeds import pair_seed
from napari_cosynth.vocabularies import CONSEP, PANNUKE

TWO_STEPS, THREE_STEPS = SamplerSettings(steps=2), SamplerSettings(steps=3)


def _in_unit(value):
    return value is None or 0.0 <= value <= 1.0


@pytest.fixture
def data(tmp_path):
    # The third sample is 34x37: not a multiple of 4, so it must be cropped to 32x36.
    return write_tiny_folder(tmp_path / "data", shapes=[(32, 32), (32, 32), (34, 37)])


def test_report_is_complete_and_written(tiny_checkpoint, data, tmp_path):
    out = tmp_path / "out"
    run = adherence_report(tiny_checkpoint, data, "folder", settings=THREE_STEPS, seed=1, out=out)
    progress = []
    try:
        while True:
            progress.append(next(run))
    except StopIteration as stop:
        report = stop.value
    assert [p.step for p in progress] == [1, 2, 3]
    assert all(isinstance(p, AdherenceProgress) and p.total == 3 for p in progress)

    det = report["detection"]
    assert _in_unit(det["f_d"]) and _in_unit(det["acc"])
    assert set(det["f1"]) == set(CONSEP.nucleus_classes)
    assert all(_in_unit(v) for v in det["f1"].values())
    assert det["radius_px"] == 6.0  # 20x model
    assert report["fsd"] is not None and report["fsd"] >= 0
    # Real counts are the input point tables' classes; generated counts the drawn instances'.
    real = [s.point_table() for s in open_dataset(data, "folder")]
    n_real = sum(r["n_real"] for r in report["samples"])
    assert sum(report["counts"]["real"].values()) == n_real == det["tp"] + det["fn"]
    assert sum(report["counts"]["generated"].values()) == det["tp"] + det["fp"]
    assert report["samples"][2]["size"] == [32, 36]
    assert any("cropped from 34x37 to 32x36" in n for n in report["notes"])
    assert len(real) == 3 and report["n_samples"] == 3

    # Stored semantic maps give each nucleus one class; the raw output's mixtures are counted.
    pairs = [open_dataset(out / "pairs", "folder")[i] for i in range(3)]
    for pair in pairs:
        for label, cls in enumerate(pair.classes, start=1):
            assert set(np.unique(pair.semantic[pair.instances == label])) == {cls}
        assert not pair.semantic[pair.instances == 0].any()
    mixed = report["mixed_classes"]
    assert mixed["stored"] == 0 and mixed["nuclei"] == det["tp"] + det["fp"]
    assert 0 <= mixed["raw_model_output"] <= mixed["nuclei"]
    assert mixed["raw_model_output"] == sum(p.provenance["nuclei_with_mixed_classes"] for p in pairs)
    share = report["nuclei_pixel_share"]
    assert share["generated"] == pytest.approx(
        sum((p.semantic > 0).sum() for p in pairs) / sum(p.semantic.size for p in pairs))
    assert 0 < share["real"] < 1

    assert len(list_pairs(out / "pairs")) == 3
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["detection"]["f_d"] == pytest.approx(det["f_d"])
    md = (out / "report.md").read_text()
    assert f"| detection.tp | {det['tp']} |" in md and "![" in md and "(grid.png)" in md
    assert (out / "grid.png").is_file()


def test_same_seed_same_report_and_seeds_differ_per_sample(tiny_checkpoint, data):
    a = run_to_end(adherence_report(tiny_checkpoint, data, "folder", settings=TWO_STEPS, seed=5, limit=2))
    b = run_to_end(adherence_report(tiny_checkpoint, data, "folder", settings=TWO_STEPS, seed=5, limit=2))
    assert a["samples"] == b["samples"] and a["detection"] == b["detection"]
    assert a["n_samples"] == 2
    assert a["samples"][0]["seed"] == pair_seed(5, 0) != pair_seed(5, 1) == a["samples"][1]["seed"]


def test_real_points_against_themselves_score_perfectly(data):
    tables = [s.point_table() for s in open_dataset(data, "folder")]
    result = score_centroids(tables, tables, CONSEP, 20.0)
    assert result["f_d"] == 1.0 and result["acc"] == 1.0
    assert result["fp"] == result["fn"] == 0
    assert all(v == 1.0 for v in result["f1"].values())
    # A one-class swap lowers accuracy but not detection.
    swapped = [t.__class__(t.xy, np.where(t.classes == 1, 2, t.classes)) for t in tables]
    worse = score_centroids(tables, swapped, CONSEP, 20.0)
    assert worse["f_d"] == 1.0 and worse["acc"] < 1.0


def test_points_only_data_skips_fsd_and_says_so(tiny_checkpoint, tmp_path):
    data = write_tiny_folder(tmp_path / "pts", n=2, points_only=True)
    report = run_to_end(adherence_report(tiny_checkpoint, data, "folder", settings=TWO_STEPS))
    assert report["fsd"] is None
    assert any("FSD" in n and "points only" in n for n in report["notes"])
    assert _in_unit(report["detection"]["f_d"])


def test_crop_to_multiple_renumbers_instances(data):
    sample = open_dataset(data, "folder")[2]
    cropped, note = crop_to_multiple(sample, 4)
    assert cropped.shape == (32, 36) and "34x37" in note
    assert cropped.instances.max() == len(cropped.classes)
    # Every kept nucleus keeps its class.
    for new_id in range(1, len(cropped.classes) + 1):
        old = np.unique(sample.instances[:32, :36][cropped.instances == new_id])
        assert len(old) == 1 and sample.classes[old[0] - 1] == cropped.classes[new_id - 1]
    same, none = crop_to_multiple(open_dataset(data, "folder")[0], 4)
    assert none is None and same.shape == (32, 32)
    with pytest.raises(CosynthError, match="smaller than"):
        crop_to_multiple(sample, 64)


def test_wrong_vocabulary_and_bad_limit_are_refused(tiny_checkpoint, tmp_path):
    inst = np.zeros((32, 32), np.int32)
    inst[4:8, 4:8] = 1
    write_sample(Sample(np.zeros((32, 32, 3), np.uint8), inst, [1], PANNUKE, name="p"), tmp_path / "pn")
    with pytest.raises(CosynthError, match="not the model's"):
        run_to_end(adherence_report(tiny_checkpoint, tmp_path / "pn", "folder", settings=TWO_STEPS))
    with pytest.raises(CosynthError, match="limit"):
        run_to_end(adherence_report(tiny_checkpoint, tmp_path / "pn", "folder", limit=0))


def test_out_folder_with_pairs_is_not_mixed(tiny_checkpoint, data, tmp_path):
    out = tmp_path / "out"
    run_to_end(adherence_report(tiny_checkpoint, data, "folder", settings=TWO_STEPS, limit=1, out=out))
    with pytest.raises(CosynthError, match="already holds pairs"):
        run_to_end(adherence_report(tiny_checkpoint, data, "folder", settings=TWO_STEPS, limit=1, out=out))


def test_cli_adherence_json(tiny_checkpoint, data, capsys):
    code = main(["evaluate", "adherence", "--model", str(tiny_checkpoint), "--data", str(data),
                 "--format", "folder", "--steps", "2", "--limit", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["measurement"] == "adherence" and len(report["samples"]) == 2
    assert _in_unit(report["detection"]["f_d"])


def test_report_markdown_is_built_from_the_dict(tmp_path):
    report = {"a": {"b": 0.123456, "c": None}, "rows": [{"x": 1, "y": "p|q"}], "notes": ["n1"]}
    assert ("a.b", 0.123456) in flatten(report)
    md = markdown(report, "T", {"cap": "g.png"})
    assert "| a.b | 0.1235 |" in md and "| a.c | n/a |" in md
    assert "| 1 | p\\|q |" in md and "- n1" in md and "![cap](g.png)" in md
    j, m = write_report({"v": np.float64(0.5), "arr": np.arange(2)}, tmp_path / "r", title="T")
    assert json.loads(j.read_text()) == {"v": 0.5, "arr": [0, 1]}
    assert m.read_text().startswith("# T")
