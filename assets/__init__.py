"""Dagster definitions: dlt loads, dbt models, publishing, schedules (entry: `definitions`)."""
