"""cosynth evaluate alignment: the report's rows, the Dice gap, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_cosynth.data.folder import write_sample
from napari_cosynth.errors import DatasetError
from napari_cosynth.evaluate.alignment import ROW_KEYS, alignment_report
from napari_cosynth.segmenter import SegmenterConfig, train_segmenter
from segmenter_fixtures import disc_sample, write_disc_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    real = write_disc_dataset(root / "real", seeds=(0, 1))
    generated = write_disc_dataset(root / "generated", seeds=(10, 11, 12))
    config = SegmenterConfig.from_yaml(REPO / "configs" / "segmenter-tiny.yaml")
    config = config.with_(steps=10, checkpoint_every=10)
    gen = train_segmenter(config, real, "folder", root / "run")
    for _ in gen:
        pass
    return root, real, generated


def test_report_has_both_rows_and_the_gap(setup):
    root, real, generated = setup
    report = alignment_report(root / "run", generated, real, "folder")
    assert report["n_generated"] == 3 and report["n_real"] == 2 and report["magnification"] == 20.0
    for row in ("generated", "real"):
        assert set(report["table"][row]) == set(ROW_KEYS)
        assert 0.0 <= report["table"][row]["dice"] <= 1.0
    assert report["dice_gap"] == pytest.approx(report["real"]["dice"] - report["generated"]["dice"])
    assert "f1" in report["generated"] and report["segmenter"].endswith("step-0000010")


def test_same_data_on_both_sides_gives_no_gap(setup):
    root, real, _ = setup
    report = alignment_report(root / "run", real, real, "folder")
    assert report["dice_gap"] == 0.0
    assert report["table"]["generated"] == report["table"]["real"]


def test_generated_pairs_of_another_vocabulary_are_refused(setup, tmp_path):
    from napari_cosynth.vocabularies import PANNUKE

    root, real, _ = setup
    write_sample(disc_sample(4).with_(vocabulary=PANNUKE), tmp_path / "other")
    with pytest.raises(DatasetError, match="segmenter predicts"):
        alignment_report(root / "run", tmp_path / "other", real, "folder")


def test_cli_alignment_json(setup, capsys):
    from napari_cosynth.cli.main import main

    root, real, generated = setup
    assert main(["evaluate", "alignment", "--segmenter", str(root / "run"), "--generated", str(generated),
                 "--real-test", str(real), "--real-format", "folder", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["table"]) == {"generated", "real"} and "dice_gap" in report
    assert main(["evaluate", "alignment", "--segmenter", str(root / "run"), "--generated", str(generated),
                 "--real-test", str(real), "--real-format", "folder"]) == 0
    text = capsys.readouterr().out
    assert "dice_gap" in text and "generated:" in text
