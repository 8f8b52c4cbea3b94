"""`posture-dbt`: the dbt executable Dagster's dbt step runs (`assets/definitions.py`).

A build runs as `posture transform` runs it (`run_build`), in this process of its own: the step
that started it may be killed, and this process still holds the writer lock through dbt's end
and records the build's outcome. Anything else (dagster-dbt asks for `--version`) is dbt itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    from warehouse.dbt_project import DBT, DUCKDB_PATH_ENV, DbtBuildFailed, run_build

    arguments = sys.argv[1:]
    if "build" not in arguments:
        os.execv(DBT, [DBT, *arguments])

    from cli.errors import describe
    from warehouse.location import WarehouseLocation

    # The warehouse whose working file dbt's profile names (`point_dbt_at`, which Dagster's
    # definitions call).
    if not os.environ.get(DUCKDB_PATH_ENV):
        sys.exit(
            f"posture-dbt: error: {DUCKDB_PATH_ENV} is not set: run builds with Dagster or "
            "`posture transform`"
        )
    location = WarehouseLocation(Path(os.environ[DUCKDB_PATH_ENV]).parent)
    try:
        run_build(location, arguments)
    except DbtBuildFailed as failed:
        sys.exit(failed.returncode)
    except Exception as error:  # a busy warehouse, a bad organisations file: one line
        message, code = describe(error)
        print(f"posture-dbt: error: {message}", file=sys.stderr)
        sys.exit(code)
