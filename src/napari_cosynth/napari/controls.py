"""The widget's controls, by their stable names (``docs/napari.md`` documents each).

Kept apart from the behaviour in :mod:`.widget` so the names, defaults and ranges that scripts and
tests rely on are listed in one place, next to how the controls become the pipeline's arguments (one
:class:`~napari_cosynth.engine.pipeline.settings.SamplerSettings`, the same for a new run and a
re-synthesis, and the base seed).
"""

from __future__ import annotations

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    TextEdit,
)
from qtpy.QtWidgets import QComboBox, QSizePolicy

from ..engine.device import DEVICE_CHOICES
from ..engine.diffusion.sampler_names import DEFAULT_SAMPLER, SAMPLERS, default_steps
from ..engine.pipeline.settings import SamplerSettings
from ..errors import CosynthError
from ..limits import check_seed
from .models import DEFAULT_MODEL

REPLACE, ADD = "replace previous run", "add new layers"
RANDOM_SEED = "random"
N_PREVIEWS = 10  # live previews per run


# The dock must leave napari's canvas room on a laptop screen: the widget never grows past this,
# long state lines wrap, and long layer or choice names are elided instead of widening it.
MAX_WIDTH = 350


def _info(name: str) -> Label:
    """A read-only line of the widget's state, shown without a caption; long text wraps."""
    label = Label(name=name)
    label.label = ""  # set after construction: the constructor treats "" as "caption from name"
    label.native.setWordWrap(True)
    # magicgui fixes a label's size at its text's: let it take the row's width and wrap only there
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


def _narrow(combo: ComboBox) -> ComboBox:
    """A choice box whose width does not follow its longest choice (a layer name can be long)."""
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(10)
    return combo


def build_controls(points_choices) -> Container:
    """All controls in display order; ``*_info`` and ``status`` labels show what the widget knows.

    Parameters
    ----------
    points_choices : callable
        Returns the (name, layer) choices of ``points_layer``.
    """
    prompt = TextEdit(name="prompt")
    prompt.native.setMaximumHeight(90)
    # Scrollable: on a low laptop screen the controls scroll instead of stretching napari's window.
    return Container(scrollable=True, widgets=[
        _narrow(ComboBox(name="points_layer", label="layout", choices=points_choices)),
        PushButton(name="new_points_layer", text="new points layer"),
        _narrow(ComboBox(name="point_class", label="class", choices=[])),
        _info("layout_info"),
        _narrow(ComboBox(name="tissue", choices=[])),
        prompt,
        _info("prompt_info"),
        FileEdit(name="model", mode="d", value=DEFAULT_MODEL),
        _info("model_info"),
        ComboBox(name="device", choices=list(DEVICE_CHOICES), value="auto"),
        _info("device_info"),
        ComboBox(name="sampler", choices=list(SAMPLERS), value=DEFAULT_SAMPLER),
        SpinBox(name="steps", value=default_steps(DEFAULT_SAMPLER), min=1, max=1000),
        FloatSpinBox(name="guidance", value=2.0, min=1.0, max=20.0, step=0.5),
        LineEdit(name="seed", value=RANDOM_SEED),
        _info("seed_info"),
        SpinBox(name="height", value=128, min=8, max=4096, step=8),
        SpinBox(name="width", value=128, min=8, max=4096, step=8),
        _narrow(ComboBox(name="new_run", label="new run", choices=[REPLACE, ADD], value=REPLACE)),
        PushButton(name="generate", text="generate"),
        PushButton(name="cancel", text="cancel", enabled=False),
        _info("status"),
        PushButton(name="recompute_instances", text="recompute instances"),
        PushButton(name="resynthesize", text="re-synthesise image from labels"),
        FileEdit(name="export_dir", label="export to", mode="d", value=""),
        CheckBox(name="hovernet", text="also HoVer-Net .npy", value=False),
        PushButton(name="export", text="export pair"),
        _info("export_info"),
    ])


def parse_seed(value) -> int | None:
    """The ``seed`` control's text as a seed; None for a random one (raises CosynthError)."""
    text = str(value).strip().lower()
    if text in ("", RANDOM_SEED):
        return None
    try:
        seed = int(text)
    except ValueError:
        raise CosynthError(f"seed must be a whole number or '{RANDOM_SEED}', got {text!r}") from None
    return check_seed(seed)


def sampler_settings(controls: Container) -> SamplerSettings:
    """The ``sampler``, ``steps`` and ``guidance`` controls as the pipeline's checked settings."""
    sampler = controls["sampler"].value
    steps = None if sampler == "reference" else int(controls["steps"].value)  # the reference takes all T
    return SamplerSettings(sampler=sampler, steps=steps, guidance=float(controls["guidance"].value))


def preview_every(controls: Container) -> int:
    """Steps between two live previews: about :data:`N_PREVIEWS` per run."""
    return max(1, int(controls["steps"].value) // N_PREVIEWS)
