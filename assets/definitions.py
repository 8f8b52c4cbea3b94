"""The one entry point Dagster loads (`workspace.yaml`): everything gathered, built lazily.

Nothing here reads a secret or runs dbt at import: `defs` is built when Dagster loads the code
location, and each source is built from config only when its run starts.
"""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource

from assets.dbt import build_dbt_assets, dbt_project, ensure_manifest
from assets.dlt import build_dlt_assets
from assets.publish import build_publish_asset
from assets.schedules import build_jobs_and_schedules, with_freshness_policy
from pipelines.registry import enabled_sources
from pipelines.tenants import tenants_to_load
from warehouse.dbt_project import point_dbt_at
from warehouse.location import WarehouseLocation, current_location

# `posture-dbt`, installed beside this Python with the project.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "posture-dbt")


def build_definitions(location: WarehouseLocation) -> dg.Definitions:
    """All assets, checks, jobs and schedules for the warehouse at `location`."""
    point_dbt_at(location)
    project = dbt_project()
    ensure_manifest(project)
    dlt_assets = [
        with_freshness_policy(build_dlt_assets(spec, location))
        for spec in enabled_sources()
        if tenants_to_load([spec.name])  # a source the configuration file has no tenant of
    ]
    dbt_models = build_dbt_assets(project, location)
    jobs, schedules = build_jobs_and_schedules()
    return dg.Definitions(
        assets=[*dlt_assets, dbt_models, build_publish_asset(location, dbt_models)],
        jobs=jobs,
        schedules=schedules,
        resources={
            "dlt": DagsterDltResource(),
            # Builds run as `posture transform` runs them, in a process of their own
            # (`cli/dbt_executable.py`).
            "dbt": DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE),
        },
        # One step at a time: DuckDB has one writer, and on two cores the in-process executor
        # is also the fastest.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions for the warehouse chosen by `POSTURE_DATA_DIR` (default `./data`)."""
    return build_definitions(current_location())
