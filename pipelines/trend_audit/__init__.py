"""dlt source for Trend Micro Cloud One's Audit Log API (`GET /api/logs`, read with its cursor).

The vendor keeps a year of audit events; this source keeps them for good. Each run reads the
log page by page with the vendor's cursor (`pagination.py`, the only way the API offers), turns
records into rows (`rows.py`) and merges them insert-only on (tenant, id), so an event returned
twice, by one read or by two, is stored once and never rewritten. A read stops before the last
page only when the pages still to come hold nothing new (`progress.py`).

A run loads at most `max_events` events: a longer read keeps its place (the vendor's cursor and
what the read has met so far) in the resource state under the backlog key, and the next run
goes on from there; the high-water marks move only when a read reaches its end. A stored cursor
the vendor no longer accepts starts the read again from the top (the merge keeps re-read events
once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from .helpers import base_url_for, parse_time, trend_client
from .pagination import LogPages, StoredCursorRefused
from .progress import ReadProgress
from .rows import AuditLogRows
from .settings import (
    BATCH_ROWS,
    COLUMNS,
    DEFAULT_LOOKBACK,
    LOGS,
    MAX_EVENTS_PER_LOAD,
    MAX_PAGE_LIMIT,
    PRIMARY_KEY,
    VENDOR,
    WRITE_DISPOSITION,
)

logger = logging.getLogger(__name__)


@dlt.source(name="trend_audit", section="trend_audit", max_table_nesting=0)
def trend_audit(
    api_key: str = dlt.secrets.value,
    base_url: str | None = None,
    region: str | None = None,
    tenant: str | None = None,
    page_limit: int = MAX_PAGE_LIMIT,
    lookback_minutes: float = DEFAULT_LOOKBACK.total_seconds() / 60,
    max_events: int = MAX_EVENTS_PER_LOAD,
    *,
    backlog_key: str,
) -> DltResource:
    """The Cloud One audit log, loaded incrementally into table `audit_logs`.

    Args:
        api_key: a Cloud One API key (`SOURCES__TREND_AUDIT__API_KEY`).
        base_url: the audit host, e.g. `https://audit.us-1.cloudone.trendmicro.com`
            (`SOURCES__TREND_AUDIT__BASE_URL`); built from `region` when absent.
        region: the Cloud One region, e.g. `us-1` (`SOURCES__TREND_AUDIT__REGION`).
        tenant: the tenant of every event this key returns (an installation that loads several
            Cloud One accounts names each); without it, each event's `accountID`, or the host
            name for an event without one.
        page_limit: logs per page, 1 to 25.
        lookback_minutes: events this much older than a tenant's newest loaded event are still
            looked for (must exceed the vendor's delay in logging an event).
        max_events: events one run loads at most; the read goes on in the next run.
        backlog_key: the resource-state key under which a run that stopped at `max_events`
            keeps its place (the caller runs again while it is set).
    """
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"{VENDOR}: page_limit must be 1 to {MAX_PAGE_LIMIT}, not {page_limit}")
    if max_events < 1:
        raise ValueError(f"{VENDOR}: max_events must be at least 1, not {max_events}")
    url = base_url_for(base_url, region)
    client = trend_client(url, api_key)
    host = urlsplit(url).hostname or "cloudone"
    key_id = hashlib.sha256(api_key.encode()).hexdigest()[:16]  # names the key, reveals nothing
    lookback = timedelta(minutes=lookback_minutes)

    @dlt.resource(
        name="audit_logs",
        write_disposition=WRITE_DISPOSITION,
        primary_key=PRIMARY_KEY,
        columns=COLUMNS,
    )
    def audit_logs() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        resume = state.pop(backlog_key, None)
        try:
            yield from read_log(state, resume)
        except StoredCursorRefused as refused:
            logger.warning("%s; reading again from the top", refused)
            yield from read_log(state, None)

    def read_log(state: dict[str, Any], resume: dict[str, Any] | None) -> Iterator[pa.Table]:
        """Read the log from where `resume` stopped (or the top) until the end, an early stop
        or `max_events`; keep the place, or move the high-water marks, in `state`."""
        # {tenant: RFC 3339 time of its newest loaded event}; committed with a successful load.
        high_water_marks: dict[str, str] = state.setdefault("high_water", {})
        # {API key fingerprint: tenants its last complete read met}; a key that reads one
        # account must not wait to meet the others' events.
        tenants_by_key: dict[str, list[str]] = state.setdefault("tenants_by_key", {})
        newest_loaded = {name: parse_time(moment) for name, moment in high_water_marks.items()}
        expected = set(tenants_by_key.get(key_id, newest_loaded))
        resume = resume or {}
        pages = LogPages(client, page_limit, resume.get("cursor"), resume.get("last_page_ids", ()))
        progress = ReadProgress(newest_loaded, expected, lookback, resume)
        rows = AuditLogRows(tenant, host)
        for page in pages:
            events = [rows.add(record, page.observed_at) for record in page.logs]
            progress.observe_page(events, page.observed_at)
            if rows.size >= BATCH_ROWS:
                yield rows.take()
            if progress.rest_is_loaded:
                break
            if progress.events_this_run >= max_events and pages.next_cursor is not None:
                state[backlog_key] = {
                    "cursor": pages.next_cursor,
                    "last_page_ids": pages.last_page_ids,
                    **progress.resume_state(),
                }
                break
        if rows.size:
            yield rows.take()
        if backlog_key not in state:  # the read reached its end: events up to its newest are loaded
            tenants_by_key[key_id] = sorted(progress.newest)
            for name, newest in progress.updated_marks().items():
                high_water_marks[name] = newest.isoformat()
        logger.info(
            "%s %s: read %d pages, %d events (%d tenants); %s",
            VENDOR,
            LOGS,
            progress.pages_read,
            progress.events_read,
            len(progress.newest),
            "more to load: the next run goes on" if backlog_key in state else progress.stop_reason,
        )

    return audit_logs
