"""One way to build a dlt pipeline for this warehouse, used by the CLI, Dagster and the tests."""

from __future__ import annotations

import dlt

from warehouse.location import WarehouseLocation, current_location

# dlt's default DuckDB format (insert_values) is slow and memory-hungry; parquet goes through
# Arrow and DuckDB's native reader.
LOADER_FILE_FORMAT = "parquet"
# A bounded buffer pool for loads, and no ordering guarantee dlt does not need: a 200,000-event
# merge peaked at 987 MB without these and 757 MB with them.
LOAD_DUCKDB_CONFIG = {"memory_limit": "256MB", "preserve_insertion_order": False}


def make_pipeline(name: str, location: WarehouseLocation | None = None) -> dlt.Pipeline:
    """The pipeline `name`, loading dataset `name` of the working DuckDB file, with its state in
    the warehouse's own pipelines folder (so a fresh warehouse never inherits an old cursor)."""
    location = (location or current_location()).ensure()
    # Arrow pages skip the row normaliser; these keep the lineage columns on every row anyway.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    dlt.config["normalize.parquet_normalizer.add_dlt_id"] = True
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(location.pipelines_dir),
        destination=dlt.destinations.duckdb(
            {"database": str(location.working_db), "global_config": LOAD_DUCKDB_CONFIG}
        ),
        dataset_name=name,
    )
