"""When things run, and how stale is too stale.

Keeper's endpoints are point-in-time: one snapshot a day. The event sources (1Password, Trend
Micro) keep a cursor, so polling them hourly is cheap and keeps the warehouse near real time;
each run also rebuilds the models downstream of what it loaded and publishes.
"""

from datetime import timedelta

import dagster as dg

from pipelines.registry import enabled_sources

DAILY_SNAPSHOT_CRON = "0 5 * * *"  # 05:00 UTC: before the morning dashboards refresh
EVENTS_CRON = "15 * * * *"  # hourly, away from the top of the hour
SNAPSHOT_SOURCES = ("keeper_rmd",)
# How old a source's last load may be before its tables fail their freshness policy.
FRESHNESS = {"keeper_rmd": timedelta(hours=36)}
EVENTS_FRESHNESS = timedelta(hours=3)
# Every step that writes the warehouse (loads, dbt, publishing) claims this Dagster concurrency
# pool. DuckDB has one writer, and the daily and hourly jobs may overlap; with the pool limited
# to 1 (`concurrency: pools: default_limit: 1` in the instance's dagster.yaml) a step of one run
# waits for the other's instead of failing on the file's lock.
WRITER_POOL = "warehouse_writer"


def event_groups() -> list[str]:
    """The asset groups (dlt datasets) of the event sources."""
    return [s.pipeline_name for s in enabled_sources() if s.pipeline_name not in SNAPSHOT_SOURCES]


def build_jobs_and_schedules() -> tuple[list, list[dg.ScheduleDefinition]]:
    """The jobs and their schedules."""
    daily = dg.define_asset_job(
        "daily_posture",
        selection=dg.AssetSelection.all(),
        description="Snapshot every source, build every model, publish the warehouse.",
    )
    jobs = [daily]
    if event_groups():
        jobs.append(
            dg.define_asset_job(
                "event_sources",
                selection=dg.AssetSelection.groups(*event_groups()).downstream(),
                description="Pull new events (cursor kept), rebuild what depends on them, publish.",
            )
        )
    crons = {"daily_posture": DAILY_SNAPSHOT_CRON, "event_sources": EVENTS_CRON}
    schedules = [
        dg.ScheduleDefinition(job=job, cron_schedule=crons[job.name], execution_timezone="UTC")
        for job in jobs
    ]
    return jobs, schedules


def with_freshness_policy(loaded: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """A source's tables with the freshness policy of their source (Dagster shows each table
    failing its policy once its last load is older than that)."""

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        window = FRESHNESS.get(spec.group_name or "", EVENTS_FRESHNESS)
        return spec.replace_attributes(
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=window)
        )

    return loaded.map_asset_specs(attach)
