"""One writer at a time: every step that writes the working file (a load, a dbt build, a publish)
takes the writer lock here first, across processes.

DuckDB lets one process write a file and fails any other at once. Steps started together (a CLI
load during a scheduled run, or runs of two Dagster instances, which the Dagster pool does not
cover) instead wait for each other on a file lock (`filelock`) beside the file: for up to
`POSTURE_WRITER_WAIT` seconds (default 900), saying that they wait. A process that opens the
working file without taking the writer lock (a DuckDB shell, say) still makes a writer fail at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from filelock import FileLock, Timeout

from .engine import ducklake_settings
from .location import WarehouseLocation

logger = logging.getLogger(__name__)

WRITER_WAIT_ENV = "POSTURE_WRITER_WAIT"
DEFAULT_WRITER_WAIT_SECONDS = 900.0


class WarehouseBusyError(RuntimeError):
    """Another step kept the working file for longer than this one would wait."""


def writer_wait_seconds() -> float:
    """How long a writer waits for the lock: `POSTURE_WRITER_WAIT` seconds, or the default."""
    text = os.environ.get(WRITER_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WRITER_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{WRITER_WAIT_ENV} must be a number of seconds (0 or more), not {text!r}")
    return seconds


@contextmanager
def writer_lock(location: WarehouseLocation) -> Iterator[int]:
    """Hold the working file's writer lock for the block, waiting for it as long as
    `writer_wait_seconds()` allows; raises `WarehouseBusyError` when the wait runs out.

    Yields the lock's file descriptor: a child process that inherits it (`pass_fds`) holds the
    lock with this one, so a step killed mid-write keeps other writers out until its child ends.
    """
    wait = writer_wait_seconds()
    descriptors: list[int] = []
    lock = FileLock(location.ensure().writer_lock_file, on_acquired=descriptors.append)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        logger.warning(
            "another load, transform or publish is writing %s; waiting up to %g s for it to finish",
            location.working_db,
            wait,
        )
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise WarehouseBusyError(
                f"the warehouse file {location.working_db} is still in use by another load, "
                f"transform or publish after {wait:g} s (set {WRITER_WAIT_ENV} to wait longer)"
            ) from None
    try:
        yield descriptors[-1]
    finally:
        lock.release()


def lake_writing() -> AbstractContextManager[Any]:
    """On DuckLake, the lake's writer lock held shared for the block, so a publish never records
    a commit in the middle of this write (`warehouse.ducklake`); nothing on the embedded file."""
    lake = ducklake_settings()
    if lake is None:
        return nullcontext()
    from .ducklake import lake_writer_lock

    return lake_writer_lock(lake)


def writing(location: WarehouseLocation) -> AbstractContextManager[Any]:
    """What a load holds while it writes: the working file's writer lock, or on DuckLake (which
    takes writers side by side) the lake's writer lock, shared."""
    return writer_lock(location) if ducklake_settings() is None else lake_writing()
