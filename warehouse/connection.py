"""Connections to the warehouse: read-only to the published copy for readers, and the bounded
read-write connection that loads write the working file through."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from .location import WarehouseLocation, current_location
from .writer import writer_turn

# DuckDB keeps the row group an INSERT is filling in memory, outside its buffer-pool limit, until
# the group is full: 122,880 rows by default, about 250 MB of audit events with their raw JSON.
# Loads attach the working file with smaller groups and a small buffer pool, so a load's memory
# stays flat however many events it brings. The pool is what the merge needs: dlt's insert-only
# merge into a 12-million-row table still fits in 64 MB (48 MB did not); a source that merges
# by delete-insert asks for less (200,000 events into a 16-million-row table fit in 24 MB).
# Reads of the file are unaffected.
# Much larger installations can raise the pool with `POSTURE_LOAD_MEMORY_LIMIT` (e.g. `256MB`).
LOAD_ROW_GROUP_SIZE = 16_384
LOAD_MEMORY_LIMIT_ENV = "POSTURE_LOAD_MEMORY_LIMIT"
LOAD_DUCKDB_CONFIG = {"memory_limit": "64MB", "preserve_insertion_order": False, "threads": 1}
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


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


@contextmanager
def loader_connection(
    location: WarehouseLocation, memory_limit: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the working file for one load, with bounded memory (see
    `LOAD_ROW_GROUP_SIZE`): a pool of `memory_limit` (default `LOAD_DUCKDB_CONFIG`'s), or of
    `POSTURE_LOAD_MEMORY_LIMIT` when set. Opened in this step's writer turn (`writer_turn`);
    closed (and the file checkpointed) on exit."""
    config = dict(LOAD_DUCKDB_CONFIG)
    if memory_limit:
        config["memory_limit"] = memory_limit
    if limit := os.environ.get(LOAD_MEMORY_LIMIT_ENV, "").strip():
        if not _MEMORY_SIZE.fullmatch(limit):
            raise ValueError(f"{LOAD_MEMORY_LIMIT_ENV} must be a size such as 256MB, not {limit!r}")
        config["memory_limit"] = limit
    # Spills go beside the file, as when DuckDB opens it directly; an in-memory connection
    # would otherwise spill into `./.tmp`, shared by every load started from the same folder.
    config["temp_directory"] = f"{location.working_db}.tmp"
    with writer_turn(location):
        con = duckdb.connect(config=config)
        try:
            path = str(location.working_db).replace("'", "''")
            catalog = working_catalog(location).replace('"', '""')
            con.execute(f"ATTACH '{path}' AS \"{catalog}\" (ROW_GROUP_SIZE {LOAD_ROW_GROUP_SIZE})")
            con.execute(f'USE "{catalog}"')
            yield con
        finally:
            con.close()
