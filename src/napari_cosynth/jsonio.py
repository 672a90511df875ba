"""Reading the JSON files users hand over (meta.json, config.json, training states) without surprises.

``json.loads`` fails in several ways that are not ``JSONDecodeError``: text that is not UTF-8 raises
``UnicodeDecodeError``, and a document nested a few thousand levels deep raises ``RecursionError``
(and one nested just below the parser's limit makes the next recursive walk over it fail). Every
reader of the project's JSON files goes through :func:`read_json`, which turns each of these into one
``ValueError`` with a readable reason, so the caller can name the file and say what to do. (NaN
and infinity are read as Python reads them; the checks of what a file holds, such as the config's
finite-number check, refuse them where they do not belong.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "JSONFileError", "parse_json", "read_document", "read_json"]

# The deepest file the project writes (a training state: optimizer -> state -> param -> moments) is
# about a dozen levels deep.
MAX_DEPTH = 64


class JSONFileError(ValueError):
    """A JSON file that cannot be read as data (``str(error)`` says why, without the file name)."""


def parse_json(text: str) -> Any:
    """Parse ``text``; raise :class:`JSONFileError` for an invalid or over-deep document."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(f"not valid JSON ({err})") from None
    except RecursionError:
        raise JSONFileError(f"nested more than {MAX_DEPTH} levels deep") from None
    if _depth(data) > MAX_DEPTH:
        raise JSONFileError(f"nested more than {MAX_DEPTH} levels deep")
    return data


def read_json(path: str | Path) -> Any:
    """Read and parse a UTF-8 JSON file (a byte-order mark is accepted).

    Raises
    ------
    OSError
        The file cannot be read (missing, a folder, no permission).
    JSONFileError
        It is not UTF-8, not valid JSON, or is nested too deeply.
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise JSONFileError(f"not UTF-8 text (byte {err.start})") from None
    return parse_json(text)


def read_document(path: str | Path, *, format: str, what: str, version_key: str, version: int,
                  newer_only: bool = False) -> dict:
    """Read one of the project's own JSON documents (a model config, a segmenter description, a
    training state): a dict whose ``"format"`` is ``format`` and whose ``version_key`` is ``version``
    (with ``newer_only``: at most ``version``, as older model configs still load).

    Raises
    ------
    CheckpointError
        Naming ``path`` and saying whether it cannot be read, is not such a document (``what``), or
        was written by another version.
    """
    from .errors import CheckpointError

    path = Path(path)
    try:
        doc = read_json(path)
    except JSONFileError as err:
        raise CheckpointError(f"{path}: {err}; the file is corrupt") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not isinstance(doc, dict) or doc.get("format") != format:
        raise CheckpointError(f"{path} is not a napari-cosynth {what} (no 'format': '{format}')")
    found = doc.get(version_key, 0)
    if newer_only and isinstance(found, int) and found > version:
        raise CheckpointError(f"{path} has format version {found}, newer than this napari-cosynth "
                              f"reads ({version}); upgrade napari-cosynth")
    if not newer_only and found != version:
        raise CheckpointError(f"{path}: {what} version {found} is not supported (this version reads "
                              f"{version})")
    return doc


def _depth(data: Any) -> int:
    """Nesting depth of lists and dicts, without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest
