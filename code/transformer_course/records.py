"""Recorded results: JSON files that a script writes once and the book reads.

Some measurements take longer than a chapter should (chapter 6's variants, three seeds each;
the benchmark of the scale appendix), so a script records them once, with the machine they were
measured on, and the chapter renders the record. :func:`read_record` reads such a file and checks
that it holds what the reader needs, so a damaged or outdated record is reported by name instead
of surfacing as a ``KeyError`` somewhere inside a table. A record a student's notebook reads
ships inside the package (its ``data`` folder, :data:`DATA`), so the notebook finds it from any
folder: :func:`read_packaged_record`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

__all__ = ["DATA", "read_packaged_record", "read_record"]

DATA = Path(str(resources.files(__package__) / "data"))  # the records shipped with the package


def read_record(path: str | os.PathLike, required: Mapping[str, type | tuple[type, ...]]) -> dict:
    """Read the JSON object in ``path`` and check that it has every ``required`` entry.

    Args:
        path: the ``.json`` file.
        required: ``{"key": type}`` for every entry the reader uses; a dotted key such as
            ``"recorded.machine"`` names an entry inside an entry.

    Returns:
        The record, a dict.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file, when it is not JSON (truncated or corrupt), not a JSON
            object, or lacks a required entry or holds one of another type.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "runs.json"
        ...     _ = path.write_text('{"recorded": {"machine": "a CPU"}, "runs": []}')
        ...     read_record(path, {"recorded.machine": str, "runs": list})["recorded"]
        {'machine': 'a CPU'}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"record: no file at {str(path)!r}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"record: {str(path)!r} is not valid JSON, truncated or corrupt ({error})") from None
    if not isinstance(record, dict):
        raise ValueError(f"record: {str(path)!r} holds a JSON {type(record).__name__}, expected an object")
    for key, kind in required.items():
        value: object = record
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(
                    f"record: {str(path)!r} has no entry {key!r}; record it again with its script"
                )
            value = value[part]
        if not isinstance(value, kind):
            expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ValueError(
                f"record: {str(path)!r}: entry {key!r} is of type {type(value).__name__}, expected {expected}"
            )
    return record


def read_packaged_record(name: str, required: Mapping[str, type | tuple[type, ...]]) -> dict:
    """:func:`read_record` of the record ``name`` in the package's ``data`` folder, wherever the
    package is installed (a notebook needs no path to the repository).

    Examples:
        >>> record = read_packaged_record("seq2seq_variants.json", {"recorded.machine": str, "runs": list})
        >>> len(record["runs"]) >= 21
        True
    """
    return read_record(DATA / name, required)
