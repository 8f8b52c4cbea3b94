"""Shared fixtures: a temporary warehouse, simulators on ephemeral ports, random tokens."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from dev import SYSTEM_PACKAGES_ENV
from simulators.keeper_rmd import KeeperRmdSimulator
from simulators.onepassword_events import FEATURES, OnePasswordEventsSimulator
from simulators.server import SimulatorServer
from simulators.trend_audit import TrendAuditSimulator
from warehouse.dbt_project import DBT, DBT_PROJECT_DIR, dbt_process_environment
from warehouse.location import WarehouseLocation

os.environ.update(
    {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # Retries stay on, just fast: faults in tests are deliberate.
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.01",
        "RUNTIME__REQUEST_MAX_RETRY_DELAY": "0.2",
    }
)
# No dbt log file unless asked for (DBT_LOG_LEVEL_FILE=debug to see where a build spent its time):
# writing a debug line for every event of every node is a large part of a build's processor
# time, and a failing build still prints its errors.
os.environ.setdefault("DBT_LOG_LEVEL_FILE", "none")


# The background parse of the dbt project and the folder it writes to.
DBT_PARSE = pytest.StashKey[tuple[threading.Thread, Path]]()


def pytest_configure(config: pytest.Config) -> None:
    """Parse the dbt project once, in the background, for every dbt build of the run to reuse
    (dbt's DBT_PARTIAL_PARSE_FILE_PATH): the profile names no warehouse (see
    `dbt_process_environment`), so the parse holds for each test's warehouse. Until it is ready
    the file is empty, which dbt takes for no saved parse: a build then parses the project
    itself. In pytest-xdist's workers the variable comes from the controller, which set it
    before starting them. The parse goes to the project's own target folder, under the lock
    `assets/dbt.py` takes there, so Dagster's definitions find its manifest made."""
    if hasattr(config, "workerinput"):
        return
    folder = Path(tempfile.mkdtemp(prefix="posture-dbt-parse-"))
    saved_parse = folder / "partial_parse.msgpack"
    saved_parse.touch()  # dbt refuses a path that does not exist
    os.environ["DBT_PARTIAL_PARSE_FILE_PATH"] = str(saved_parse)
    project, target = str(DBT_PROJECT_DIR), DBT_PROJECT_DIR / "target"
    command = [DBT, "parse", "--quiet"]
    command += ["--project-dir", project, "--profiles-dir", project]
    command += ["--target-path", str(target), "--log-path", str(folder)]
    environment = dbt_process_environment(WarehouseLocation(folder))

    def parse() -> None:
        target.mkdir(exist_ok=True)
        with FileLock(target / "manifest.lock"):
            parsed = subprocess.run(command, cwd=folder, env=environment, check=False)
            if parsed.returncode:  # each build parses, and fails, on its own
                return
            # Whole or absent: a build never reads it half written.
            shutil.copyfile(target / saved_parse.name, folder / "copied")
        (folder / "copied").replace(saved_parse)

    config.stash[DBT_PARSE] = (threading.Thread(target=parse, daemon=True), folder)
    config.stash[DBT_PARSE][0].start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if DBT_PARSE in config.stash:
        thread, folder = config.stash[DBT_PARSE]
        thread.join()
        shutil.rmtree(folder, ignore_errors=True)


# Fixtures built once per test process and shared by the tests that read them. `dev.py test` runs
# the suite in several processes (pytest-xdist, `--dist loadgroup`): the tests that use one of
# these run in the same process, so each is built once.
SHARED_FIXTURES = ("demo_run", "fleet", "postgres")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in SHARED_FIXTURES:
            if name in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(name))
                break


@pytest.fixture
def location(tmp_path: Path) -> WarehouseLocation:
    """An empty warehouse in a temporary folder."""
    return WarehouseLocation(tmp_path / "warehouse").ensure()


@pytest.fixture
def keeper_token() -> str:
    """A random token, so a grep for it in files and logs means something."""
    return f"kt-{secrets.token_hex(12)}"


@pytest.fixture
def keeper(keeper_token: str) -> Iterator[SimulatorServer]:
    """A Keeper RMD simulator (60 users) on an ephemeral loopback port."""
    with SimulatorServer(KeeperRmdSimulator(users=60, seed=11, tokens=(keeper_token,))) as server:
        yield server


@pytest.fixture
def keeper_env(
    monkeypatch: pytest.MonkeyPatch, keeper: SimulatorServer, keeper_token: str
) -> SimulatorServer:
    """The Keeper source configured through the environment, as in production."""
    monkeypatch.setenv("SOURCES__KEEPER_RMD__BASE_URL", keeper.url)
    monkeypatch.setenv("SOURCES__KEEPER_RMD__API_TOKEN", keeper_token)
    monkeypatch.setenv("SOURCES__KEEPER_RMD__TENANT", "acme")
    return keeper


@pytest.fixture
def onepassword_token() -> str:
    """A random 1Password bearer token."""
    return f"op-{secrets.token_hex(12)}"


@pytest.fixture
def onepassword_env(
    monkeypatch: pytest.MonkeyPatch, onepassword_token: str
) -> Iterator[SimulatorServer]:
    """A small 1Password account's Events API, with the source configured to read it."""
    sim = OnePasswordEventsSimulator(
        seed=5, tokens={onepassword_token: FEATURES}, users=15, history_days=2
    )
    with SimulatorServer(sim) as server:
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__BASE_URL", server.url)
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__TOKEN", onepassword_token)
        monkeypatch.setenv("SOURCES__ONEPASSWORD_EVENTS__TENANT", "acme-op")
        yield server


@pytest.fixture
def trend_key() -> str:
    """A random Trend Micro Cloud One API key."""
    return f"tk-{secrets.token_hex(12)}"


@pytest.fixture
def trend_env(monkeypatch: pytest.MonkeyPatch, trend_key: str) -> Iterator[SimulatorServer]:
    """A Cloud One account's audit log, with the source configured to read it."""
    sim = TrendAuditSimulator(seed=5, api_keys={trend_key: None}, history_days=3)
    with SimulatorServer(sim) as server:
        monkeypatch.setenv("SOURCES__TREND_AUDIT__BASE_URL", server.url)
        monkeypatch.setenv("SOURCES__TREND_AUDIT__API_KEY", trend_key)
        yield server


@dataclass(frozen=True)
class DemoRun:
    """A finished `posture demo`: its warehouse and what it printed."""

    location: WarehouseLocation
    stdout: str
    built: frozenset[str]  # the kinds of dbt node its build ran: model, seed, test, ...


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`posture demo` run once for the session (3 days, 80 Keeper users), as a user runs it."""
    data_dir = tmp_path_factory.mktemp("demo") / "warehouse"
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--days", "3", "--users", "80"],
        capture_output=True,
        text=True,
        env={**os.environ, "POSTURE_DATA_DIR": str(data_dir)},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    location = WarehouseLocation(data_dir)
    results = json.loads((location.dbt_dir / "run_results.json").read_text())["results"]
    built = frozenset(result["unique_id"].split(".")[0] for result in results)
    return DemoRun(location, out.stdout, built)


def wait_for_system_packages() -> None:
    """Wait until `python3 dev.py test` has finished installing Debian packages in the
    background (it names the file apt-get's exit code goes to), for tests that need one."""
    done = os.environ.get(SYSTEM_PACKAGES_ENV)
    while done and not Path(done).exists():
        time.sleep(0.5)


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def query(location: WarehouseLocation, sql: str) -> list[tuple]:
    """Rows of `sql` on the working file (read-only connection, closed before returning)."""
    import duckdb

    with duckdb.connect(str(location.working_db), read_only=True) as con:
        return con.execute(sql).fetchall()
