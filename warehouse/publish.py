"""Publish what readers query as a read-only DuckDB file that they can hold open at any time.

DuckDB allows one writer per file and a reader that opens the working file during a load can see
half-loaded tables or make the load fail. So readers never open the working file. A private
replica of it (`posture.replica.duckdb` beside the working file, which no reader opens) is brought
up to date from the working file (attached read-only), in one transaction that writes only what
changed since the last publish; then the replica's bytes are copied beside the published file,
flushed to disk and swapped in with one atomic rename. A reader that has the old copy open keeps
reading the old copy (its open file is unaffected by the rename) and sees the new one once every
connection its process holds to that path is closed (DuckDB shares one database per file within a
process). DuckDB 1.5 writes storage format 64 by default, which every DuckDB 1.x reader opens.

What changed is found per table from columns the warehouse's tables share:
- a table with a day (`event_date` or `snapshot_date`) and an observation time (`observed_at`, or
  `last_observed_at` in daily marts) has its days replaced from the earliest day of a row observed
  since the replica's newest observation, less the dbt project's `load_lookback_days` (the rows an
  incremental build may have rewritten); loads and builds only ever write rows of those days;
- any other table (small: per-tenant, per-benchmark or dlt's bookkeeping) is copied whole;
- a table whose row count then differs from the working file's (rows deleted on days nothing new
  was observed), or whose columns changed, is copied whole.

The published file holds every table and view of the working file, with one difference: the
vendor JSON columns of the raw tables (`raw`, `details`) are empty (NULL). They are most of the
working file's bytes and grow with every event ever loaded; the working file keeps them as
evidence, and every other column of each event is published.

A build that failed (or was killed) is not published unless asked: each `dbt build` records its
outcome beside the working file, and publish reads it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .connection import working_catalog
from .location import WarehouseLocation
from .writer import writer_turn

DBT_PROJECT_FILE = Path(__file__).resolve().parent.parent / "dbt_models" / "dbt_project.yml"


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the published file, its size, the seconds it took and, per table
    brought up to date in the replica, how (`whole`, or `from <day>`)."""

    path: Path
    bytes: int
    seconds: float
    updated: dict[str, str] = field(default_factory=dict)


class PublishRefusedError(RuntimeError):
    """The last dbt build did not pass, so its tables are not for readers."""


BUILD_PASSED, BUILD_RUNNING, BUILD_FAILED = "passed", "running", "failed"


def _build_record(location: WarehouseLocation) -> Path:
    return location.data_dir / "posture.duckdb.build"


@contextmanager
def recording_build(location: WarehouseLocation, full_refresh: bool = False) -> Iterator[None]:
    """Record the outcome of the dbt build run in the block: running while it runs (so a killed
    build stays unpublishable), then passed, or failed when the block raises. A full refresh may
    rewrite any row of any day, so it also drops the replica: the next publish copies it all."""
    if full_refresh:
        location.replica_db.unlink(missing_ok=True)
        location.replica_db.with_name(f"{location.replica_db.name}.wal").unlink(missing_ok=True)
    record = _build_record(location)
    record.write_text(BUILD_RUNNING)
    try:
        yield
    except BaseException:
        record.write_text(BUILD_FAILED)
        raise
    record.write_text(BUILD_PASSED)


def last_build(location: WarehouseLocation) -> str | None:
    """The outcome of the last dbt build on this warehouse, or None before the first."""
    record = _build_record(location)
    return record.read_text().strip() if record.exists() else None


def publish(location: WarehouseLocation, force: bool = False) -> PublishResult:
    """Bring the replica up to date and swap a copy of it in at `location.published_db`, in a
    writer turn (no load or build changes the working file meanwhile). Refuses when the last dbt
    build did not pass, unless `force`."""
    started = time.perf_counter()
    source = location.working_db
    if not source.exists():
        raise FileNotFoundError(f"no warehouse to publish: {source} does not exist (load first)")
    target = location.ensure().published_db
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with writer_turn(location):
        build = last_build(location)
        if build not in (None, BUILD_PASSED) and not force:
            raise PublishRefusedError(
                f"the last dbt build {'did not finish' if build == BUILD_RUNNING else 'failed'}; "
                "fix it and run `posture transform` again, or publish it anyway with --force"
            )
        _remove_stale_staging_copies(target)
        updated = _update_replica(source, location.replica_db, working_catalog(location))
        try:
            shutil.copyfile(location.replica_db, staging)
            with open(staging, "rb+") as handle:
                os.fsync(handle.fileno())
            staging.chmod(0o444)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return PublishResult(target, target.stat().st_size, time.perf_counter() - started, updated)


# The vendor's JSON, kept whole in the raw tables of the working file only.
UNPUBLISHED_COLUMNS = ("raw", "details")
DAY_COLUMNS = ("event_date", "snapshot_date")
OBSERVED_COLUMNS = ("observed_at", "last_observed_at")


def _lookback_days() -> int:
    """How far back an incremental dbt build may rewrite rows (the dbt project's setting)."""
    import yaml

    return int(yaml.safe_load(DBT_PROJECT_FILE.read_text())["vars"]["load_lookback_days"])


def _update_replica(source: Path, replica: Path, catalog: str) -> dict[str, str]:
    """Make the replica hold the working file's tables (the vendor JSON columns empty, all in one
    transaction) and views, under the working file's catalog name so that the views' qualified
    names resolve in it; then checkpoint it so that its file alone holds it all. Returns how each
    table was brought up to date."""
    working = f"{catalog}_working"
    replica_path, source_path = (str(path).replace("'", "''") for path in (replica, source))
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{replica_path}' AS {catalog}")
        con.execute(f"ATTACH '{source_path}' AS {working} (READ_ONLY)")
        con.execute(f"USE {catalog}")
        con.execute("BEGIN")
        updated = {}
        working_tables = _tables(con, working)
        replica_tables = _tables(con, catalog)
        for schema, table in replica_tables.keys() - working_tables.keys():
            con.execute(f'DROP TABLE {catalog}."{schema}"."{table}"')
        for (schema, table), columns in working_tables.items():
            replica_columns = replica_tables.get((schema, table))
            how = _update_table(con, working, catalog, schema, table, columns, replica_columns)
            if how:
                updated[f"{schema}.{table}"] = how
        con.execute("COMMIT")
        _replace_views(con, working, catalog)
        con.execute(f"CHECKPOINT {catalog}")
        con.execute(f"DETACH {working}")
        con.execute("USE memory")
        con.execute(f"DETACH {catalog}")
    return updated


def _tables(
    con: duckdb.DuckDBPyConnection, database: str
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Each table of `database` (schema, table) with its columns and their types."""
    rows = con.execute(
        "select schema_name, table_name, column_name, data_type from duckdb_columns() "
        "where database_name = ? and table_name in (select table_name from duckdb_tables() "
        "where database_name = ? and schema_name = duckdb_columns.schema_name) "
        "order by schema_name, table_name, column_index",
        [database, database],
    ).fetchall()
    tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault((schema, table), []).append((column, data_type))
    return tables


def _update_table(
    con: duckdb.DuckDBPyConnection,
    working: str,
    replica: str,
    schema: str,
    table: str,
    columns: list[tuple[str, str]],
    replica_columns: list[tuple[str, str]] | None,
) -> str | None:
    """Bring one table of the replica up to date; returns how (None when nothing changed)."""
    name = f'"{schema}"."{table}"'
    selected = ", ".join(
        f'cast(null as {data_type}) as "{column}"'
        if column in UNPUBLISHED_COLUMNS
        else f'"{column}"'
        for column, data_type in columns
    )
    names = {column for column, _ in columns}
    day = next((column for column in DAY_COLUMNS if column in names), None)
    observed = next((column for column in OBSERVED_COLUMNS if column in names), None)
    if columns == replica_columns and day and observed:
        (since,) = con.execute(
            f'select max("{observed}") - to_days(?) from {replica}.{name}', [_lookback_days()]
        ).fetchone()
        if since is not None:
            (first_day,) = con.execute(
                f'select min("{day}") from {working}.{name} where "{observed}" >= ?', [since]
            ).fetchone()
            if first_day is not None:
                con.execute(f'DELETE FROM {replica}.{name} WHERE "{day}" >= ?', [first_day])
                con.execute(
                    f"INSERT INTO {replica}.{name} "
                    f'SELECT {selected} FROM {working}.{name} WHERE "{day}" >= ?',
                    [first_day],
                )
            counts = con.execute(
                f"select (select count(*) from {replica}.{name}), "
                f"(select count(*) from {working}.{name})"
            ).fetchone()
            if counts[0] == counts[1]:
                return None if first_day is None else f"from {first_day}"
    if replica_columns is not None:
        con.execute(f"DROP TABLE {replica}.{name}")
    con.execute(f'CREATE SCHEMA IF NOT EXISTS {replica}."{schema}"')
    con.execute(f"CREATE TABLE {replica}.{name} AS SELECT {selected} FROM {working}.{name}")
    return "whole"


def _replace_views(con: duckdb.DuckDBPyConnection, working: str, replica: str) -> None:
    """Drop the replica's views and create the working file's, a view after those it reads
    (DuckDB binds a view when it is created)."""
    for schema, view in con.execute(
        "select schema_name, view_name from duckdb_views() where database_name = ? "
        "and not internal",
        [replica],
    ).fetchall():
        con.execute(f'DROP VIEW {replica}."{schema}"."{view}"')
    pending = con.execute(
        "select schema_name, sql from duckdb_views() where database_name = ? "
        "and not internal order by all",
        [working],
    ).fetchall()
    while pending:
        failed = []
        for schema, sql in pending:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS {replica}."{schema}"')
            try:
                con.execute(sql)
            except duckdb.CatalogException as error:
                failed.append((schema, sql, error))
        if len(failed) == len(pending):
            raise failed[0][2]
        pending = [(schema, sql) for schema, sql, _ in failed]


def _remove_stale_staging_copies(target: Path) -> None:
    """Remove staging copies that publishes killed mid-copy left behind; called in a writer
    turn, so no other publish is writing one."""
    for stale in target.parent.glob(f".{target.name}.*.tmp*"):  # with its WAL
        stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
