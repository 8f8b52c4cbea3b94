"""One way to build and run a source's dlt pipeline into the warehouse, used by the CLI, Dagster,
the tests and the benchmarks.

A run extracts and normalises without the warehouse (the network sets its pace), then takes the
writer lock only to load: a slow vendor never keeps other writers waiting. Packages a failed or
killed run left behind are aborted first (dlt restores the state they had advanced), so a run
always starts where the last committed run ended, from the CLI or from Dagster alike.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
import duckdb
import pyarrow as pa
from dlt.common.data_writers.escape import escape_duckdb_literal, escape_postgres_identifier
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines.registry import BACKLOG, SourceSpec
from warehouse.engine import DUCKLAKE, ducklake_settings
from warehouse.location import WarehouseLocation, current_location
from warehouse.writer import writing

logger = logging.getLogger(__name__)

# dlt's default DuckDB format (insert_values) is slow and memory-hungry; parquet goes through
# Arrow and DuckDB's native reader.
LOADER_FILE_FORMAT = "parquet"
# A load's only memory settings, for the peak-memory aim of `bench/bench_onepassword.py`, applied
# to the working file's loads by `writer_destination`: past this limit DuckDB spills to disk
# instead of caching most of the machine's memory as it merges; one thread, as each thread fills
# a row group of its own.
LOAD_DUCKDB_CONFIG = {"memory_limit": "64MB", "threads": 1}
# Rows of a table being written that DuckDB keeps in memory, uncompressed, until it writes them
# to disk (its default is 122,880): a load holds one such group of the widest table, `raw` and all.
LOAD_ROW_GROUP_SIZE = 16_384
# DuckDB 1.5.5 fails an insert into a table altered earlier in the same attachment when the
# table's last row group is larger than the attachment's row group size; a checkpoint at each
# commit (as soon as anything is written) writes the altered table before the insert.
CHECKPOINT_AT_EACH_COMMIT = "SET checkpoint_threshold = '0b'"
# A run's load jobs (a file into a staging table, a merge) go one at a time: side by side, DuckDB
# holds the rows of each table being written at once.
LOAD_WORKERS = 1


def make_pipeline(
    name: str,
    location: WarehouseLocation | None = None,
    row_ids: bool = False,
    dataset: str | None = None,
) -> dlt.Pipeline:
    """The pipeline `name`, loading `dataset` (default `name`) of the working DuckDB file, with
    its state in the warehouse's own pipelines folder (so a fresh warehouse never inherits an
    old cursor). Several pipelines may load one dataset: one per tenant of a source.
    `run_source` loads it, while it holds the writer lock, through `writer_destination`.

    Arrow pages skip dlt's row normaliser; every row still gets `_dlt_load_id`, and `_dlt_id`
    too when `row_ids` (a table with no natural key needs it; adding it rewrites each file)."""
    location = (location or current_location()).ensure()
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_id"] = row_ids
    # A loaded package's files are the rows the warehouse now holds: kept, every hourly load
    # would add its data to the pipelines folder again, for as long as the warehouse runs.
    dlt.config[f"{name}.load.delete_completed_jobs"] = True
    if ducklake_settings():
        # Named only, as the destination a load writes through (a DuckDB with the lake
        # attached): made here, it would attach the lake whenever a pipeline is made.
        destination = dlt.destinations.duckdb(destination_name=DUCKLAKE)
    else:
        destination = dlt.destinations.duckdb(str(location.working_db))
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(location.pipelines_dir),
        destination=destination,
        dataset_name=dataset or name,
    )


@contextmanager
def writer_destination(location: WarehouseLocation) -> Iterator[Destination[Any, Any]]:
    """What `run_source` loads into while it holds the writer lock: one DuckDB, closed on
    leaving, whose sessions (each job's, the state's) share one attachment of the warehouse. On
    DuckLake that reads the lake's extensions and catalog once per load, where dlt's `ducklake`
    destination opens a DuckDB of its own, and attaches the lake again, for every session."""
    if lake := ducklake_settings():
        from warehouse.ducklake import LAKE, connect_lake_writer

        engine, name, statements = connect_lake_writer(lake), LAKE, []
    else:
        engine, name = _attach_working_file(location), location.working_db.stem
        # A statement, as dlt sets its own checkpoint threshold first.
        statements = [CHECKPOINT_AT_EACH_COMMIT]
    try:
        # `schema` makes each session dlt opens read and write the attached warehouse, as a
        # `USE` would; the lake keeps its name in what dlt reports (Dagster's metadata).
        credentials = DuckDbCredentials(
            engine, statements=statements, local_config={"schema": name}
        )
        yield dlt.destinations.duckdb(credentials, destination_name=DUCKLAKE if lake else None)
    finally:
        engine.close()


def _attach_working_file(location: WarehouseLocation) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB (it holds no data itself) with the load's settings and the working
    file attached with the load's row group size (an option of ATTACH only)."""
    engine = duckdb.connect(config=LOAD_DUCKDB_CONFIG)
    try:
        # dlt's own quoting, as for the files it attaches
        file = escape_duckdb_literal(str(location.working_db))
        alias = escape_postgres_identifier(location.working_db.stem)
        engine.execute(f"ATTACH {file} AS {alias} (ROW_GROUP_SIZE {LOAD_ROW_GROUP_SIZE})")
    except BaseException:
        engine.close()
        raise
    return engine


def run_source(
    spec: SourceSpec,
    location: WarehouseLocation,
    source_args: dict[str, Any] | None = None,
    resources: Collection[str] | None = None,
    pipeline_name: str | None = None,
) -> Iterator[tuple[dlt.Pipeline, Any, LoadInfo]]:
    """Load `spec`'s source (only `resources`, if named) through its pipeline, or one tenant's
    `pipeline_name` (see `pipelines.tenants`), until it reports no backlog; yields each run's
    pipeline, source and LoadInfo.

    The event sources bring a bounded number of events per run and remember where they
    stopped, so a long backfill is several runs, each committed on its own: memory stays flat,
    and a failure loses only the run in progress (tables it had already merged keep those
    rows; the next run merges them again and the merge keys store each row once)."""
    runs = 1
    while True:
        dataset = spec.pipeline_name  # also the source's name in the pipeline state
        pipeline = make_pipeline(pipeline_name or dataset, location, spec.row_ids, dataset)
        with writing(location), writer_destination(location) as destination:
            if pipeline.has_pending_data:
                pipeline.abort_packages()
            # What `pipeline.run` does first: take the state the warehouse holds when it is newer
            # than this machine's (its pipelines folder lost, or another host loaded the lake).
            pipeline.sync_destination(destination)
        source = spec.source(**(source_args or {}))
        if resources is not None:
            source = source.with_resources(*resources)
        pipeline.extract(source, loader_file_format=LOADER_FILE_FORMAT)
        # Arrow's pool keeps the pages' freed buffers for reuse; the load that follows uses
        # DuckDB's memory instead, so they go back to the system before it starts.
        pa.default_memory_pool().release_unused()
        pipeline.normalize()
        with writing(location), writer_destination(location) as destination:
            info = pipeline.load(destination, workers=LOAD_WORKERS)
        info.raise_on_failed_jobs()
        yield pipeline, source, info
        states = pipeline.state.get("sources", {}).get(dataset, {})
        if not any(state.get(BACKLOG) for state in states.get("resources", {}).values()):
            return
        logger.info(
            "%s: loaded run %d of a backlog; loading the next", pipeline.pipeline_name, runs
        )
        runs += 1
