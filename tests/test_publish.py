"""Publishing: readers get a read-only copy that a load never blocks and an old DuckDB opens."""

from __future__ import annotations

import struct

import duckdb
import pytest

from cli.main import main
from cli.steps import transform
from pipelines.registry import load
from simulators.server import SimulatorServer
from warehouse.connection import connect_published
from warehouse.publish import publish, recording_build


def stat_days(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("select count(*) from keeper_rmd.enterprise_stat").fetchone()[0]


def test_reader_holding_the_published_file_is_never_blocked(keeper_env: SimulatorServer, location):
    load("keeper", location)
    publish(location)
    reader = connect_published(location)
    assert stat_days(reader) == 1
    # A load and a publish run while the reader holds the file open.
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    publish(location)
    assert stat_days(reader) == 1  # its snapshot is whole and unchanged
    reader.close()
    with connect_published(location) as fresh:
        assert stat_days(fresh) == 2  # a reconnect sees the new day


def test_published_copy_is_read_only_and_readable_by_duckdb_1x(keeper_env, location):
    load("keeper", location)
    result = publish(location)
    header = result.path.read_bytes()[:20]
    assert header[8:12] == b"DUCK"
    # Storage format 64 is what DuckDB 0.10 to 1.5 all read (2.0 writes 69, which 1.x cannot).
    assert struct.unpack("<Q", header[12:20])[0] == 64
    with connect_published(location) as con, pytest.raises(duckdb.Error):
        con.execute("create table nope (a int)")


def test_publish_refuses_while_a_writer_holds_the_working_file(keeper_env, location):
    load("keeper", location)
    import multiprocessing

    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(
        target=_hold_write_lock, args=(str(location.working_db), ready, release)
    )
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(duckdb.IOException, match="lock"):
            publish(location)
        assert not location.published_db.exists()
    finally:
        release.set()
        holder.join(30)


def _hold_write_lock(path: str, ready, release) -> None:
    con = duckdb.connect(path)
    ready.set()
    release.wait(30)
    con.close()


def test_nothing_to_publish_is_a_clear_error(location):
    with pytest.raises(FileNotFoundError, match="load first"):
        publish(location)


def test_publish_after_a_failed_build_refuses_unless_forced(
    keeper_env: SimulatorServer, location, monkeypatch, capsys
):
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    load("keeper", location)
    transform(location, quiet=True)
    assert main(["publish"]) == 0
    # A second snapshot of the same day breaks the one-row-per-day test: the build fails.
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    with duckdb.connect(str(location.working_db)) as con:
        con.execute(
            "insert into keeper_rmd.enterprise_stat select * from keeper_rmd.enterprise_stat"
        )
    with pytest.raises(RuntimeError, match="dbt build failed"):
        transform(location, quiet=True)
    capsys.readouterr()

    assert main(["publish"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last dbt build failed" in err[0] and "--force" in err[0]
    with connect_published(location) as con:
        assert stat_days(con) == 1  # readers still have the last good build

    assert main(["publish", "--force"]) == 0
    with connect_published(location) as con:
        assert stat_days(con) == 4  # two days, each twice: what the failed build saw


def test_a_killed_build_is_not_published(keeper_env: SimulatorServer, location):
    load("keeper", location)
    # The build record a `dbt build` killed mid-way leaves behind.
    (location.data_dir / "posture.duckdb.build").write_text("running")
    with pytest.raises(RuntimeError, match="did not finish"):
        publish(location)
    assert not location.published_db.exists()


def test_publish_clears_staging_copies_a_killed_publish_left(keeper_env, location):
    load("keeper", location)
    published = location.published_db.parent
    leftovers = [published / ".posture.duckdb.4242.tmp", published / ".posture.duckdb.77.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a copy")
    other = published / "notes.txt"  # not a staging copy: kept
    other.write_text("kept")
    publish(location)
    assert sorted(p.name for p in published.iterdir()) == ["notes.txt", "posture.duckdb"]


def test_a_process_sees_a_new_publish_once_it_closes_every_connection(keeper_env, location):
    load("keeper", location)
    publish(location)
    pooled = connect_published(location)  # a BI server's pool keeps one open
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    publish(location)
    # A connection opened while another to the same file is open shares its database: old copy.
    second = connect_published(location)
    assert stat_days(pooled) == stat_days(second) == 1
    pooled.close()
    second.close()
    with connect_published(location) as fresh:
        assert stat_days(fresh) == 2


TABLES = (
    "select schema_name, table_name, column_name, data_type from duckdb_columns() "
    "where database_name = current_database() order by all"
)


def assert_published_as_working(location) -> None:
    """Every table, view and column of the working file is published, and every table holds the
    working file's rows, with the vendor JSON columns empty."""
    with duckdb.connect() as con:
        con.execute(f"attach '{location.working_db}' as working (read_only)")
        con.execute(f"attach '{location.published_db}' as published (read_only)")
        listing = TABLES.replace("current_database()", "?")
        assert con.execute(listing, ["published"]).fetchall() == (
            con.execute(listing, ["working"]).fetchall()
        )
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'working'"
        ).fetchall()
        for schema, table in tables:
            columns = [
                f'"{name}"'
                for (name, *_) in con.execute(f'describe working."{schema}"."{table}"').fetchall()
                if name not in ("raw", "details")
            ]
            select = f'select {", ".join(columns)} from {{}}."{schema}"."{table}"'
            difference = (
                f"select count(*) from ({select.format('working')} except all "
                f"{select.format('published')}) union all select count(*) from "
                f"({select.format('published')} except all {select.format('working')})"
            )
            assert con.execute(difference).fetchall() == [(0,), (0,)], f"{schema}.{table}"


def test_each_publish_writes_only_the_days_that_changed(trend_env: SimulatorServer, location):
    count = "select count(*), count(raw), count(details) from trend_audit.audit_logs"
    load("trend", location)
    trend_env.simulator.advance(days=2)
    load("trend", location)
    transform(location, quiet=True)
    first = publish(location)
    assert set(first.updated.values()) == {"whole"}  # the first publish copies every table
    assert_published_as_working(location)
    with duckdb.connect(str(location.working_db), read_only=True) as working:
        ((rows, raw, details),) = working.execute(count).fetchall()
        oldest = working.execute("select min(event_date) from trend_audit.audit_logs").fetchone()
    assert rows and raw == rows and details == rows  # the working file keeps the vendor JSON
    reader = connect_published(location)
    assert reader.execute(count).fetchall() == [(rows, 0, 0)]

    # An hourly run: the publish rewrites the days its events (and the builds' lookback) touch.
    trend_env.simulator.advance(hours=1)
    load("trend", location)
    transform(location, quiet=True)
    hourly = publish(location)
    for table in ("trend_audit.audit_logs", "marts.fct_security_events"):
        assert hourly.updated[table].startswith("from "), hourly.updated
        assert hourly.updated[table] > f"from {oldest[0]}"
    assert_published_as_working(location)
    assert reader.execute(count).fetchall() == [(rows, 0, 0)]  # a held reader: the old run
    reader.close()
    with connect_published(location) as fresh:
        assert fresh.execute(count).fetchone()[0] > rows  # a new one: exactly the new run

    # Rows removed from a day nothing new was observed on (a repair by hand) are found too.
    with duckdb.connect(str(location.working_db)) as working:
        working.execute("delete from trend_audit.audit_logs where event_date = ?", oldest)
    repaired = publish(location)
    assert repaired.updated["trend_audit.audit_logs"] == "whole"
    assert_published_as_working(location)


def test_a_full_refresh_makes_the_next_publish_copy_every_table(keeper_env, location):
    load("keeper", location)
    publish(location)
    assert publish(location).updated["keeper_rmd.enterprise_stat"].startswith("from ")
    with recording_build(location, full_refresh=True):
        pass  # a full refresh may rewrite any day of any incremental model
    assert set(publish(location).updated.values()) == {"whole"}
    assert publish(location).updated["keeper_rmd.enterprise_stat"].startswith("from ")  # once


def test_a_warehouse_folder_named_with_a_quote_publishes(tmp_path):
    # dlt cannot load into such a folder yet, but a restored or moved warehouse can sit in one.
    from warehouse.location import WarehouseLocation

    location = WarehouseLocation(tmp_path / "O'Brien's warehouse").ensure()
    with duckdb.connect(str(location.working_db)) as con:
        con.execute("create schema keeper_rmd")
        con.execute("create table keeper_rmd.enterprise_stat as select 1 as day")
    publish(location)
    with connect_published(location) as con:
        assert stat_days(con) == 1
