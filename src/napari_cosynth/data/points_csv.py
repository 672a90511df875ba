"""Point tables as CSV files: ``x,y,class`` with the class as a name or an id.

The one CSV layout for points: ``cosynth generate --points``, layout models and the folder format's
``points.csv`` all read and write it. Files we write also carry a ``class_id`` column; on reading,
``class`` (name or id) wins and ``class_id`` alone is accepted.

This is how layouts travel between the CLI (``cosynth generate --points``), layout models and other
tools. Coordinates are pixels, x = column, y = row, origin at the top-left pixel centre.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..errors import DatasetError
from ..sample import PointTable, Vocabulary


def read_points_csv(path, vocabulary: Vocabulary) -> PointTable:
    """Read ``x,y,class`` rows; a class is a name of ``vocabulary`` or its integer id."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(path, f"cannot read the point table ({error.strerror or error})") from None
    try:
        # utf-8-sig: spreadsheet programs start a "CSV UTF-8" file with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(
            path, f"the point table is not UTF-8 text (byte {error.start}); save it as CSV UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = set(reader.fieldnames or ())
        # The reader's own line count: blank lines are skipped, so a row's index is not its line.
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        # DictReader counts a line once it is parsed; its csv.reader counts the failing one too.
        raise DatasetError(path, f"line {reader.reader.line_num}: not a CSV table ({error})") from None
    missing = {"x", "y"} - header
    if "class" not in header and "class_id" not in header:
        missing.add("class")
    if missing:
        raise DatasetError(path, f"the header must name the columns x,y,class; missing {sorted(missing)}")
    column = "class" if "class" in header else "class_id"
    xy = np.zeros((len(rows), 2))
    classes = np.zeros(len(rows), dtype=np.int64)
    for i, (line, row) in enumerate(rows):
        try:
            xy[i] = float(row["x"]), float(row["y"])
        except (TypeError, ValueError):
            raise DatasetError(path, f"line {line}: x and y must be numbers, got {row['x']!r}, {row['y']!r}") from None
        if not np.isfinite(xy[i]).all():
            raise DatasetError(
                path, f"line {line}: x and y must be finite numbers, got {row['x']!r}, {row['y']!r}"
            )
        classes[i] = _class_id(row[column], vocabulary, path, line)
    return PointTable(xy, classes)


def _class_id(value, vocabulary: Vocabulary, path, line: int) -> int:
    value = (value or "").strip()
    if value.lstrip("-").isdigit():
        cid = int(value)
        if 1 <= cid < vocabulary.n_classes:
            return cid
    elif value in vocabulary.names[1:]:
        return vocabulary.id_of(value)
    raise DatasetError(
        path,
        f"line {line}: unknown class {value!r}; use one of {', '.join(vocabulary.nucleus_classes)} "
        f"or an id 1..{vocabulary.n_classes - 1}",
    )


def points_to_csv(points: PointTable, vocabulary: Vocabulary) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["x", "y", "class", "class_id"])
    for (x, y), c in zip(points.xy, points.classes):
        writer.writerow([repr(float(x)), repr(float(y)), vocabulary.names[c], int(c)])
    return out.getvalue()


def write_points_csv(points: PointTable, vocabulary: Vocabulary, path) -> None:
    write_text(path, points_to_csv(points, vocabulary))
