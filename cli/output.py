"""Printing query results: DuckDB renders the table; report cells are formatted here."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

UNLIMITED_WIDTH = 100_000  # characters: a pipe or a file gets every column


def format_value(value: Any) -> str:
    """A cell as text: ratios to three places, dates as ISO, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def print_query(con: Any, query: str, params: Sequence[Any] = (), max_rows: int = 1000) -> None:
    """Run `query` on a DuckDB connection and print up to `max_rows` rows of its result, as
    DuckDB's own table (fitted to a terminal's width)."""
    width = None if sys.stdout.isatty() else UNLIMITED_WIDTH
    con.sql(query, params=list(params) or None).show(max_rows=max_rows, max_width=width)
