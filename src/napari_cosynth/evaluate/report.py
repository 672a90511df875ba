"""Evaluation reports on disk: ``report.json`` (the whole result) and ``report.md`` (a summary).

The Markdown summary is generated from the same dict as the JSON, so every figure in it is one the
measurement computed: nested scalar values become rows of a table (``detection.f1.epithelial``),
lists of per-sample rows become a second table, and PNGs written beside the report are embedded.
Both files are written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from ..atomic import write_text

__all__ = ["flatten", "json_default", "markdown", "write_report"]


def json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} in a report")


def flatten(report: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, scalar) for every scalar in nested dicts; lists of dicts are left out."""
    rows = []
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += flatten(value, name + ".")
        elif isinstance(value, list):
            if all(not isinstance(v, (Mapping, list)) for v in value):
                rows.append((name, ", ".join(_fmt(v) for v in value)))
        else:
            rows.append((name, value))
    return rows


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: Mapping, title: str, images: Mapping[str, str] | None = None) -> str:
    """The Markdown summary of ``report`` (see the module docstring)."""
    lines = [f"# {title}", "", "| figure | value |", "| --- | --- |"]
    notes = report.get("notes") or []
    for key, value in flatten({k: v for k, v in report.items() if k != "notes"}):
        lines.append(f"| {key} | {_fmt(value)} |")
    for key, value in report.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(c for row in value for c in row))
            lines += ["", f"## {key}", "", "| " + " | ".join(columns) + " |",
                      "|" + " --- |" * len(columns)]
            for row in value:
                lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    for caption, path in (images or {}).items():
        lines += ["", f"## {caption}", "", f"![{caption}]({path})"]
    return "\n".join(lines) + "\n"


def write_report(report: Mapping, out, *, title: str, images: Mapping[str, str] | None = None
                 ) -> tuple[Path, Path]:
    """Write ``out/report.json`` and ``out/report.md``; return their paths.

    Parameters
    ----------
    report : dict
        JSON-serialisable result (numpy scalars and arrays are converted).
    out : path-like
        Folder, created if missing.
    title : str
        Heading of the Markdown summary.
    images : dict, optional
        Caption -> PNG path relative to ``out``, embedded in the Markdown.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    write_text(json_path, json.dumps(report, indent=2, default=json_default) + "\n")
    write_text(md_path, markdown(report, title, images))
    return json_path, md_path
