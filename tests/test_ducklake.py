"""The DuckLake engine against a real PostgreSQL catalog: the same sources, models and CLI, two
loads at once, readers that are never blocked and never see half a run, time travel, a publish
that waits for writers, and a killed load run again."""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psycopg
import pytest

from cli.main import main
from cli.steps import load_source, transform
from simulators.server import SimulatorServer
from simulators.trend_audit import TrendAuditSimulator
from tests.conftest import files_containing, wait_for_system_packages
from tests.postgres_server import PostgresServer
from warehouse.ducklake import (
    LAKE,
    attach_sql,
    connect_lake_writer,
    install_extensions,
    lake_writer_lock,
)
from warehouse.engine import (
    CATALOG_ENV,
    DATA_PATH_ENV,
    DUCKLAKE,
    WAREHOUSE_ENV,
    DuckLakeSettings,
    connect_reader,
    ducklake_settings,
)
from warehouse.publish import recording_build

PROJECT = Path(__file__).resolve().parent.parent
TREND_COUNT = "select count(*) from trend_audit.audit_logs"
# What a reader counts during loads of both sources: a half-loaded run would show one changed.
BOTH_COUNTS = (
    "select (select count(*) from trend_audit.audit_logs), "
    "(select count(*) from onepassword_events.signin_attempts)"
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, on a free loopback port."""
    wait_for_system_packages()
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lake(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> DuckLakeSettings:
    """The DuckLake engine chosen through the environment, on a database of its own, with its
    password where libpq reads it. The run's shared dbt parse is for the embedded engine's
    profile, which a lake's differs from: a lake's builds keep their own parse instead, in the
    warehouse's dbt folder, so a second build of the lake reuses the first one's."""
    monkeypatch.delenv("DBT_PARTIAL_PARSE_FILE_PATH", raising=False)
    monkeypatch.setenv(WAREHOUSE_ENV, DUCKLAKE)
    monkeypatch.setenv(CATALOG_ENV, postgres.create_database(f"lake_{secrets.token_hex(4)}"))
    monkeypatch.setenv(DATA_PATH_ENV, str(tmp_path / "lake-data"))
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    return ducklake_settings()


@functools.cache
def _checking_engine() -> duckdb.DuckDBPyConnection:
    """The DuckDB the tests check the lakes with, one per test process: each DuckDB opened
    checks the lake's extensions' signatures again."""
    install_extensions()
    return duckdb.connect(config={"autoinstall_known_extensions": False})


def lake_rows(lake: DuckLakeSettings, sql: str) -> list[tuple]:
    """Rows of `sql` on the lake's newest commit: what is stored, published or not."""
    with _checking_engine().cursor() as con:
        con.execute(attach_sql(lake, read_only=True))
        try:
            con.execute(f"USE {LAKE}")
            return con.execute(sql).fetchall()
        finally:
            con.execute(f"USE memory; DETACH {LAKE}")


def posture(location, *args: str) -> subprocess.Popen:
    """`posture ARGS` in a process of its own, on this warehouse."""
    env = {**os.environ, "POSTURE_DATA_DIR": str(location.data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# A reader in its own process: connects and counts events over and over, a quarter of a second
# apart, until told to stop, writing when each query started and ended and what it saw to its own
# file (stdout may carry other lines, such as DuckDB's progress bar).
READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from warehouse.engine import connect_reader
    stop, log = Path(sys.argv[1]), open(sys.argv[3], "w")
    while not stop.exists():
        started = time.time()
        with connect_reader() as con:
            counts = list(con.execute(sys.argv[2]).fetchone())
        print(json.dumps([started, time.time(), counts]), file=log, flush=True)
        time.sleep(0.25)
    """
)


@pytest.mark.slow
def test_three_sources_on_the_lake_side_by_side_with_a_reader_and_time_travel(
    keeper_env: SimulatorServer,
    trend_env: SimulatorServer,
    onepassword_env: SimulatorServer,
    keeper_token: str,
    trend_key: str,
    onepassword_token: str,
    location,
    lake: DuckLakeSettings,
    capsys,
):
    for source in ("keeper", "trend", "onepassword"):
        load_source(source, location, quiet=True)
    assert main(["kpis"]) == 2  # nothing is published yet
    assert "nothing published on the lake yet" in capsys.readouterr().err
    assert main(["publish"]) == 0
    assert "published the lake's commit" in capsys.readouterr().out
    (before,) = lake_rows(lake, BOTH_COUNTS)
    assert before[0] == len(trend_env.simulator.retained_events())
    moment = datetime.now(UTC)
    time.sleep(0.05)

    # Two loads of different sources at once, each in its own process, and a reader in a third.
    trend_env.simulator.advance(hours=12)
    onepassword_env.simulator.advance(hours=12)
    stop = location.data_dir / "stop-reading"
    reads_log = location.data_dir / "reads.jsonl"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(stop), BOTH_COUNTS, str(reads_log)],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    loads_started = time.time()
    loads = [posture(location, "load", source) for source in ("trend", "onepassword")]
    for process in loads:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        assert "[WARNING]" not in err  # dlt's log lines (its state's destination, say)
    loads_ended = time.time()
    assert main(["publish"]) == 0  # both runs are whole now: readers see them from here on
    published = time.time()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        start > published for start, _, _ in map(json.loads, reads_log.read_text().splitlines())
    ):
        time.sleep(0.1)
    stop.touch()
    assert reader.wait(timeout=60) == 0

    (after,) = lake_rows(lake, BOTH_COUNTS)
    assert after[0] == len(trend_env.simulator.retained_events()) > before[0]
    assert after[1] > before[1]
    ids = lake_rows(lake, "select id from trend_audit.audit_logs order by id")
    assert [i for (i,) in ids] == sorted(e["id"] for e in trend_env.simulator.retained_events())
    reads = [json.loads(line) for line in reads_log.read_text().splitlines()]
    # Never half a run: the counts before both loads until the publish, then after both.
    assert {tuple(counts) for start, _, counts in reads if start < loads_ended} == {before}
    assert {tuple(counts) for start, _, counts in reads if start > published} == {after}
    # Never blocked: reads began and finished while the loads were writing.
    assert any(loads_started < start and end < loads_ended for start, end, _ in reads)

    # The same dbt models build on the lake; the same CLI reads them once published.
    transform(location, quiet=True)
    assert main(["publish"]) == 0
    capsys.readouterr()
    assert main(["kpis", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert {"Keeper RMD", "Trend Micro Cloud One", "1Password"} <= set(out.splitlines())
    ((events,),) = lake_rows(lake, "select sum(events_total) from marts.fct_trend_daily_kpis")
    assert events == after[0]
    # An incremental build on the lake too, after Keeper's snapshot is retaken the same day.
    keeper_env.simulator.advance(hours=2)
    load_source("keeper", location, quiet=True)
    transform(location, quiet=True)

    # What did the warehouse say before the second round of loads?
    assert main(["sql", "--as-of", moment.isoformat(), TREND_COUNT]) == 0
    assert str(before[0]) in capsys.readouterr().out.split()
    assert main(["sql", TREND_COUNT]) == 0
    assert str(after[0]) in capsys.readouterr().out.split()
    # and a reader stays a reader
    assert main(["sql", "select * from read_text('/etc/hostname')"]) == 1
    assert "disabled by configuration" in capsys.readouterr().err

    assert not location.published_db.exists()  # a publish on the lake copies nothing

    lake_folder = Path(lake.data_path)
    assert any(lake_folder.rglob("*.parquet"))
    for secret in (os.environ["PGPASSWORD"], keeper_token, trend_key, onepassword_token):
        assert files_containing(location.data_dir, secret) == []
        assert files_containing(lake_folder, secret) == []


def test_a_load_killed_mid_backfill_and_run_again_stores_every_event_once(
    location, lake: DuckLakeSettings, trend_key: str, monkeypatch
):
    sim = TrendAuditSimulator(seed=9, api_keys={trend_key: None}, history_days=4)
    with SimulatorServer(sim) as server:
        monkeypatch.setenv("SOURCES__TREND_AUDIT__BASE_URL", server.url)
        monkeypatch.setenv("SOURCES__TREND_AUDIT__API_KEY", trend_key)
        monkeypatch.setenv("SOURCES__TREND_AUDIT__MAX_EVENTS", "400")  # parts of 16 pages
        expected = sorted(e["id"] for e in sim.retained_events())
        sim.faults.update(slow_seconds=0.01)
        killed = posture(location, "load", "trend")
        deadline = time.monotonic() + 120
        while sim.requests_served < 22 and time.monotonic() < deadline:
            time.sleep(0.01)  # the first part committed, the second being read
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        sim.faults.update(slow_seconds=0)
        ((kept,),) = lake_rows(lake, TREND_COUNT)
        assert 0 < kept < len(expected), "killed in the middle of the backfill"

        load_source("trend", location, quiet=True)
    ids = lake_rows(lake, "select id from trend_audit.audit_logs order by id")
    assert [i for (i,) in ids] == expected


def test_as_of_on_the_embedded_engine_says_it_needs_ducklake(location, monkeypatch, capsys):
    monkeypatch.delenv(WAREHOUSE_ENV, raising=False)
    code = main(["--data-dir", str(location.data_dir), "sql", "--as-of", "2026-01-15", "select 1"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1
    assert "--as-of needs the DuckLake engine (POSTURE_WAREHOUSE=ducklake)" in err


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({WAREHOUSE_ENV: "postgres"}, "POSTURE_WAREHOUSE must be one of duckdb, ducklake"),
        ({WAREHOUSE_ENV: DUCKLAKE, DATA_PATH_ENV: "lake"}, CATALOG_ENV),
        (
            {WAREHOUSE_ENV: DUCKLAKE, CATALOG_ENV: "dbname=p password=x", DATA_PATH_ENV: "lake"},
            "must not hold the password",
        ),
        (
            {
                WAREHOUSE_ENV: DUCKLAKE,
                CATALOG_ENV: "postgresql://posture:x@db/lake",
                DATA_PATH_ENV: "lake",
            },
            "must not hold the password",
        ),
        (
            {WAREHOUSE_ENV: DUCKLAKE, CATALOG_ENV: "lake on db", DATA_PATH_ENV: "lake"},
            f'{CATALOG_ENV} is not a libpq connection string: missing "=" after "lake"',
        ),
    ],
)
def test_a_bad_engine_setting_is_one_line_naming_it(
    settings: dict[str, str], named: str, location, monkeypatch, capsys
):
    for name in (WAREHOUSE_ENV, CATALOG_ENV, DATA_PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert main(["--data-dir", str(location.data_dir), "kpis"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err


@pytest.mark.slow
def test_the_same_dagster_definitions_load_into_the_lake(
    trend_env: SimulatorServer, location, lake: DuckLakeSettings
):
    import dagster as dg

    from assets.definitions import build_definitions

    defs = build_definitions(location)
    trend_log = dg.AssetKey(["trend_audit", "audit_logs"])
    published = dg.AssetKey("published_warehouse")
    job = defs.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    # The load, then the publish (without the dbt models between them, nothing orders the two).
    results = [
        job.execute_in_process(instance=instance, asset_selection=[key])
        for key in (trend_log, published)
    ]
    assert all(result.success for result in results)
    ((rows,),) = lake_rows(lake, TREND_COUNT)
    assert rows == len(trend_env.simulator.retained_events())
    (publish,) = [
        event.materialization
        for event in results[1].get_asset_materialization_events()
        if event.asset_key == published
    ]
    assert publish.metadata["engine"].value == DUCKLAKE
    assert publish.metadata["snapshot_id"].value >= 1
    with connect_reader() as con:  # readers see what the job published
        assert con.execute(TREND_COUNT).fetchone() == (rows,)
    assert not location.published_db.exists()


def test_a_publish_waits_for_the_writers_of_the_lake(location, lake: DuckLakeSettings):
    def start_publish(wait: str) -> subprocess.Popen:
        env = {**os.environ, "POSTURE_DATA_DIR": str(location.data_dir)}
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "publish"],
            cwd=PROJECT,
            env={**env, "POSTURE_WRITER_WAIT": wait},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def publish(wait: str) -> subprocess.CompletedProcess:
        process = start_publish(wait)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    connect_lake_writer(lake).close()  # a new lake
    with lake_writer_lock(lake), lake_writer_lock(lake):  # two loads writing side by side
        waited = publish("1")
    assert waited.returncode != 0
    assert waited.stderr.strip().splitlines() == [
        "posture publish: error: the lake is still held by a load or transform after 1 s "
        "(set POSTURE_WRITER_WAIT to wait longer)"
    ]
    with pytest.raises(ValueError, match="nothing published on the lake yet"):
        connect_reader()
    done = publish("60")
    assert done.returncode == 0, done.stderr
    ((version,),) = lake_rows(lake, "select max(snapshot_id) from main.published_snapshots")
    assert f"published the lake's commit {version}" in done.stdout

    # A build that fails while a publish waits for it is not published: the publish reads the
    # build's outcome once it holds the lake.
    with recording_build(location):  # the last build passed
        pass
    with lake_writer_lock(lake):  # a build has begun writing
        waiting = start_publish("60")
        with psycopg.connect(lake.catalog) as catalog:  # the publish waits for the lake's lock
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and not catalog.execute(
                    "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                ).fetchone()[0]
            ):
                time.sleep(0.05)
        with pytest.raises(RuntimeError), recording_build(location):
            raise RuntimeError("a data test failed")
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode != 0, out
    assert "the last dbt build failed" in err
    assert lake_rows(lake, "select max(snapshot_id) from main.published_snapshots") == [(version,)]


# Attaches a new lake at an agreed moment, as loads started together on a new installation do.
ATTACH_TOGETHER = textwrap.dedent(
    """
    import sys, time
    from warehouse.ducklake import connect_lake_writer, install_extensions
    from warehouse.engine import ducklake_settings
    install_extensions()
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    connect_lake_writer(ducklake_settings()).close()
    """
)


def test_processes_that_create_a_new_lake_together_all_attach_it(lake: DuckLakeSettings):
    start = str(time.time() + 8)
    attaching = [
        subprocess.Popen(
            [sys.executable, "-c", ATTACH_TOGETHER, start],
            cwd=PROJECT,
            env={**os.environ, "PYTHONPATH": str(PROJECT)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in attaching:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
    assert lake_rows(lake, "select count(*) from lake.snapshots()") == [(1,)]
