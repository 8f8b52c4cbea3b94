"""The DuckLake engine: its extensions, how loads, dbt and readers attach the lake, and what
readers see.

Every process attaches the same lake under the same name (`LAKE`), its catalog tables in the
PostgreSQL schema `METADATA_SCHEMA`, so a query written for one (`marts.fct_daily_posture`
after `USE lake`) reads the same in all of them and in a BI tool.

A load or a dbt build commits table by table, so the lake's newest commit can hold half a run.
Readers therefore read the commit the last publish recorded (`PUBLISHED_SNAPSHOTS`), and a
publish records one only when no load or build is writing: writers hold the lake's writer lock
shared, side by side, and a publish takes it alone. The lock is an advisory lock in the
PostgreSQL catalog, so it holds across machines, and PostgreSQL lets it go when a writer's
connection ends (a killed writer never leaves it held).
"""

from __future__ import annotations

import functools
import importlib.resources
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb

from .engine import DuckLakeSettings

if TYPE_CHECKING:
    from .location import WarehouseLocation

LAKE = "lake"  # the name the lake is attached as, everywhere
METADATA_SCHEMA = "posture_lake"  # the PostgreSQL schema that holds the lake's catalog
# One row per publish: the commit readers see from then on, and when it was published.
PUBLISHED_SNAPSHOTS = f"{LAKE}.main.published_snapshots"
# DuckDB's extensions for the lake, from the PyPI wheels that carry them: (wheel package, name).
EXTENSIONS = (
    ("duckdb_extension_ducklake", "ducklake"),
    ("duckdb_extension_postgres_scanner", "postgres_scanner"),
)


@functools.cache
def install_extensions() -> None:
    """Install the lake's extensions into DuckDB's extension folder from the wheels' files, once
    per process; `LOAD` and `ATTACH 'ducklake:…'` then need no network (none is tried)."""
    with duckdb.connect(config={"autoinstall_known_extensions": False}) as con:
        installed = {
            name
            for (name,) in con.execute(
                "select extension_name from duckdb_extensions() where installed"
            ).fetchall()
        }
        for package, name in EXTENSIONS:
            if name in installed:
                continue
            folder = importlib.resources.files(package) / "extensions" / f"v{duckdb.__version__}"
            path = folder / f"{name}.duckdb_extension"
            if not path.is_file():
                raise RuntimeError(
                    f"the {package} wheel has no {name} extension for DuckDB {duckdb.__version__}: "
                    "install the versions pinned in constraints.txt"
                )
            con.execute(f"INSTALL {_quote(str(path))}")


def attach_target(lake: DuckLakeSettings) -> str:
    """The path a DuckDB `ATTACH` names for the lake."""
    return f"ducklake:postgres:{lake.catalog}"


def attach_sql(
    lake: DuckLakeSettings,
    read_only: bool = False,
    as_of: datetime | None = None,
    version: int | None = None,
) -> str:
    """`ATTACH` of the lake as `LAKE`; read-only readers may pin the commit current at `as_of`,
    or the commit `version`."""
    options = [f"METADATA_SCHEMA {_quote(METADATA_SCHEMA)}"]
    if read_only:
        options.append("READ_ONLY")
    else:  # the lake is created on first attach with this data path; later ones read it
        options.append(f"DATA_PATH {_quote(lake.data_path)}")
    if as_of is not None:
        moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        options.append(f"SNAPSHOT_TIME {_quote(moment.isoformat())}")
    if version is not None:
        options.append(f"SNAPSHOT_VERSION {int(version)}")
    return f"ATTACH {_quote(attach_target(lake))} AS {LAKE} ({', '.join(options)})"


# What a reader's SQL may reach on the lake: its own tables and nothing else (no other file or
# URL, no settings change), as for the published copy (`warehouse.connection`).
_READER_LOCKDOWN = ("SET enable_external_access = false", "SET lock_configuration = true")


def connect_lake_reader(
    lake: DuckLakeSettings, as_of: datetime | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the lake, sandboxed like the published copy's, reading the
    commit the last publish recorded (the last one by `as_of`, when given): never half a run."""
    install_extensions()
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "temp_directory": "",  # no spill folder a query could write
        }
    )
    try:
        for _, name in EXTENSIONS:
            con.execute(f"LOAD {name}")
        con.execute(attach_sql(lake, read_only=True, as_of=as_of))
        try:
            (version,) = con.execute(
                f"select max(snapshot_id) from {PUBLISHED_SNAPSHOTS}"
            ).fetchone()
        except duckdb.CatalogException:
            version = None
        if version is None:
            by = f" by {as_of.isoformat()}" if as_of else " yet"
            raise ValueError(
                f"nothing published on the lake{by}: run a load, transform and `posture publish`"
            )
        con.execute(f"DETACH {LAKE}")
        con.execute(attach_sql(lake, read_only=True, version=version))
        con.execute(f"USE {LAKE}")
        if "://" not in lake.data_path:  # a local data path stays readable, nothing else
            con.execute(f"SET allowed_directories = [{_quote(lake.data_path)}]")
        for statement in _READER_LOCKDOWN:
            con.execute(statement)
        con.execute("BEGIN TRANSACTION")
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def lake_writer_lock(lake: DuckLakeSettings, alone: bool = False) -> Iterator[None]:
    """Hold the lake's writer lock for the block: shared (loads and builds, side by side) or
    `alone` (a publish, once no writer holds it); waits as long as `writer_wait_seconds()`."""
    import psycopg

    from .writer import WRITER_WAIT_ENV, WarehouseBusyError, writer_wait_seconds

    wait = writer_wait_seconds()
    function = "pg_advisory_lock" if alone else "pg_advisory_lock_shared"
    with psycopg.connect(lake.catalog, autocommit=True) as catalog:
        # 0 would mean "wait for ever" to PostgreSQL
        timeout = f"{max(1, round(wait * 1000))}ms"
        catalog.execute("select set_config('lock_timeout', %s, false)", [timeout])
        try:
            catalog.execute(f"select {function}(hashtext(%s))", [METADATA_SCHEMA])
        except psycopg.errors.LockNotAvailable:
            holder = "a load or transform" if alone else "a publish"
            raise WarehouseBusyError(
                f"the lake is still held by {holder} after {wait:g} s (set {WRITER_WAIT_ENV} "
                "to wait longer)"
            ) from None
        yield


def publish_lake(lake: DuckLakeSettings, location: WarehouseLocation, force: bool = False) -> int:
    """Record the lake's newest commit as the one readers see, once no load or build is
    writing; returns its snapshot id. Refuses when the last dbt build did not pass, unless
    `force`: checked under the lock, so a build that fails while the publish waits is not
    published."""
    from .publish import refuse_failed_build

    with lake_writer_lock(lake, alone=True), connect_lake_writer(lake) as con:
        refuse_failed_build(location, force)
        (version,) = con.execute(f"select id from {LAKE}.current_snapshot()").fetchone()
        con.execute(
            f"create table if not exists {PUBLISHED_SNAPSHOTS} "
            "(snapshot_id bigint, published_at timestamp)"
        )
        con.execute(f"insert into {PUBLISHED_SNAPSHOTS} values (?, now()::timestamp)", [version])
    return int(version)


# Attaching a lake that does not exist yet creates its catalog; processes that do so at the same
# moment collide in PostgreSQL, and all but one fail. The others attach again, and find it.
_CREATE_ATTEMPTS = 5
_CREATE_RETRY_SECONDS = 0.5


def connect_lake_writer(lake: DuckLakeSettings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `LAKE` for writing (the lake created first
    when absent) and in use. One per step that writes: each DuckDB opened checks the extensions'
    signatures and reads the catalog again, while the sessions of one (its cursors) share them."""
    install_extensions()
    for _ in range(_CREATE_ATTEMPTS - 1):
        try:
            return _attach_for_writing(lake)
        except duckdb.Error as error:
            if "initialize DuckLake" not in str(error):
                raise
        time.sleep(_CREATE_RETRY_SECONDS)
    return _attach_for_writing(lake)


def _attach_for_writing(lake: DuckLakeSettings) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.execute(attach_sql(lake))
        con.execute(f"USE {LAKE}")
    except BaseException:
        con.close()
        raise
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
