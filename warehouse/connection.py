"""Connections to the warehouse: read-only to the published copy for readers, read-write to the
working file for the steps that load and transform."""

from __future__ import annotations

import duckdb

from .location import WarehouseLocation, current_location


def connect_published(location: WarehouseLocation | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published copy (what BI tools and analysts use)."""
    path = (location or current_location()).published_db
    if not path.exists():
        raise FileNotFoundError(
            f"nothing published yet at {path}: run `posture demo` or a load, transform and publish"
        )
    return duckdb.connect(str(path), read_only=True)
