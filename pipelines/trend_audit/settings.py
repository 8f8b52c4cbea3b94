"""Trend Micro Cloud One Audit Log API: endpoint, limits, the incremental window, guards against a
misbehaving vendor, table hints."""

from datetime import timedelta

VENDOR = "Trend Micro Cloud One"
SECRET_HINT = "SOURCES__TREND_AUDIT__API_KEY"

LOGS = "/api/logs"
API_VERSION = "v1"
MAX_PAGE_LIMIT = 25  # the seed: at most 25 logs a page
DEFAULT_REGION = "us-1"
REGION_URL = "https://audit.{region}.cloudone.trendmicro.com"

# Events older than a tenant's newest loaded event minus this window are taken to be loaded
# already: it must exceed the vendor's delay between an action and its event in the log.
DEFAULT_LOOKBACK = timedelta(minutes=15)
# Rows per Arrow table given to dlt: big enough to make dlt's per-item cost vanish, small
# enough to keep memory flat however long the read is.
BATCH_ROWS = 5_000
# Events one run loads at most: bounds a run's memory; a longer read goes on in the next run.
MAX_EVENTS_PER_LOAD = 50_000
# Answers to a stored cursor that mean the vendor no longer knows it (reading starts again at the
# top of the log).
STALE_CURSOR_STATUSES = (400, 404, 410)
# A page holding only events this run has already read (a cache in front of the vendor serving
# the previous page again under a new cursor) is asked for again this many times, after waits of
# this many seconds doubling each time, before the run fails.
REPEATED_PAGE_RETRIES = 3
REPEATED_PAGE_WAIT_SECONDS = 0.5
# Empty pages in a row that still carry a `next` cursor before the run fails: a vendor may skip
# an empty stretch, but not forever.
MAX_EMPTY_PAGES_IN_A_ROW = 20

# The record's documented keys (api-notes); any other top-level key becomes a column of its own.
KNOWN_KEYS = frozenset(
    ("id", "time", "type", "description", "accountID", "principalURN", "details")
)
# An event is stored once however often reads return it, and a stored event is never rewritten
# (it keeps the load and `observed_at` that first brought it). insert-only needs each key once
# per load (the source drops repeats within a run); unlike delete-insert's dedup window it also
# runs within a DuckDB memory limit.
WRITE_DISPOSITION = {"disposition": "merge", "strategy": "insert-only"}
PRIMARY_KEY = ("tenant", "id")
COLUMNS = {
    "tenant": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "time": {"data_type": "timestamp", "nullable": False},
    "event_date": {"data_type": "date", "nullable": False},
    "type": {"data_type": "text"},
    "description": {"data_type": "text"},
    "account_id": {"data_type": "text"},
    "principal_urn": {"data_type": "text"},
    "details": {"data_type": "text"},
    "raw": {"data_type": "text", "nullable": False},
    "observed_at": {"data_type": "timestamp", "nullable": False},
}
