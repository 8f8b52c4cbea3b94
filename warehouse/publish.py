"""Publish what readers query as a read-only DuckDB file that they can hold open at any time.

DuckDB allows one writer per file and a reader that opens the working file during a load can see
half-loaded tables or make the load fail. So readers never open the working file: after a
successful load and dbt build, a new file is written beside the published one from the working
file (attached read-only), flushed to disk and swapped in with one atomic rename. A reader that
has the old copy open keeps reading the old copy (its open file is unaffected by the rename) and
sees the new one once every connection its process holds to that path is closed (DuckDB shares
one database per file within a process). DuckDB 1.5 writes storage format 64 by default, which
every DuckDB 1.x reader opens.

The published file holds every table and view of the working file, with one difference: the
vendor JSON columns of the raw tables (`raw`, `details`) are empty (NULL). They are most of the
working file's bytes and grow with every event ever loaded; the working file keeps them as
evidence, and every other column of each event is published.

A build that failed (or was killed) is not published unless asked: each `dbt build` records its
outcome beside the working file, and publish reads it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .connection import working_catalog
from .location import WarehouseLocation
from .writer import writer_turn


@dataclass(frozen=True)
class PublishResult:
    """What a publish did."""

    path: Path
    bytes: int
    seconds: float


class PublishRefusedError(RuntimeError):
    """The last dbt build did not pass, so its tables are not for readers."""


BUILD_PASSED, BUILD_RUNNING, BUILD_FAILED = "passed", "running", "failed"


def _build_record(location: WarehouseLocation) -> Path:
    return location.data_dir / "posture.duckdb.build"


@contextmanager
def recording_build(location: WarehouseLocation) -> Iterator[None]:
    """Record the outcome of the dbt build run in the block: running while it runs (so a killed
    build stays unpublishable), then passed, or failed when the block raises."""
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
    """Swap a fresh read-only copy of the working file in at `location.published_db`, in a
    writer turn (no load or build changes the file while it is copied). Refuses when the last
    dbt build did not pass, unless `force`."""
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
        try:
            _write_reader_copy(source, staging, working_catalog(location))
            with open(staging, "rb+") as handle:
                os.fsync(handle.fileno())
            staging.chmod(0o444)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return PublishResult(target, target.stat().st_size, time.perf_counter() - started)


# The vendor's JSON, kept whole in the raw tables of the working file only.
UNPUBLISHED_COLUMNS = ("raw", "details")


def _write_reader_copy(source: Path, staging: Path, catalog: str) -> None:
    """Write a new DuckDB file at `staging` with the working file's tables (the vendor JSON
    columns left empty) and views, under the working file's catalog name so that the views'
    qualified names resolve in it."""
    working = f"{catalog}_working"
    staging_path, source_path = (str(path).replace("'", "''") for path in (staging, source))
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{staging_path}' AS {catalog}")
        con.execute(f"ATTACH '{source_path}' AS {working} (READ_ONLY)")
        con.execute(f"USE {catalog}")
        columns = con.execute(
            "select schema_name, table_name, column_name, data_type from duckdb_columns() "
            "where database_name = ? and table_name in (select table_name from duckdb_tables() "
            "where database_name = ? and schema_name = duckdb_columns.schema_name) "
            "order by schema_name, table_name, column_index",
            [working, working],
        ).fetchall()
        tables: dict[tuple[str, str], list[str]] = {}
        for schema, table, column, data_type in columns:
            empty = column in UNPUBLISHED_COLUMNS
            tables.setdefault((schema, table), []).append(
                f'cast(null as {data_type}) as "{column}"' if empty else f'"{column}"'
            )
        for (schema, table), selected in tables.items():
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(
                f'CREATE TABLE "{schema}"."{table}" AS '
                f'SELECT {", ".join(selected)} FROM {working}."{schema}"."{table}"'
            )
        views = con.execute(
            "select schema_name, sql from duckdb_views() where database_name = ? "
            "and not internal order by all",
            [working],
        ).fetchall()
        con.execute(f"DETACH {working}")
        _create_views(con, views)
        con.execute("USE memory")
        con.execute(f"DETACH {catalog}")


def _create_views(con: duckdb.DuckDBPyConnection, views: list[tuple[str, str]]) -> None:
    """Create the views, a view after those it reads (DuckDB binds a view when it is created)."""
    pending = list(views)
    while pending:
        failed = []
        for schema, sql in pending:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
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
