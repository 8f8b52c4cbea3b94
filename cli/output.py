"""Printing query results as plain aligned tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any


def format_value(value: Any) -> str:
    """A cell as text: ratios to three places, dates as ISO, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned text table with a header line."""
    cells = [[format_value(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def print_query(con: Any, query: str, params: Sequence[Any] = ()) -> None:
    """Run `query` on a DuckDB connection and print the result as a table."""
    cursor = con.execute(query, list(params))
    columns = [d[0] for d in cursor.description] if cursor.description else []
    rows = cursor.fetchall() if columns else []
    print(format_table(columns, rows) if columns else "(no result)")
