"""Publishing: readers get a read-only copy that a load never blocks and an old DuckDB opens."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cli.main import main
from cli.steps import transform
from pipelines.registry import load
from simulators.keeper_rmd import KeeperRmdSimulator
from simulators.server import SimulatorServer
from simulators.trend_audit import TrendAuditSimulator
from warehouse.connection import connect_published
from warehouse.location import WarehouseLocation
from warehouse.publish import publish, recording_build

ROOT = Path(__file__).resolve().parent.parent


def stat_days(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("select count(*) from keeper_rmd.enterprise_stat").fetchone()[0]


@dataclass(frozen=True)
class Built:
    """A warehouse loaded from the simulators and built by dbt, and the simulators it read."""

    location: WarehouseLocation
    keeper: SimulatorServer
    trend: SimulatorServer
    env: dict[str, str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """One warehouse built once for this file (a Keeper snapshot, three days of Trend Micro
    events, `dbt build`); the tests that use it publish copies of it (`built_copy`)."""
    keeper_token, trend_key = f"kt-{secrets.token_hex(12)}", f"tk-{secrets.token_hex(12)}"
    keeper_sim = KeeperRmdSimulator(users=60, seed=11, tokens=(keeper_token,))
    trend_sim = TrendAuditSimulator(seed=5, api_keys={trend_key: None}, history_days=3)
    with SimulatorServer(keeper_sim) as keeper, SimulatorServer(trend_sim) as trend:
        env = {
            "SOURCES__KEEPER_RMD__BASE_URL": keeper.url,
            "SOURCES__KEEPER_RMD__API_TOKEN": keeper_token,
            "SOURCES__KEEPER_RMD__TENANT": "acme",
            "SOURCES__TREND_AUDIT__BASE_URL": trend.url,
            "SOURCES__TREND_AUDIT__API_KEY": trend_key,
        }
        location = WarehouseLocation(tmp_path_factory.mktemp("built") / "warehouse").ensure()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            load("keeper", location)
            load("trend", location)
            trend.simulator.advance(days=2)
            load("trend", location)
            transform(location, quiet=True)
        yield Built(location, keeper, trend, env)


# The tests that use `built` run in one process, which builds it once.
SHARES_THE_BUILT_WAREHOUSE = pytest.mark.xdist_group("publish_built_warehouse")


@pytest.fixture
def built_copy(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Built:
    """A copy of the built warehouse, with its sources configured to read the same simulators."""
    location = WarehouseLocation(tmp_path / "warehouse")
    shutil.copytree(built.location.data_dir, location.data_dir)
    for name, value in built.env.items():
        monkeypatch.setenv(name, value)
    return Built(location, built.keeper, built.trend, built.env)


# A reader in a process of its own: opens a file read-only and answers queries until its input
# closes, one JSON line per query.
READER = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for sql in sys.stdin:
    print(json.dumps(con.execute(sql).fetchall(), default=str), flush=True)
"""


class ReaderProcess:
    """A BI server's connection in another process, held open until `close`."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def query(self, sql: str) -> list[list]:
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(30) == 0


def posture_publish(location: WarehouseLocation) -> None:
    """`posture publish` in a process of its own."""
    subprocess.run(
        [sys.executable, "-m", "cli.main", "publish"],
        env={**os.environ, "POSTURE_DATA_DIR": str(location.data_dir)},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def test_published_copy_is_read_only_and_readable_by_duckdb_1x(keeper_env, location):
    load("keeper", location)
    publish(location)
    publish(location)  # keeps the first file as the spare
    result = publish(location)
    assert result.in_place  # the spare, written again by this DuckDB
    for path in (result.path, location.published_spare):
        header = path.read_bytes()[:20]
        assert header[8:12] == b"DUCK"
        # Storage format 64 is what DuckDB 0.10 to 1.5 all read (2.0 writes 69, which 1.x cannot).
        assert struct.unpack("<Q", header[12:20])[0] == 64
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
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


@SHARES_THE_BUILT_WAREHOUSE
def test_publish_after_a_failed_build_refuses_unless_forced(built_copy: Built, monkeypatch, capsys):
    location = built_copy.location  # a Keeper snapshot, built
    monkeypatch.setenv("POSTURE_DATA_DIR", str(location.data_dir))
    assert main(["publish"]) == 0
    # A second snapshot of the same day breaks the one-row-per-day test: the build fails.
    built_copy.keeper.simulator.advance(days=1)
    load("keeper", location)
    with duckdb.connect(str(location.working_db)) as con:
        con.execute(
            "insert into keeper_rmd.enterprise_stat select * from keeper_rmd.enterprise_stat"
        )
    capsys.readouterr()
    assert main(["transform"]) == 1  # the command line says so in one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dbt build failed" in err[0]

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
    leftovers = [
        published / ".posture.duckdb.4242.tmp",
        published / ".posture.duckdb.4242.tmp.wal",
        published / ".posture.duckdb.77.outgoing.tmp",
    ]
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


def assert_published_as_working(location: WarehouseLocation) -> None:
    """Every table, view and column of the working file is published, and every table holds the
    working file's rows, with the vendor JSON columns empty."""
    assert_same_tables(location.working_db, location.published_db)


def assert_same_tables(first: Path, second: Path) -> None:
    """Both files hold the same tables, views and columns, and each table the same rows (the
    vendor JSON columns left out: only the working file has them)."""
    with duckdb.connect() as con:
        con.execute(f"attach '{first}' as first (read_only)")
        con.execute(f"attach '{second}' as second (read_only)")
        listing = TABLES.replace("current_database()", "?")
        assert con.execute(listing, ["second"]).fetchall() == (
            con.execute(listing, ["first"]).fetchall()
        )
        views = "select schema_name, view_name, sql from duckdb_views() where database_name = ?"
        assert sorted(con.execute(views, ["second"]).fetchall()) == sorted(
            con.execute(views, ["first"]).fetchall()
        )
        tables = con.execute(
            "select schema_name, table_name, list(column_name order by column_index) "
            "from duckdb_columns() where database_name = 'first' and table_name in ("
            "select table_name from duckdb_tables() where database_name = 'first' "
            "and schema_name = duckdb_columns.schema_name) group by all order by all"
        ).fetchall()
        differences = []  # one query for all tables: rows in one file and not the other
        for schema, table, names in tables:
            columns = ", ".join(f'"{name}"' for name in names if name not in ("raw", "details"))
            select = f'select {columns} from {{}}."{schema}"."{table}"'
            first_only = f"{select.format('first')} except all {select.format('second')}"
            second_only = f"{select.format('second')} except all {select.format('first')}"
            differences.append(
                f"select '{schema}.{table}', (select count(*) from ({first_only})) "
                f"+ (select count(*) from ({second_only}))"
            )
        counts = con.execute(" union all ".join(differences)).fetchall()
        assert [table for table, rows in counts if rows] == []


@SHARES_THE_BUILT_WAREHOUSE
def test_each_publish_writes_only_the_days_that_changed(built_copy: Built):
    location, trend = built_copy.location, built_copy.trend.simulator
    count = "select count(*), count(raw), count(details) from trend_audit.audit_logs"
    first = publish(location)
    assert set(first.updated.values()) == {"whole"}  # the first publish copies every table
    assert_published_as_working(location)
    with duckdb.connect(str(location.working_db), read_only=True) as working:
        ((rows, raw, details),) = working.execute(count).fetchall()
        oldest = working.execute("select min(event_date) from trend_audit.audit_logs").fetchone()
    assert rows and raw == rows and details == rows  # the working file keeps the vendor JSON
    # A BI server in another process opens the published file and never reconnects.
    reader = ReaderProcess(location.published_db)
    assert reader.query(count) == [[rows, 0, 0]]

    # An hourly run: the publish rewrites the days its events (and the builds' lookback) touch.
    trend.advance(hours=1)
    load("trend", location)
    transform(location, quiet=True)
    hourly = publish(location)
    assert not hourly.in_place  # no spare yet: the published file is copied
    for table in ("trend_audit.audit_logs", "marts.fct_security_events"):
        assert hourly.updated[table].startswith("from "), hourly.updated
        assert hourly.updated[table] > f"from {oldest[0]}"
    assert_published_as_working(location)
    assert reader.query(count) == [[rows, 0, 0]]  # a held reader: the old run
    with connect_published(location) as fresh:
        assert fresh.execute(count).fetchone()[0] > rows  # a new one: exactly the new run

    # The file the reader holds is now the spare: DuckDB's lock keeps the next publish off it.
    assert not publish(location).in_place
    assert reader.query(count) == [[rows, 0, 0]]  # its file was never written
    reader.close()

    # Nobody holds the spare (the file of the hourly run's publish, two publishes old and one
    # hour behind): it is brought up to date in place.
    trend.advance(hours=1)
    load("trend", location)
    spare = location.published_spare.stat().st_ino
    in_place = publish(location)
    assert in_place.in_place and location.published_db.stat().st_ino == spare
    for table in ("trend_audit.audit_logs", "marts.fct_security_events"):
        assert in_place.updated[table].startswith("from "), in_place.updated
    assert_published_as_working(location)
    # It holds what a publish from scratch (a full refresh's mark) writes.
    with recording_build(location, full_refresh=True):
        pass
    scratch = publish(location)
    assert set(scratch.updated.values()) == {"whole"} and not scratch.in_place
    assert_same_tables(location.published_spare, location.published_db)

    # Rows removed from a day nothing new was observed on (a repair by hand) are found too.
    with duckdb.connect(str(location.working_db)) as working:
        working.execute("delete from trend_audit.audit_logs where event_date = ?", oldest)
    repaired = publish(location)
    assert repaired.in_place and repaired.updated["trend_audit.audit_logs"] == "whole"
    assert_published_as_working(location)

    # Hour after hour, a file updated in place stays near the size of one written from scratch:
    # the blocks of the rows a publish removes hold the rows it writes.
    for _ in range(2):  # both files from scratch
        with recording_build(location, full_refresh=True):
            pass
        from_scratch = publish(location).bytes
    hours = []
    for _ in range(4):
        trend.advance(hours=1)
        load("trend", location)
        hours.append(publish(location))
    assert all(hour.in_place for hour in hours)
    assert hours[-1].bytes <= hours[0].bytes <= from_scratch * 1.3


def digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def test_a_reader_holding_the_published_file_is_never_blocked_nor_written_under(
    keeper_env, location, tmp_path
):
    # The readers are in the publishing process: file locks keep other processes off a file,
    # never the process holding them.
    load("keeper", location)
    publish(location)
    reader = connect_published(location)
    first = tmp_path / "first.duckdb"  # a second name, to see whether the file is ever written
    os.link(location.published_db, first)
    before = digest(first)
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    publish(location)  # copies the file the reader holds, which drops this process's lock on it
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    posture_publish(location)  # so it must not be the spare another process writes in place
    assert digest(first) == before
    assert stat_days(reader) == 1  # its snapshot is whole and unchanged
    reader.close()

    # A file this process holds, made the spare by another process's publish.
    held = connect_published(location)
    third = tmp_path / "third.duckdb"
    os.link(location.published_db, third)
    before = digest(third)
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    posture_publish(location)
    assert location.published_spare.samefile(third)
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    result = publish(location)
    assert digest(third) == before
    assert not result.in_place
    assert stat_days(held) == 3
    held.close()
    with connect_published(location) as fresh:
        assert stat_days(fresh) == 5


# `publish` in a process of its own, killed (SIGKILL) at a chosen point: while it writes the spare
# (its tables committed, not yet its views nor the checkpoint), or at the nth rename of the swap.
KILLED_PUBLISH = """
import os, signal, sys
from pathlib import Path
import warehouse.publish as publishing
from warehouse.location import WarehouseLocation

def killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[2]
if point == "writing the spare":
    publishing._replace_views = killed
else:
    renames, rename = [], os.replace
    def replace(source, destination):
        renames.append(source)
        if len(renames) == int(point):
            killed()
        rename(source, destination)
    publishing.os.replace = replace
publishing.publish(WarehouseLocation(Path(sys.argv[1])))
"""


def test_a_publish_killed_at_any_point_leaves_readers_a_whole_file(keeper_env, location):
    load("keeper", location)
    publish(location)
    publish(location)  # the first file becomes the spare
    published = location.published_db.parent
    for point, days_shown in (("writing the spare", 1), ("1", 2), ("2", 4)):
        keeper_env.simulator.advance(days=1)
        load("keeper", location)
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_PUBLISH, str(location.data_dir), point],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        if point == "writing the spare":
            assert (published / ".posture.duckdb.spare.wal").exists()  # killed mid-write
        with connect_published(location) as reader:  # a whole file, every table readable
            assert stat_days(reader) == days_shown
            tables = reader.execute("select schema_name, table_name from duckdb_tables()")
            for schema, table in tables.fetchall():
                reader.execute(f'select count(*) from "{schema}"."{table}"').fetchall()
        publish(location)  # the next publish works and clears what the killed one left
        assert_published_as_working(location)
        assert sorted(p.name for p in published.iterdir()) == [
            ".posture.duckdb.spare",
            "posture.duckdb",
        ]


def test_a_full_refresh_makes_the_next_publish_copy_every_table(keeper_env, location):
    load("keeper", location)
    publish(location)
    assert publish(location).updated["keeper_rmd.enterprise_stat"].startswith("from ")
    with recording_build(location, full_refresh=True):
        pass  # a full refresh may rewrite any day of any incremental model
    refreshed = publish(location)
    assert set(refreshed.updated.values()) == {"whole"} and not refreshed.in_place
    again = publish(location)
    assert again.updated["keeper_rmd.enterprise_stat"].startswith("from ")  # once
    assert again.in_place


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
