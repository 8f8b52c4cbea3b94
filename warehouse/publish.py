"""Publish the working DuckDB file as a read-only copy that readers can hold open at any time.

DuckDB allows one writer per file and a reader that opens the working file during a load can see
half-loaded tables or make the load fail. So readers never open the working file: after a
successful load and dbt build, the working file is checkpointed, copied beside the published one,
flushed to disk and swapped in with one atomic rename. A reader that has the old copy open keeps
reading the old copy (its open file is unaffected by the rename) and sees the new one when it
reconnects. DuckDB 1.5 writes storage format 64 by default, which every DuckDB 1.x reader opens.
"""

from __future__ import annotations

import os
import shutil
import time
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


def publish(location: WarehouseLocation) -> PublishResult:
    """Swap a fresh read-only copy of the working file in at `location.published_db`, in a
    writer turn (no load or build changes the file while it is copied)."""
    started = time.perf_counter()
    source = location.working_db
    if not source.exists():
        raise FileNotFoundError(f"no warehouse to publish: {source} does not exist (load first)")
    target = location.ensure().published_db
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with writer_turn(location):
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
