"""The report the sections fill: markdown lines and tables, the same tables as numbers for
``encoder.json``, and the values the targets read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Report:
    """What the sections measured: the markdown lines and the numbers the targets need."""

    lines: list[str]
    values: dict[str, float]
    # For encoder.json: table name -> rows, each a dict of column -> number (or text for labels).
    tables: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    # A ratio of values -> [lowest, highest] of that ratio in single rounds of its measurement.
    spreads: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, key: str, timings: dict[str, float], ours: str, reference: str) -> None:
        """``values[key]`` = the median time of ``ours`` over ``reference``'s; where ``timings``
        kept its rounds (``measure.Timings``), ``spreads[key]`` = the range of the per-round ratio."""
        self.values[key] = timings[ours] / timings[reference]
        if hasattr(timings, "ratio_range"):
            self.spreads[key] = timings.ratio_range(ours, reference)

    def table(self, header: list[str], rows: list[list[str]], align: str, name: str | None = None,
              data: list[dict[str, object]] | None = None) -> None:
        """Append a markdown table (``align``: one of ``l`` or ``r`` per column).

        ``name`` and ``data``: the same rows as numbers, for the JSON file; without ``data`` the
        cells are stored as given, numbers parsed where a cell is one (units dropped).
        """
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |")
        self.lines.extend("| " + " | ".join(row) + " |" for row in rows)
        self.lines.append("")
        if name is not None:
            self.tables[name] = data if data is not None else [
                {column: parse_number(cell) for column, cell in zip(header, row, strict=True)}
                for row in rows]

    def timing_table(self, name: str, cases: list[tuple[str, dict[str, float | str]]], reference: str,
                     ratio_label: str) -> None:
        """A table of median times per case and implementation, with ratios to ``reference``.

        A time given as text (``"fails: ..."``, ``"n/a: ..."``) is shown as it is, in the JSON too.
        """
        rows, data = [], []
        for case, timings in cases:
            reference_time = timings.get(reference)
            for impl, seconds in timings.items():
                if isinstance(seconds, str):
                    rows.append([case, impl, seconds, ""])
                    data.append({"case": case, "implementation": impl, "ms": None, "ratio": None,
                                 "note": seconds})
                    continue
                ratio = seconds / reference_time if isinstance(reference_time, float) else None
                rows.append([case, impl, f"{seconds * 1e3:.1f}", "" if ratio is None else f"{ratio:.2f}"])
                data.append({"case": case, "implementation": impl, "ms": seconds * 1e3, "ratio": ratio})
        self.table(["case", "implementation", "median ms", ratio_label], rows, "llrr", name, data)


def finite(data: object) -> object:
    """``data`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def parse_number(cell: str) -> object:
    """``"12.5 ms"`` -> 12.5, ``"1,024"`` -> 1024.0, ``"41 %"`` -> 41.0; other text as it is."""
    head = cell.replace(",", "").split(" ", 1)[0]
    try:
        return float(head)
    except ValueError:
        return cell


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut to ``limit`` characters."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
