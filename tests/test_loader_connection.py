"""The connection loads write the working file through: its own catalog name, small row groups
(memory stays flat), a bounded buffer pool that an installation can raise; and the small row
groups of the parquet files a load stages, which DuckDB reads into that pool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.pipeline import LOADER_FILE_FORMAT, PARQUET_ROW_GROUP_SIZE, loading_pipeline
from tests.conftest import query
from warehouse.connection import LOAD_ROW_GROUP_SIZE, loader_connection


def test_loads_write_small_row_groups_into_the_working_file(location):
    location.ensure()
    with loader_connection(location) as con:
        assert con.execute("select current_database()").fetchone() == ("posture",)
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
        spills = con.execute("select current_setting('temp_directory')").fetchone()[0]
        con.execute("create table t as select range as n, repeat('x', 100) as s from range(40000)")
    # Closed on exit: the file opens directly again, with what the connection wrote.
    assert query(location, "select count(*) from t") == [(40_000,)]
    groups = query(location, "select count(distinct row_group_id) from pragma_storage_info('t')")
    assert groups == [(-(-40_000 // LOAD_ROW_GROUP_SIZE),)]
    assert limit.endswith("MiB") and float(limit.split()[0]) <= 64
    assert spills == f"{location.working_db}.tmp"  # beside the file, not the process's folder


def test_the_buffer_pool_can_be_raised_and_a_bad_size_is_named(location, monkeypatch):
    location.ensure()

    def pool_mib(memory_limit: str | None = None) -> float:
        with loader_connection(location, memory_limit) as con:
            return float(con.execute("select current_setting('memory_limit')").fetchone()[0][:-4])

    assert pool_mib("32MB") <= 32 < pool_mib()  # a source may ask for less than the default
    monkeypatch.setenv("POSTURE_LOAD_MEMORY_LIMIT", "256MB")
    assert pool_mib() > 200 and pool_mib("32MB") > 200  # the installation's size wins
    monkeypatch.setenv("POSTURE_LOAD_MEMORY_LIMIT", "lots")
    with (
        pytest.raises(ValueError, match="POSTURE_LOAD_MEMORY_LIMIT must be a size"),
        loader_connection(location),
    ):
        pass


@pytest.mark.parametrize("entry", ["assets.definitions", "cli.main", "pipelines.registry"])
def test_loads_allocate_arrow_memory_with_the_system_allocator(entry):
    # Arrow chooses its allocator as pyarrow loads, so each way into a load must set it first;
    # a value the installation set is kept.
    probe = f"import {entry}, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    run = [sys.executable, "-c", probe]
    assert subprocess.run(run, capture_output=True, text=True, env=env).stdout.strip() == "system"
    env["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
    assert subprocess.run(run, capture_output=True, text=True, env=env).stdout.strip() == "jemalloc"


def test_loads_stage_parquet_in_small_row_groups(location):
    import dlt
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 3 * PARQUET_ROW_GROUP_SIZE + 1  # one table handed over, as the sources batch pages

    @dlt.resource(name="events")
    def events():
        yield pa.table({"n": pa.array(range(rows), pa.int64())})

    with loading_pipeline("staging_probe", location) as pipeline:
        pipeline.extract(events(), loader_file_format=LOADER_FILE_FORMAT)
        (staged,) = Path(pipeline.working_dir).glob("normalize/extracted/*/new_jobs/events.*")
        groups = pq.ParquetFile(staged).metadata
        assert groups.num_rows == rows and groups.num_row_groups == 4
