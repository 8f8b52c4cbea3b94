"""Publish the working DuckDB file as a read-only copy that readers can hold open at any time.

DuckDB allows one writer per file and a reader that opens the working file during a load can see
half-loaded tables or make the load fail. So readers never open the working file: after a
successful load and dbt build, the working file is checkpointed, copied beside the published one,
flushed to disk and swapped in with one atomic rename. A reader that has the old copy open keeps
reading the old copy (its open file is unaffected by the rename) and sees the new one when it
reconnects. DuckDB 1.5 writes storage format 64 by default, which every DuckDB 1.x reader opens.

A build that failed (or was killed) is not published unless asked: each `dbt build` records its
outcome beside the working file, and publish reads it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .location import WarehouseLocation
from .writer import writer_turn


@dataclass(frozen=True)
class PublishResult:
    """What a publish did."""

    path: Path
    bytes: int
    seconds: float


class PublishRefusedError(RuntimeError):
    """The last dbt build did not pass, so its tables are not for readers."""


BUILD_PASSED, BUILD_RUNNING, BUILD_FAILED = "passed", "running", "failed"


def _build_record(location: WarehouseLocation) -> Path:
    return location.data_dir / "posture.duckdb.build"


@contextmanager
def recording_build(location: WarehouseLocation) -> Iterator[None]:
    """Record the outcome of the dbt build run in the block: running while it runs (so a killed
    build stays unpublishable), then passed, or failed when the block raises."""
    record = _build_record(location)
    record.write_text(BUILD_RUNNING)
    try:
        yield
    except BaseException:
        record.write_text(BUILD_FAILED)
        raise
    record.write_text(BUILD_PASSED)


def last_build(location: WarehouseLocation) -> str | None:
    """The outcome of the last dbt build on this warehouse, or None before the first."""
    record = _build_record(location)
    return record.read_text().strip() if record.exists() else None


def publish(location: WarehouseLocation, force: bool = False) -> PublishResult:
    """Swap a fresh read-only copy of the working file in at `location.published_db`, in a
    writer turn (no load or build changes the file while it is copied). Refuses when the last
    dbt build did not pass, unless `force`."""
    started = time.perf_counter()
    source = location.working_db
    if not source.exists():
        raise FileNotFoundError(f"no warehouse to publish: {source} does not exist (load first)")
    target = location.ensure().published_db
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with writer_turn(location):
        build = last_build(location)
        if build not in (None, BUILD_PASSED) and not force:
            raise PublishRefusedError(
                f"the last dbt build {'did not finish' if build == BUILD_RUNNING else 'failed'}; "
                "fix it and run `posture transform` again, or publish it anyway with --force"
            )
        _remove_stale_staging_copies(target)
        with duckdb.connect(str(source)) as con:
            con.execute("CHECKPOINT")
        try:
            shutil.copyfile(source, staging)
            with open(staging, "rb+") as handle:
                os.fsync(handle.fileno())
            staging.chmod(0o444)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return PublishResult(target, target.stat().st_size, time.perf_counter() - started)


def _remove_stale_staging_copies(target: Path) -> None:
    """Remove staging copies that publishes killed mid-copy left behind; called in a writer
    turn, so no other publish is writing one."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
