"""When things run: Keeper's point-in-time endpoints once a day, then models and publishing."""

import dagster as dg

DAILY_SNAPSHOT_CRON = "0 5 * * *"  # 05:00 UTC: before the morning dashboards refresh


def build_jobs_and_schedules() -> tuple[list, list[dg.ScheduleDefinition]]:
    """The jobs and their schedules."""
    daily = dg.define_asset_job(
        "daily_posture",
        selection=dg.AssetSelection.all(),
        description="Snapshot every source, build the models, publish the warehouse.",
    )
    schedules = [
        dg.ScheduleDefinition(
            job=daily, cron_schedule=DAILY_SNAPSHOT_CRON, execution_timezone="UTC"
        )
    ]
    return [daily], schedules
