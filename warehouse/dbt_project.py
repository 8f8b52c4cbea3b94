"""Where the dbt project lives, how dbt is aimed at a warehouse, and how a build runs, for the
CLI's `posture transform` and for Dagster's dbt step alike. Cheap to import: `posture transform`
runs dbt without Dagster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .engine import dbt_environment
from .location import WarehouseLocation

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_models"
DUCKDB_PATH_ENV = "POSTURE_DUCKDB_PATH"  # read by dbt_models/profiles.yml
DBT = str(Path(sys.executable).parent / "dbt")  # the dbt installed beside this Python
# What `posture transform` and the Dagster asset run: models, seeds and data tests. Unit tests
# check the models' SQL on fixed inputs, not the data, so as dbt advises they run where the code
# changes (the test suite: `dbt test --select test_type:unit`), not in every build.
BUILD_COMMAND = ("build", "--exclude-resource-type", "unit_test")


def point_dbt_at(location: WarehouseLocation) -> None:
    """Aim dbt (profile and executable) at this warehouse's working file, for this process."""
    os.environ[DUCKDB_PATH_ENV] = str(location.working_db)
    os.environ.update(dbt_environment())  # the engine's output of the profile
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    bin_dir = str(Path(DBT).parent)  # dagster-dbt parses the project with `dbt` from PATH
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def dbt_process_environment(location: WarehouseLocation) -> dict[str, str]:
    """The environment of a dbt process run in `location`'s folder (its working directory): the
    profile opens the working file by its name there. The profile is then the same for every
    warehouse, and dbt, which parses the whole project again whenever the profile changes, can
    reuse one saved parse for builds of any warehouse (the test suite's many do)."""
    return {**os.environ, DUCKDB_PATH_ENV: location.working_db.name}


@contextmanager
def building(location: WarehouseLocation, full_refresh: bool = False) -> Iterator[int]:
    """What every dbt build holds and writes first, from the CLI or Dagster: the working file's
    writer lock (its lock descriptor is yielded, for a dbt child to inherit), on DuckLake the
    lake's writer lock shared, the build's outcome recorded, and the organisations' tenant map
    written from the configuration file (read first, so a bad file fails without waiting)."""
    from pipelines.tenants import configured_tenants

    from .publish import recording_build
    from .tenant_map import write_tenant_map
    from .writer import lake_writing, writer_lock

    tenants = configured_tenants()
    with writer_lock(location) as lock, lake_writing(), recording_build(location, full_refresh):
        write_tenant_map(location, tenants)
        yield lock


class DbtBuildFailed(RuntimeError):
    """dbt ended with a non-zero exit code: a model, seed or data test failed, or dbt could not
    run (its own output says which)."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"dbt exited with code {returncode}")
        self.returncode = returncode


def run_build(location: WarehouseLocation, arguments: Sequence[str]) -> None:
    """`dbt ARGUMENTS` (a build) as a process run in `location`'s folder, holding what every
    build holds (`building`); raises `DbtBuildFailed` when dbt fails. dbt inherits the writer
    lock: if the process that started the build is killed, dbt still keeps other writers waiting
    until it has finished writing. `posture transform` runs it in its own process; Dagster's dbt
    step through `posture-dbt` (`cli/dbt_executable.py`), a process its step cannot take down."""
    with building(location, "--full-refresh" in arguments) as lock:
        returncode = subprocess.run(
            [DBT, *arguments],
            check=False,
            pass_fds=(lock,),
            cwd=location.data_dir,
            env=dbt_process_environment(location),
        ).returncode
        if returncode:
            raise DbtBuildFailed(returncode)
