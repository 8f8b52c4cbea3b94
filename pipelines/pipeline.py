"""One way to build a dlt pipeline for this warehouse, used by the CLI, Dagster and the tests."""

from __future__ import annotations

import dlt

from warehouse.location import WarehouseLocation, current_location

# dlt's default DuckDB format (insert_values) is slow and memory-hungry; parquet goes through
# Arrow and DuckDB's native reader.
LOADER_FILE_FORMAT = "parquet"
# Loads get a bounded buffer pool, one thread and no ordering guarantee dlt does not need: a
# 200,000-event merge peaked at 987 MB with DuckDB's defaults, 757 MB with the limit and about
# 640 MB with one thread as well (which also loaded faster on two cores).
LOAD_DUCKDB_CONFIG = {"memory_limit": "256MB", "preserve_insertion_order": False, "threads": 1}


def make_pipeline(
    name: str, location: WarehouseLocation | None = None, row_ids: bool = False
) -> dlt.Pipeline:
    """The pipeline `name`, loading dataset `name` of the working DuckDB file, with its state in
    the warehouse's own pipelines folder (so a fresh warehouse never inherits an old cursor).

    Arrow pages skip dlt's row normaliser; every row still gets `_dlt_load_id`, and `_dlt_id`
    too when `row_ids` (a table with no natural key needs it; adding it rewrites each file)."""
    location = (location or current_location()).ensure()
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_id"] = row_ids
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(location.pipelines_dir),
        destination=dlt.destinations.duckdb(
            {"database": str(location.working_db), "global_config": LOAD_DUCKDB_CONFIG}
        ),
        dataset_name=name,
    )
