"""One writer at a time: every step that writes the working file (a load, a dbt build, a publish)
takes its turn here first, across processes.

DuckDB lets one process write a file and fails any other at once. Steps started together (a CLI
load during a scheduled run, or runs of two Dagster instances, which the Dagster pool does not
cover) instead wait for each other on an advisory lock beside the file: for up to
`POSTURE_WRITER_WAIT` seconds (default 900), saying that they wait. A process that opens the
working file without taking a turn (a DuckDB shell, say) still makes a writer fail at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .location import WarehouseLocation

logger = logging.getLogger(__name__)

WRITER_WAIT_ENV = "POSTURE_WRITER_WAIT"
DEFAULT_WRITER_WAIT_SECONDS = 900.0
_POLL_SECONDS = 0.2


class WarehouseBusyError(RuntimeError):
    """Another step kept the working file for longer than this one would wait."""


def writer_wait_seconds() -> float:
    """How long a writer waits for its turn: `POSTURE_WRITER_WAIT` seconds, or the default."""
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
def writer_turn(location: WarehouseLocation) -> Iterator[None]:
    """Hold the working file's writer turn for the block, waiting for it as long as
    `writer_wait_seconds()` allows; raises `WarehouseBusyError` when the wait runs out."""
    wait = writer_wait_seconds()
    path = location.ensure().writer_lock
    with open(path, "a") as handle:
        deadline = time.monotonic() + wait
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WarehouseBusyError(
                        f"the warehouse file {location.working_db} is still in use by another "
                        f"load, transform or publish after {wait:g} s (set {WRITER_WAIT_ENV} to "
                        "wait longer)"
                    ) from None
                if not announced:
                    logger.warning(
                        "another load, transform or publish is writing %s; waiting up to %g s "
                        "for it to finish",
                        location.working_db,
                        wait,
                    )
                    announced = True
                time.sleep(min(_POLL_SECONDS, remaining))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
