"""Prompt templates: exact wording, seeded shuffling, the structured form, PanNuke tissues."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest

from napari_cosynth.errors import ConfigError
from napari_cosynth.prompts import (
    PROMPT_STYLES,
    paper_prompt,
    prompt_for_points,
    structured_prompt,
)
from napari_cosynth.sample import PointTable
from napari_cosynth.vocabularies import CONSEP, ENDONUKE, PANNUKE_TISSUES

HEAD = "high quality histopathology colon tissue image"


def test_paper_prompt_without_nuclei():
    assert paper_prompt("colon", [], rng=0) == f"{HEAD} with no nucleus"


def test_paper_prompt_one_class():
    assert paper_prompt("colon", ["epithelial"], rng=0) == (
        f"{HEAD} including nuclei types of epithelial"
    )


def test_paper_prompt_two_classes_joined_by_and():
    got = paper_prompt("colon", ["epithelial", "inflammatory"], rng=0)
    assert got in {
        f"{HEAD} including nuclei types of epithelial and inflammatory",
        f"{HEAD} including nuclei types of inflammatory and epithelial",
    }


def test_paper_prompt_three_classes_serial_comma():
    names = ["other", "epithelial", "inflammatory"]
    allowed = {
        f"{HEAD} including nuclei types of {a}, {b}, and {c}" for a, b, c in permutations(names)
    }
    seen = {paper_prompt("colon", names, rng=seed) for seed in range(40)}
    assert seen <= allowed
    assert len(seen) > 1  # the order really is shuffled


def test_shuffle_is_reproducible_with_a_seed_and_varies_across_seeds():
    names = ["other", "inflammatory", "epithelial", "spindle-shaped"]
    assert paper_prompt("colon", names, rng=7) == paper_prompt("colon", names, rng=7)
    by_seed = {paper_prompt("colon", names, rng=seed) for seed in range(20)}
    assert len(by_seed) >= 5
    # A Generator is used as given, so successive prompts draw successive orders.
    gen_a, gen_b = np.random.default_rng(3), np.random.default_rng(3)
    first = [paper_prompt("colon", names, rng=gen_a) for _ in range(3)]
    assert first == [paper_prompt("colon", names, rng=gen_b) for _ in range(3)]


def test_duplicate_class_names_are_dropped():
    assert paper_prompt("colon", ["epithelial", "epithelial"]) == (
        f"{HEAD} including nuclei types of epithelial"
    )


def test_structured_prompt():
    got = structured_prompt("H&E", "colon", ["inflammatory", "epithelial"], rng=1)
    assert got in {"0:H&E 1:colon 2:inflammatory, epithelial",
                   "0:H&E 1:colon 2:epithelial, inflammatory"}
    assert structured_prompt("IHC", "endometrium", [], rng=0) == "0:IHC 1:endometrium 2:none"
    assert structured_prompt("H&E", "HeadNeck", ["dead"]) == "0:H&E 1:head and neck 2:dead"


@pytest.mark.parametrize("tissue", PANNUKE_TISSUES)
def test_pannuke_tissue_names_read_as_words(tissue):
    prompt = paper_prompt(tissue, [], rng=0)
    shown = prompt.removeprefix("high quality histopathology ").removesuffix(
        " tissue image with no nucleus"
    )
    assert shown == shown.lower() and "_" not in shown and "-" not in shown
    letters = tissue.lower().replace("_", "").replace("-", "")
    assert shown.replace(" and ", "").replace(" ", "") == letters


def test_pannuke_special_tissue_names():
    assert paper_prompt("HeadNeck", []) == (
        "high quality histopathology head and neck tissue image with no nucleus"
    )
    assert paper_prompt("Adrenal_gland", [], rng=0).startswith(
        "high quality histopathology adrenal gland tissue"
    )
    assert paper_prompt("Bile-duct", [], rng=0).startswith("high quality histopathology bile duct")


def test_prompt_for_points_uses_the_classes_present():
    points = PointTable([[1, 1], [2, 2], [3, 3]], [2, 2, 3])  # inflammatory x2, epithelial
    got = prompt_for_points(points, CONSEP, "colon", rng=0)
    assert got in {f"{HEAD} including nuclei types of inflammatory and epithelial",
                   f"{HEAD} including nuclei types of epithelial and inflammatory"}
    assert prompt_for_points(PointTable.empty(), CONSEP, "colon") == f"{HEAD} with no nucleus"
    endo = PointTable([[5, 5]], [1])
    assert prompt_for_points(endo, ENDONUKE, "endometrium", style="structured",
                             staining="IHC") == "0:IHC 1:endometrium 2:stroma"
    # Same seed, same prompt, whichever style.
    for style in PROMPT_STYLES:
        assert prompt_for_points(points, CONSEP, "colon", style=style, rng=5) == prompt_for_points(
            points, CONSEP, "colon", style=style, rng=5
        )


def test_bad_prompt_inputs_raise_clear_errors():
    with pytest.raises(ConfigError, match="unknown prompt style 'fancy'"):
        prompt_for_points(PointTable.empty(), CONSEP, "colon", style="fancy")
    with pytest.raises(ConfigError, match="tissue"):
        paper_prompt("  ", ["epithelial"])
    with pytest.raises(ConfigError, match="sequence of names"):
        paper_prompt("colon", "epithelial")
    with pytest.raises(ConfigError, match="non-empty"):
        paper_prompt("colon", ["epithelial", ""])
    with pytest.raises(ConfigError, match="staining"):
        structured_prompt("", "colon", [])
    with pytest.raises(ValueError, match="class id 9"):
        prompt_for_points(PointTable([[0, 0]], [9]), CONSEP, "colon")
