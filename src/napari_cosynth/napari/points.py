"""Points layers with a class per point: the layout a user draws to condition generation.

A layout lives in a napari Points layer whose ``class`` feature is a pandas categorical over the
model's nucleus classes, so every class is listed even before a point of it exists, and whose
``feature_defaults`` give each new click the class picked in the widget. Faces are coloured with the
same class colours as the semantic Labels layers (:func:`napari_cosynth.vocabularies.class_colors`).
These helpers convert such a layer to the core's :class:`~napari_cosynth.sample.PointTable` and back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CosynthError
from ..sample import PointTable, Vocabulary
from ..vocabularies import class_colors

CLASS_FEATURE = "class"
POINT_SIZE = 5


def class_color_cycle(vocabulary: Vocabulary) -> dict[str, tuple[float, ...]]:
    """Class name -> RGBA in 0..1, the colours of the semantic labels (background left out)."""
    colors = class_colors(vocabulary.n_classes)
    return {name: tuple(c / 255 for c in colors[i]) for i, name in enumerate(vocabulary.names) if i}


def class_features(vocabulary: Vocabulary, names) -> pd.DataFrame:
    """A features table with one categorical ``class`` column over the vocabulary's nucleus classes."""
    return pd.DataFrame(
        {CLASS_FEATURE: pd.Categorical(list(names), categories=list(vocabulary.nucleus_classes))}
    )


def points_layer_kwargs(
    vocabulary: Vocabulary, default_class: str | None = None, name: str = "layout"
) -> dict:
    """Keyword arguments of ``viewer.add_points`` for an empty layout layer.

    Parameters
    ----------
    vocabulary : Vocabulary
        The model's classes; they become the categories of the ``class`` feature.
    default_class : str, optional
        Class of the next point added (default: the first nucleus class).
    name : str
        Layer name.

    Returns
    -------
    dict
        ``name``, ``features``, ``feature_defaults``, ``face_color`` (by class), ``size`` ...
    """
    default_class = default_class or vocabulary.nucleus_classes[0]
    vocabulary.id_of(default_class)  # raises for an unknown class
    return {
        "name": name,
        "ndim": 2,
        "features": class_features(vocabulary, []),
        "feature_defaults": {CLASS_FEATURE: default_class},
        "face_color": CLASS_FEATURE,
        "face_color_cycle": class_color_cycle(vocabulary),
        "border_color": "white",
        "border_width": 0.1,
        "size": POINT_SIZE,
        "metadata": {"cosynth": {"role": "layout", "vocabulary": list(vocabulary.names)}},
    }


def points_layer_data(points: PointTable, vocabulary: Vocabulary, name: str = "layout") -> tuple:
    """A layer data tuple ``(data, kwargs, "points")`` showing ``points`` as an editable layout."""
    kwargs = points_layer_kwargs(vocabulary, name=name)
    kwargs["features"] = class_features(vocabulary, [vocabulary.names[c] for c in points.classes])
    return points.xy[:, ::-1].copy(), kwargs, "points"


def set_default_class(layer, class_name: str) -> None:
    """Make ``class_name`` the class of the next point clicked into ``layer``.

    In napari's select mode the selected points take the class too, so a user can re-class points by
    selecting them and picking a class. In add mode they do not: the point just clicked is selected
    there, and picking the class for the next click must not change it.
    """
    defaults = dict(layer.feature_defaults.iloc[0]) if len(layer.feature_defaults.columns) else {}
    defaults[CLASS_FEATURE] = class_name
    # Reassigning (rather than editing in place) is what makes napari refresh the defaults.
    layer.feature_defaults = defaults
    selected = sorted(layer.selected_data)
    if selected and str(layer.mode) == "select" and CLASS_FEATURE in layer.features:
        features = layer.features.copy()
        features.loc[selected, CLASS_FEATURE] = class_name
        layer.features = features
        layer.refresh_colors(update_color_mapping=False)


def points_from_layer(layer, vocabulary: Vocabulary) -> PointTable:
    """The layout of a Points layer as a PointTable (x = column, y = row, in the layer's data pixels).

    Parameters
    ----------
    layer : napari.layers.Points
        A 2-D points layer with a ``class`` feature naming each point's class.
    vocabulary : Vocabulary
        The model's classes.

    Returns
    -------
    PointTable

    Raises
    ------
    CosynthError
        If the layer is not 2-D, has no ``class`` feature, or names a class the model does not know.
    """
    data = np.asarray(layer.data, dtype=np.float64)
    if data.ndim != 2 or (len(data) and data.shape[1] != 2):
        raise CosynthError(
            f"points layer {layer.name!r} is {layer.ndim}-D; draw the layout in a 2-D points layer "
            "(use 'new points layer')"
        )
    if len(data) == 0:
        return PointTable.empty()
    if CLASS_FEATURE not in layer.features:
        raise CosynthError(
            f"points layer {layer.name!r} has no '{CLASS_FEATURE}' feature, so its points have no "
            "class; draw the layout in a layer made with 'new points layer'"
        )
    names = layer.features[CLASS_FEATURE].astype(object).to_numpy()
    known = set(vocabulary.nucleus_classes)
    unknown = sorted({str(n) for n in names if n not in known})
    if unknown:
        raise CosynthError(
            f"points layer {layer.name!r} has points of class {', '.join(unknown)}, which the model "
            f"does not know; its classes are {', '.join(vocabulary.nucleus_classes)}"
        )
    classes = np.array([vocabulary.id_of(n) for n in names], dtype=np.int64)
    return PointTable(data[:, ::-1], classes)


def describe_layout(points: PointTable, vocabulary: Vocabulary, shape: tuple[int, int]) -> str:
    """One line for the widget: counts per class and how many points fall off the canvas."""
    if len(points) == 0:
        return "no points yet: click into the layout layer to add nuclei"
    counts = ", ".join(f"{n} {name}" for name, n in points.counts(vocabulary).items() if n)
    line = f"{len(points)} points ({counts})"
    outside = int(points.outside(shape).sum())
    if outside:
        line += f"; {outside} outside the {shape[0]}x{shape[1]} canvas"
    return line
