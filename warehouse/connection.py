"""Connections to the warehouse: read-only to the published copy for readers, and the working
file's catalog name."""

from __future__ import annotations

import duckdb

from .location import WarehouseLocation, current_location

# What a reader's SQL may reach: the published copy and nothing else. No other file or URL
# (`read_csv`, `COPY`, `ATTACH`, extensions), no spill folder that could be written, and the
# settings locked so the query itself cannot lift any of this.
READER_DUCKDB_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "temp_directory": "",
    "lock_configuration": True,
}


def connect_published(location: WarehouseLocation | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published copy (what the CLI's readers use), sandboxed by
    `READER_DUCKDB_CONFIG`."""
    path = (location or current_location()).published_db
    if not path.exists():
        raise FileNotFoundError(
            f"nothing published yet at {path}: run `posture demo` or a load, transform and publish"
        )
    return duckdb.connect(str(path), read_only=True, config=READER_DUCKDB_CONFIG)


def working_catalog(location: WarehouseLocation) -> str:
    """The catalog name of the working file (its stem, as when DuckDB opens it directly)."""
    return location.working_db.stem
