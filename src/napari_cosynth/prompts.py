"""Text prompts that condition generation: the paper's sentence and the poster's structured form.

One module builds every prompt, for training (classes present in a label) and for sampling
(classes present in a point table), so the two can never drift apart: the text encoder only
understands the wording it was trained on. The paper's template follows CoSyn's dataset code
("high quality histopathology {tissue} tissue image including nuclei types of {classes}", class
list shuffled, "A and B" / "A, B, and C", "... with no nucleus" when empty); the structured form
is the poster's "0:[staining method] 1:[tissue type] 2:[cell types]". No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ConfigError
from .sample import PointTable, Vocabulary
from .vocabularies import tissue_display_name

__all__ = ["PROMPT_STYLES", "paper_prompt", "prompt_for_points", "structured_prompt"]

PROMPT_STYLES = ("paper", "structured")

_PAPER_HEAD = "high quality histopathology {tissue} tissue image"


def _tissue(tissue: str) -> str:
    if not isinstance(tissue, str) or not tissue.strip():
        raise ConfigError(f"a prompt needs a tissue name (e.g. 'colon'), got {tissue!r}")
    return tissue_display_name(tissue.strip())


def _shuffled(class_names: Sequence[str], rng) -> list[str]:
    """Unique names in a random order drawn from ``rng`` (order of first appearance, permuted)."""
    if isinstance(class_names, str):
        # A bare string would be split into letters; almost certainly a caller's slip.
        raise ConfigError(
            f"class_names must be a sequence of names, got the string {class_names!r}"
        )
    names: list[str] = []
    for name in class_names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"class names must be non-empty strings, got {name!r}")
        if name.strip() not in names:
            names.append(name.strip())
    if len(names) < 2:
        return names
    order = np.random.default_rng(rng).permutation(len(names))
    return [names[i] for i in order]


def _english_list(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def paper_prompt(
    tissue: str,
    class_names: Sequence[str],
    rng: np.random.Generator | int | None = None,
) -> str:
    """The paper's prompt, with the class list in a random order.

    Parameters
    ----------
    tissue : str
        Tissue name, as a dataset spells it ('colon', 'Adrenal_gland', 'HeadNeck'); shown through
        :func:`napari_cosynth.vocabularies.tissue_display_name`.
    class_names : sequence of str
        Nucleus classes present; duplicates are dropped. Empty for an image without nuclei.
    rng : numpy Generator, int seed or None
        Source of the shuffle. The same seed gives the same order; None draws fresh entropy
        (the training-time behaviour).

    Returns
    -------
    str
        e.g. ``"high quality histopathology colon tissue image including nuclei types of
        epithelial, inflammatory, and other"`` or ``"high quality histopathology colon tissue
        image with no nucleus"``.
    """
    head = _PAPER_HEAD.format(tissue=_tissue(tissue))
    names = _shuffled(class_names, rng)
    if not names:
        return f"{head} with no nucleus"
    return f"{head} including nuclei types of {_english_list(names)}"


def structured_prompt(
    staining: str,
    tissue: str,
    class_names: Sequence[str],
    rng: np.random.Generator | int | None = None,
) -> str:
    """The poster's multi-dataset prompt: ``"0:{staining} 1:{tissue} 2:{classes}"``.

    Fields are separated by one space, each key is its index and a colon with no space after it,
    classes are joined by ", " (no "and", since this form is a field list, not a sentence) and
    shuffled as in :func:`paper_prompt`; no classes gives ``2:none``.

    Parameters
    ----------
    staining : str
        Staining method, e.g. 'H&E' or 'IHC'.
    tissue : str
        Tissue name (shown through ``tissue_display_name``).
    class_names : sequence of str
        Nucleus classes present.
    rng : numpy Generator, int seed or None
        Source of the shuffle.

    Returns
    -------
    str
        e.g. ``"0:H&E 1:colon 2:inflammatory, epithelial"``.
    """
    if not isinstance(staining, str) or not staining.strip():
        raise ConfigError(
            f"a structured prompt needs a staining method (e.g. 'H&E'), got {staining!r}"
        )
    names = _shuffled(class_names, rng)
    cells = ", ".join(names) if names else "none"
    return f"0:{staining.strip()} 1:{_tissue(tissue)} 2:{cells}"


def prompt_for_points(
    points: PointTable,
    vocabulary: Vocabulary,
    tissue: str,
    style: str = "paper",
    staining: str = "H&E",
    rng: np.random.Generator | int | None = None,
) -> str:
    """The prompt for the classes present in a point table.

    Parameters
    ----------
    points : PointTable
        Any point table (an annotation's centroids, a user's edited points layer, a layout
        sampled by a model); only which classes occur matters.
    vocabulary : Vocabulary
        Names the class ids of ``points``.
    tissue : str
        Tissue name.
    style : {"paper", "structured"}
        Which template (see :data:`PROMPT_STYLES`).
    staining : str
        Staining method, used by the structured style only.
    rng : numpy Generator, int seed or None
        Source of the class-order shuffle.

    Returns
    -------
    str
    """
    if style not in PROMPT_STYLES:
        raise ConfigError(
            f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}"
        )
    ids = np.unique(points.classes)
    vocabulary.check_ids(ids, "point table classes")
    names = [vocabulary.names[i] for i in ids]
    if style == "paper":
        return paper_prompt(tissue, names, rng)
    return structured_prompt(staining, tissue, names, rng)
