"""Which engine holds the warehouse: one setting, asked here by the loads, dbt and the readers.

- `duckdb` (the default): one embedded DuckDB file, written one step at a time, read through a
  published copy. Right for one team on one machine.
- `ducklake`: DuckDB's lakehouse format, its catalog in PostgreSQL (`POSTURE_DUCKLAKE_CATALOG`)
  and its data Parquet files under `POSTURE_DUCKLAKE_DATA_PATH` (a folder or an object store
  URL). Loads, dbt and readers run in different processes or machines at once; a publish
  records the commit readers see instead of copying a file, and every commit can be read
  again later.

Cheap to import (the CLI reads it at start-up): DuckDB is imported only by the functions that
connect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .location import WarehouseLocation, current_location

if TYPE_CHECKING:
    import duckdb

WAREHOUSE_ENV = "POSTURE_WAREHOUSE"
DUCKDB = "duckdb"
DUCKLAKE = "ducklake"
ENGINES = (DUCKDB, DUCKLAKE)
CATALOG_ENV = "POSTURE_DUCKLAKE_CATALOG"
DATA_PATH_ENV = "POSTURE_DUCKLAKE_DATA_PATH"


@dataclass(frozen=True)
class DuckLakeSettings:
    """Where a DuckLake lives: its PostgreSQL catalog and its data path."""

    catalog: str  # a libpq connection string; its password comes from PGPASSWORD or a secret
    data_path: str  # a local folder or an object store URL (s3://, gs://, az://, ...)


def warehouse_engine() -> str:
    """The engine chosen by `POSTURE_WAREHOUSE` (default `duckdb`)."""
    engine = os.environ.get(WAREHOUSE_ENV, "").strip().lower() or DUCKDB
    if engine not in ENGINES:
        raise ValueError(f"{WAREHOUSE_ENV} must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def ducklake_settings() -> DuckLakeSettings | None:
    """The lake's settings when the DuckLake engine is chosen, else None; a missing setting or
    a password written into the catalog string is refused, naming the setting."""
    if warehouse_engine() != DUCKLAKE:
        return None
    catalog = os.environ.get(CATALOG_ENV, "").strip()
    data_path = os.environ.get(DATA_PATH_ENV, "").strip()
    missing = [
        name for name, value in ((CATALOG_ENV, catalog), (DATA_PATH_ENV, data_path)) if not value
    ]
    if missing:
        raise ValueError(f"{WAREHOUSE_ENV}=ducklake needs {' and '.join(missing)}")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:  # libpq's own reading of the string, key=value pairs or a URL
        keywords = conninfo_to_dict(catalog)
    except ProgrammingError as error:
        message = str(error).strip()
        raise ValueError(f"{CATALOG_ENV} is not a libpq connection string: {message}") from None
    if "password" in keywords:
        raise ValueError(
            f"{CATALOG_ENV} must not hold the password: set PGPASSWORD (or a PostgreSQL "
            "password file) for the process instead"
        )
    if "://" not in data_path:  # a local folder: absolute, so every process means the same one
        data_path = os.path.join(os.path.abspath(data_path), "")
    return DuckLakeSettings(catalog, data_path)


DBT_TARGET_ENV = "POSTURE_DBT_TARGET"  # read by dbt_models/profiles.yml, as are the three below
DBT_LAKE_ATTACH_ENV = "POSTURE_DUCKLAKE_ATTACH"
DBT_LAKE_DATA_PATH_ENV = "POSTURE_DUCKLAKE_DATA_FOLDER"
DBT_LAKE_SCHEMA_ENV = "POSTURE_DUCKLAKE_METADATA_SCHEMA"


def dbt_environment() -> dict[str, str]:
    """The variables that aim dbt's profile at this engine: its target, and on DuckLake what
    the target attaches (its extensions installed first, as dbt's connection loads them)."""
    lake = ducklake_settings()
    if lake is None:
        return {DBT_TARGET_ENV: DUCKDB}
    from .ducklake import METADATA_SCHEMA, attach_target, install_extensions

    install_extensions()
    return {
        DBT_TARGET_ENV: DUCKLAKE,
        DBT_LAKE_ATTACH_ENV: attach_target(lake),
        DBT_LAKE_DATA_PATH_ENV: lake.data_path,
        DBT_LAKE_SCHEMA_ENV: METADATA_SCHEMA,
    }


def connect_writer(location: WarehouseLocation | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that writes the warehouse outside a load or a dbt build (call it in the
    writer's turn): the working file on the embedded engine, on DuckLake the lake."""
    lake = ducklake_settings()
    if lake is None:
        import duckdb

        return duckdb.connect(str((location or current_location()).working_db))
    from .ducklake import connect_lake_writer

    return connect_lake_writer(lake)


def connect_reader(
    location: WarehouseLocation | None = None, as_of: datetime | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection for the CLI's readers: the published copy on the
    embedded engine; on DuckLake the commit last published (by `as_of`, when given), every
    query of the connection reading that one snapshot."""
    lake = ducklake_settings()
    if lake is None:
        if as_of is not None:
            raise ValueError(
                f"--as-of needs the DuckLake engine ({WAREHOUSE_ENV}=ducklake); the embedded "
                "DuckDB file keeps no earlier versions"
            )
        from .connection import connect_published

        return connect_published(location or current_location())
    from .ducklake import connect_lake_reader

    return connect_lake_reader(lake, as_of)
