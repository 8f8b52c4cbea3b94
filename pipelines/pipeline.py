"""One way to build and run a dlt pipeline for this warehouse, used by the CLI, Dagster, the
tests and the benchmarks."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import dlt
import duckdb
from dlt.common.runtime.collector import NullCollector
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from warehouse.connection import loader_connection, working_catalog
from warehouse.engine import ducklake_settings
from warehouse.location import WarehouseLocation, current_location

if TYPE_CHECKING:
    from pipelines.registry import SourceSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

# dlt's default DuckDB format (insert_values) is slow and memory-hungry; parquet goes through
# Arrow and DuckDB's native reader.
LOADER_FILE_FORMAT = "parquet"
# Rows per row group of the parquet files a load stages: DuckDB reads a file a group at a time
# into the load's small buffer pool (see `warehouse.connection`), so the group, not the batch a
# source hands over, sets what a read takes (a batch of 10,000 1Password events in one group did
# not fit in 24 MB; groups of 2,048 did).
PARQUET_ROW_GROUP_SIZE = 2048
# The resource-state key of a resource that stopped at its events-per-load cap with more to
# load: the run that reaches the end removes it. Loads run again while one is set.
BACKLOG = "backlog"


_LIBC = ctypes.CDLL(None)
# glibc serves blocks of this size or more from their own mappings, unmapped when freed. Left
# alone it raises that threshold (up to 32 MB) each time such a block is freed, and from then on
# serves the pages, Arrow buffers and DuckDB blocks of a load from heaps it keeps, with gaps, as
# they are freed (measured: about 25 MB more peak at 200,000 1Password events). Below 2 MiB,
# what a load allocates and frees over and over (a 1,000-event page is about 600 KB; DuckDB's
# blocks are 256 KiB) comes from the heap and is reused; at 128 KiB each was mapped afresh
# (200,000 1Password events: 760,000 page faults and 3.4 s of system time, against 150,000 to
# 320,000 and 1.3 to 2.1 s, for a peak 0 to 17 MB higher; 277 MB against 259 at a million).
MMAP_THRESHOLD = 2 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def map_large_blocks() -> None:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD` for this process (loads call it); freed
    large blocks then go back to the OS at once. Elsewhere than glibc it does nothing."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is not None and hasattr(_LIBC, "malloc_trim"):  # glibc, not another libc
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


class ReleaseFreedMemory(NullCollector):
    """dlt's progress hook, used to hand the heap that one step freed back to the OS as the next
    starts. glibc keeps what the extract's threads freed (Python pages, Arrow buffers) for
    them; without this the load's DuckDB allocates beside it (measured: about 40 MB at 200,000
    events). Elsewhere than glibc it does nothing."""

    _trim = getattr(_LIBC, "malloc_trim", None)

    def _start(self, step: str) -> None:
        if self._trim is not None:
            self._trim(0)


def make_pipeline(
    name: str,
    location: WarehouseLocation | None = None,
    row_ids: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
    dataset: str | None = None,
) -> dlt.Pipeline:
    """The pipeline `name`, loading `dataset` (default `name`) of the working DuckDB file, with
    its state in the warehouse's own pipelines folder (so a fresh warehouse never inherits an
    old cursor). Several pipelines may load one dataset: one per tenant of a source.

    Runs should load through `connection` (see `loading_pipeline`); without one the pipeline
    only describes the load (what Dagster needs to list the assets).
    Arrow pages skip dlt's row normaliser; every row still gets `_dlt_load_id`, and `_dlt_id`
    too when `row_ids` (a table with no natural key needs it; adding it rewrites each file)."""
    location = (location or current_location()).ensure()
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_id"] = row_ids
    dlt.config[f"{name}.data_writer.row_group_size"] = PARQUET_ROW_GROUP_SIZE
    # One load job at a time: DuckDB has one writer, and jobs run side by side share the loads'
    # small buffer pool, run out of it and are retried (or fail once retries are used up).
    dlt.config[f"{name}.load.workers"] = 1
    if lake := ducklake_settings():
        from warehouse.ducklake import dlt_destination

        destination = dlt_destination(lake)
    elif connection is None:
        destination = dlt.destinations.duckdb(DuckDbCredentials(str(location.working_db)))
    else:  # each session dlt clones from it must default to the attached file, too
        catalog = working_catalog(location)
        credentials = DuckDbCredentials(connection, local_config={"schema": f"{catalog}.main"})
        destination = dlt.destinations.duckdb(credentials)
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(location.pipelines_dir),
        destination=destination,
        dataset_name=dataset or name,
        progress=ReleaseFreedMemory(),
    )


@contextmanager
def loading_pipeline(
    name: str,
    location: WarehouseLocation | None = None,
    row_ids: bool = False,
    memory_limit: str | None = None,
    dataset: str | None = None,
) -> Iterator[dlt.Pipeline]:
    """The pipeline `name` (see `make_pipeline`) writing through a memory-bounded connection to
    the working file (`loader_connection`, with its `memory_limit`), which is held for the
    duration and closed on exit. Large blocks this process allocates from then on are mapped on
    their own (`map_large_blocks`)."""
    location = (location or current_location()).ensure()
    map_large_blocks()
    if ducklake_settings():  # the lake takes writers side by side: no file, no writer turn
        yield make_pipeline(name, location, row_ids, dataset=dataset)
        return
    with loader_connection(location, memory_limit) as connection:
        yield make_pipeline(name, location, row_ids, connection, dataset)


def run_in_parts(
    spec: SourceSpec,
    location: WarehouseLocation,
    run: Callable[[dlt.Pipeline], T],
    pipeline_name: str | None = None,
) -> Iterator[T]:
    """`run(pipeline)` with a fresh `loading_pipeline` for `spec`'s source (its pipeline, or
    one tenant's `pipeline_name`; its dataset, row ids and pool), again while that source
    reports a backlog; yields each result."""
    dataset = spec.pipeline_name  # also the source's name in the pipeline state
    name = pipeline_name or dataset
    part = 1
    while True:
        with loading_pipeline(
            name, location, spec.row_ids, spec.load_memory_limit, dataset
        ) as pipeline:
            result = run(pipeline)
            resources = pipeline.state.get("sources", {}).get(dataset, {}).get("resources", {})
            backlog = any(state.get(BACKLOG) for state in resources.values())
        yield result
        if not backlog:
            return
        logger.info("%s: loaded part %d of a backlog; loading the next", name, part)
        part += 1
