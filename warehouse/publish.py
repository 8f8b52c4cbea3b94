"""Publish what readers query as a read-only DuckDB file that they can hold open at any time.

DuckDB allows one writer per file and a reader that opens the working file during a load can see
half-loaded tables or make the load fail. So readers never open the working file. They open the
published file, which is never written while it is published. Beside it lies a spare, the file
published before it (a hidden name no reader opens). A publish brings the spare up to date in
place from the working file (attached read-only), writing only what changed since it was
published, flushes it to disk, makes it read-only and swaps it in: the published file becomes the
spare, with no moment when the published path is missing or half written. What a publish writes
thus follows what changed, not all history.

A reader that has a published file open keeps reading it (its open file is unaffected by the
renames) and sees the new one once every connection its process holds to that path is closed
(DuckDB shares one database per file within a process). A reader still holding the file that is
now the spare (a BI server that never reconnected) holds DuckDB's shared lock on it, so the spare
cannot be written: the publish then copies the published file and brings the copy up to date
instead, and the file that reader holds is unlinked, never changed. A publish killed at any point
leaves the published path whole; the next publish removes what it left behind. DuckDB 1.5 writes
storage format 64 by default, which every DuckDB 1.x reader opens.

What changed is found per table from columns the warehouse's tables share:
- a table with a day (`event_date` or `snapshot_date`) and an observation time (`observed_at`, or
  `last_observed_at` in daily marts) has its days replaced from the earliest day of a row
  observed since the published file's newest observation less the dbt project's
  `load_lookback_days` (as far back as an incremental build rewrites); loads and builds write
  rows of those days only;
- any other table (per-tenant, per-benchmark, per-user or dlt's bookkeeping) is copied whole;
- a table whose row count then differs from the working file's (rows deleted on days nothing new
  was observed), or whose columns changed, is copied whole.

The published file holds every table and view of the working file, with one difference: the
vendor JSON columns of the raw tables (`raw`, `details`) are empty (NULL). They are most of the
working file's bytes and grow with every event ever loaded; the working file keeps them as
evidence, and every other column of each event is published.

A build that failed (or was killed) is not published unless asked: each `dbt build` records its
outcome beside the working file, and publish reads it. A full refresh may rewrite any row of any
day, so it leaves a mark beside the working file: the next publish copies every table.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from .connection import working_catalog
from .location import WarehouseLocation
from .writer import writer_lock

DBT_PROJECT_FILE = Path(__file__).resolve().parent.parent / "dbt_models" / "dbt_project.yml"


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the published file, its size, the seconds it took, per table it
    wrote, how (`whole`, or `from <day>`), and whether it updated the spare in place (or else
    wrote a copy)."""

    path: Path
    bytes: int
    seconds: float
    updated: dict[str, str] = field(default_factory=dict)
    in_place: bool = False


class PublishRefusedError(RuntimeError):
    """The last dbt build did not pass, so its tables are not for readers."""


BUILD_PASSED, BUILD_RUNNING, BUILD_FAILED = "passed", "running", "failed"


def _build_record(location: WarehouseLocation) -> Path:
    return location.data_dir / "posture.duckdb.build"


def _copy_all_mark(location: WarehouseLocation) -> Path:
    return location.data_dir / "posture.duckdb.publish-all"


@contextmanager
def recording_build(location: WarehouseLocation, full_refresh: bool = False) -> Iterator[None]:
    """Record the outcome of the dbt build run in the block: running while it runs (so a killed
    build stays unpublishable), then passed, or failed when the block raises. A full refresh
    marks the next publish to copy every table."""
    if full_refresh:
        _copy_all_mark(location).touch()
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


def refuse_failed_build(location: WarehouseLocation, force: bool = False) -> None:
    """Raise `PublishRefusedError` when the last dbt build failed or did not finish, unless
    `force`."""
    build = last_build(location)
    if build not in (None, BUILD_PASSED) and not force:
        raise PublishRefusedError(
            f"the last dbt build {'did not finish' if build == BUILD_RUNNING else 'failed'}; "
            "fix it and run `posture transform` again, or publish it anyway with --force"
        )


def publish(location: WarehouseLocation, force: bool = False) -> PublishResult:
    """Swap an up-to-date read-only file in at `location.published_db`, holding the writer lock
    (no load or build changes the working file meanwhile): the spare brought up to date in place,
    or a copy of the published file when the spare cannot be written. Refuses when the last dbt
    build did not pass, unless `force`."""
    started = time.perf_counter()
    source = location.working_db
    if not source.exists():
        raise FileNotFoundError(f"no warehouse to publish: {source} does not exist (load first)")
    target = location.ensure().published_db
    spare = location.published_spare
    catalog = working_catalog(location)
    with writer_lock(location):
        refuse_failed_build(location, force)
        _remove_stale_staging_copies(target)
        copy_all = _copy_all_mark(location)
        from_scratch = copy_all.exists() or not target.exists()
        updated = None if from_scratch else _update_spare(spare, source, catalog)
        in_place = updated is not None
        if in_place:
            _swap_in(spare, target, spare)
        else:
            staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                if not from_scratch:
                    shutil.copyfile(target, staging)
                updated = _bring_up_to_date(_open_copy(staging, catalog), source, catalog)
                _seal(staging)
                _swap_in(staging, target, spare)
            finally:
                staging.unlink(missing_ok=True)
        copy_all.unlink(missing_ok=True)
    return PublishResult(
        target, target.stat().st_size, time.perf_counter() - started, updated, in_place
    )


def _update_spare(spare: Path, source: Path, catalog: str) -> dict[str, str] | None:
    """Bring the spare up to date in place and seal it; None, leaving it as it was, when there
    is none or a reader holds it open (DuckDB's lock says so for other processes; this process's
    own open files are looked up, as file locks do not keep a process out of its own files)."""
    if not spare.exists() or _open_in_this_process(spare):
        return None
    spare.chmod(0o644)
    try:
        try:
            con = _open_copy(spare, catalog)
        except duckdb.IOException as error:
            if "lock" not in str(error):
                raise
            return None
        updated = _bring_up_to_date(con, source, catalog)
        _seal(spare)
        return updated
    finally:
        spare.chmod(0o444)


def _open_copy(copy: Path, catalog: str) -> duckdb.DuckDBPyConnection:
    """A connection with `copy` attached for writing under the working file's catalog name, so
    that the views' qualified names resolve in it."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{_quoted(copy)}' AS {catalog}")
    except BaseException:
        con.close()
        raise
    return con


def _seal(copy: Path) -> None:
    """Flush a brought-up-to-date copy to disk and make it read-only, as every published file."""
    with open(copy, "rb+") as handle:
        os.fsync(handle.fileno())
    copy.chmod(0o444)


def _swap_in(new: Path, target: Path, spare: Path) -> None:
    """Make `new` the published file and keep the file it replaces as the spare. The published
    path names a whole file at every moment (one rename replaces it); a second name for the
    outgoing file lets it become the spare afterwards. A file this process holds open is not kept
    as the spare: its own publishes are not kept out by its locks."""
    if not target.exists():
        os.replace(new, target)
        spare.unlink(missing_ok=True)
    else:
        outgoing = target.with_name(f".{target.name}.{os.getpid()}.outgoing.tmp")
        os.link(target, outgoing)
        os.replace(new, target)
        if _open_in_this_process(outgoing):
            outgoing.unlink()
            spare.unlink(missing_ok=True)
        else:
            os.replace(outgoing, spare)
    _fsync_dir(target.parent)


def _open_in_this_process(path: Path) -> bool:
    """Whether this process holds `path` open (a DuckDB reader in it, say)."""
    try:
        identity = path.stat()
    except FileNotFoundError:
        return False
    for descriptor in os.listdir("/dev/fd"):
        try:
            held = os.fstat(int(descriptor))
        except OSError:  # the descriptor listdir itself used, closed since
            continue
        if (held.st_dev, held.st_ino) == (identity.st_dev, identity.st_ino):
            return True
    return False


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


# The vendor's JSON, kept whole in the raw tables of the working file only.
UNPUBLISHED_COLUMNS = ("raw", "details")
DAY_COLUMNS = ("event_date", "snapshot_date")
OBSERVED_COLUMNS = ("observed_at", "last_observed_at")


def _lookback_days() -> int:
    """How far back an incremental dbt build may rewrite rows (the dbt project's setting)."""
    import yaml

    return int(yaml.safe_load(DBT_PROJECT_FILE.read_text())["vars"]["load_lookback_days"])


def _bring_up_to_date(con: duckdb.DuckDBPyConnection, source: Path, catalog: str) -> dict[str, str]:
    """Make the copy attached to `con` as `catalog` (an earlier published file, or a new file)
    hold the working file's tables (the vendor JSON columns empty) and views; then checkpoint it
    so that its file alone holds it all, and close `con`. Returns how each table was written."""
    working = f"{catalog}_working"
    with con:
        con.execute(f"ATTACH '{_quoted(source)}' AS {working} (READ_ONLY)")
        con.execute(f"USE {catalog}")
        working_tables = _tables(con, working)
        published_tables = _tables(con, catalog)
        lookback = _lookback_days()
        con.execute("BEGIN")
        for schema, table in published_tables.keys() - working_tables.keys():
            con.execute(f'DROP TABLE {catalog}."{schema}"."{table}"')
        removed = {
            key: _remove_changed_rows(
                con, working, catalog, key, columns, published_tables.get(key), lookback
            )
            for key, columns in working_tables.items()
        }
        con.execute("COMMIT")
        # DuckDB reuses the blocks of removed rows only once a checkpoint has freed them: written
        # in the same checkpoint, every publish would grow the copy by all it rewrites.
        con.execute(f"CHECKPOINT {catalog}")
        con.execute("BEGIN")
        updated = {}
        for key, columns in working_tables.items():
            how = _write_changed_rows(con, working, catalog, key, columns, removed[key])
            if how:
                updated[".".join(key)] = how
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


# What `_remove_changed_rows` removed, besides the rows from a day on: nothing, or the table.
UNCHANGED, WHOLE = "unchanged", "whole"


def _remove_changed_rows(
    con: duckdb.DuckDBPyConnection,
    working: str,
    copy: str,
    schema_table: tuple[str, str],
    columns: list[tuple[str, str]],
    published_columns: list[tuple[str, str]] | None,
    lookback_days: int,
) -> tuple[str, date] | str:
    """Delete from one table of the copy the days observed within `lookback_days` of its newest
    observation, or drop the table when it is to be copied whole; returns the day column and the
    first day deleted, `UNCHANGED` or `WHOLE`."""
    name = _table_name(schema_table)
    names = {column for column, _ in columns}
    day = next((column for column in DAY_COLUMNS if column in names), None)
    observed = next((column for column in OBSERVED_COLUMNS if column in names), None)
    if columns == published_columns and day and observed:
        (since,) = con.execute(
            f'select max("{observed}") - to_days(?) from {copy}.{name}', [lookback_days]
        ).fetchone()
        if since is not None:
            (first_day,) = con.execute(
                f'select min("{day}") from {working}.{name} where "{observed}" >= ?', [since]
            ).fetchone()
            if first_day is None:
                return UNCHANGED
            con.execute(f'DELETE FROM {copy}.{name} WHERE "{day}" >= ?', [first_day])
            return day, first_day
    if published_columns is not None:
        con.execute(f"DROP TABLE {copy}.{name}")
    return WHOLE


def _write_changed_rows(
    con: duckdb.DuckDBPyConnection,
    working: str,
    copy: str,
    schema_table: tuple[str, str],
    columns: list[tuple[str, str]],
    removed: tuple[str, date] | str,
) -> str | None:
    """Write into one table of the copy what `_remove_changed_rows` `removed` (what it
    returned); a table whose row count then differs from the working file's (rows deleted on
    days nothing new was observed) is copied whole. Returns how (None when nothing changed)."""
    name = _table_name(schema_table)
    selected = ", ".join(
        f'cast(null as {data_type}) as "{column}"'
        if column in UNPUBLISHED_COLUMNS
        else f'"{column}"'
        for column, data_type in columns
    )
    if removed != WHOLE:
        how = None
        if removed != UNCHANGED:
            day, first_day = removed
            how = f"from {first_day}"
            con.execute(
                f"INSERT INTO {copy}.{name} "
                f'SELECT {selected} FROM {working}.{name} WHERE "{day}" >= ?',
                [first_day],
            )
        counts = con.execute(
            f"select (select count(*) from {copy}.{name}), (select count(*) from {working}.{name})"
        ).fetchone()
        if counts[0] == counts[1]:
            return how
        con.execute(f"DROP TABLE {copy}.{name}")
    con.execute(f'CREATE SCHEMA IF NOT EXISTS {copy}."{schema_table[0]}"')
    con.execute(f"CREATE TABLE {copy}.{name} AS SELECT {selected} FROM {working}.{name}")
    return WHOLE


def _table_name(schema_table: tuple[str, str]) -> str:
    schema, table = schema_table
    return f'"{schema}"."{table}"'


def _replace_views(con: duckdb.DuckDBPyConnection, working: str, copy: str) -> None:
    """Drop the copy's views and create the working file's, a view after those it reads
    (DuckDB binds a view when it is created)."""
    for schema, view in con.execute(
        "select schema_name, view_name from duckdb_views() where database_name = ? "
        "and not internal",
        [copy],
    ).fetchall():
        con.execute(f'DROP VIEW {copy}."{schema}"."{view}"')
    pending = con.execute(
        "select schema_name, sql from duckdb_views() where database_name = ? "
        "and not internal order by all",
        [working],
    ).fetchall()
    while pending:
        failed = []
        for schema, sql in pending:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS {copy}."{schema}"')
            try:
                con.execute(sql)
            except duckdb.CatalogException as error:
                failed.append((schema, sql, error))
        if len(failed) == len(pending):
            raise failed[0][2]
        pending = [(schema, sql) for schema, sql, _ in failed]


def _remove_stale_staging_copies(target: Path) -> None:
    """Remove the staging copies and second names of outgoing files that killed publishes left
    behind; called holding the writer lock, so no other publish is writing one."""
    for stale in target.parent.glob(f".{target.name}.*.tmp*"):  # with its WAL
        stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
