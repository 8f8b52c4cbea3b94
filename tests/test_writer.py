"""Writers take turns on the working file across processes: a second one waits, then runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.registry import load
from simulators.server import SimulatorServer
from tests.conftest import query
from warehouse.location import DATA_DIR_ENV
from warehouse.publish import BUILD_PASSED, BUILD_RUNNING, last_build
from warehouse.writer import WRITER_WAIT_ENV, writer_lock

LOADS = "select count(*) from keeper_rmd._dlt_loads"


def posture(*args: str, location, **env: str) -> subprocess.Popen:
    """`posture <args>` in its own process on `location`, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, DATA_DIR_ENV: str(location.data_dir), **env},
    )


def test_a_load_started_during_another_writer_waits_for_it_then_loads(
    keeper_env: SimulatorServer, location
):
    with writer_lock(location):  # this test is the other writer
        cli = posture("load", "keeper", location=location)
        waiting = next((line for line in cli.stderr if "waiting" in line), "")  # blocks
        assert "waiting up to 900 s" in waiting and str(location.working_db) in waiting
        assert cli.poll() is None  # still waiting: nothing written yet
        assert not location.working_db.exists()
    out, err = cli.communicate(timeout=300)
    assert cli.returncode == 0, err
    assert "loaded keeper" in out
    assert query(location, LOADS) == [(1,)]
    assert query(location, "select count(*) from keeper_rmd.enterprise_stat") == [(1,)]


def test_a_writer_that_waits_too_long_fails_clearly_and_changes_nothing(
    keeper_env: SimulatorServer, location
):
    load("keeper", location)
    before = query(location, LOADS)
    keeper_env.simulator.advance(days=1)
    with writer_lock(location):
        for command in (("load", "keeper"), ("publish",)):
            cli = posture(*command, location=location, **{WRITER_WAIT_ENV: "0.5"})
            out, err = cli.communicate(timeout=300)
            assert cli.returncode == 1, (command, out, err)
            assert "still in use by another load, transform or publish after 0.5 s" in err
            assert WRITER_WAIT_ENV in err and "Traceback" not in err
    assert query(location, LOADS) == before
    assert not location.published_db.exists()


def test_a_bad_wait_setting_is_named(location, monkeypatch: pytest.MonkeyPatch):
    cli = posture("transform", location=location, **{WRITER_WAIT_ENV: "soon"})
    _, err = cli.communicate(timeout=120)
    assert cli.returncode == 2
    assert f"{WRITER_WAIT_ENV} must be a number of seconds (0 or more), not 'soon'" in err
    for bad in ("-1", "inf", "nan"):
        monkeypatch.setenv(WRITER_WAIT_ENV, bad)
        with pytest.raises(ValueError, match=WRITER_WAIT_ENV), writer_lock(location):
            pass


def running(pid: int) -> bool:
    """Whether process `pid` is alive (a zombie that nobody reaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_mid_build_and_start_a_load(
    started_by: subprocess.Popen, children: list[int], keeper: SimulatorServer, location
) -> subprocess.Popen:
    """Kill the process that started a build, leaving its child (the build) running, recorded in
    `children` for clean-up; then start the next day's Keeper load, and check that it waits for
    the writer lock instead of failing at once. Returns the load, still running."""
    pid = started_by.pid
    children += [
        int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]
    assert children  # the build
    started_by.kill()
    started_by.wait()
    keeper.simulator.advance(days=1)
    cli = posture("load", "keeper", location=location)
    waiting = next((line for line in cli.stderr if "waiting" in line), "")
    assert "waiting up to 900 s" in waiting
    return cli


def test_a_killed_transform_keeps_writers_out_until_its_dbt_has_ended(
    keeper_env: SimulatorServer, location, tmp_path
):
    load("keeper", location)
    log = tmp_path / "transform.log"
    with log.open("w") as output:
        transform = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "transform"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, DATA_DIR_ENV: str(location.data_dir)},
        )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while " START " not in log.read_text():  # dbt is building
            assert transform.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        cli = kill_mid_build_and_start_a_load(transform, children, keeper_env, location)
        assert cli.poll() is None
        # dbt ended here rather than at the end of its build: the load then goes on.
        for pid in filter(running, children):
            os.kill(pid, signal.SIGKILL)
        _, err = cli.communicate(timeout=600)
        assert cli.returncode == 0, err
        assert not any(running(pid) for pid in children)  # dbt ended before the load wrote
        assert query(location, LOADS) == [(2,)]
    finally:
        for pid in filter(running, children):
            os.kill(pid, signal.SIGKILL)


# Dagster's dbt step alone, run as Dagster runs it (in the process that executes the job), in a
# process the test can kill.
DAGSTER_DBT_STEP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import dagster as dg
    from assets.definitions import build_definitions
    from warehouse.location import WarehouseLocation
    defs = build_definitions(WarehouseLocation(Path(sys.argv[1])))
    dbt_models = next(a for a in defs.assets if getattr(a, "node_def", None)
                      and a.node_def.name == "dbt_models")
    defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=list(dbt_models.keys)
    )
    """
)


def test_a_killed_dagster_dbt_step_keeps_writers_out_until_its_dbt_has_ended(
    keeper_env: SimulatorServer, location
):
    load("keeper", location)
    step = subprocess.Popen(
        [sys.executable, "-c", DAGSTER_DBT_STEP, str(location.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while last_build(location) != BUILD_RUNNING:  # the build holds the writer lock
            assert step.poll() is None and time.monotonic() < deadline, step.stderr.read()
            time.sleep(0.1)
        cli = kill_mid_build_and_start_a_load(step, children, keeper_env, location)
        _, err = cli.communicate(timeout=600)
        assert cli.returncode == 0, err
        assert not any(running(pid) for pid in children)  # the build ended before the load wrote
        assert last_build(location) == BUILD_PASSED  # and recorded its outcome
        assert query(location, LOADS) == [(2,)]
    finally:
        step.kill()
        for pid in filter(running, children):
            os.kill(pid, signal.SIGKILL)
