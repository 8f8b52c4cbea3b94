"""dlt source for Trend Micro Cloud One's Audit Log API (`GET /api/logs`, cursor walk).

The vendor keeps a year of audit events; this source keeps them for good. Each run walks the log
with the cursor (the only way the API offers) and merges insert-only on (tenant, id), so an event
returned twice, by one walk or by two, is stored once and never rewritten. The walk stops early
only when that is safe: the walk has shown itself newest first, has reached every tenant this
API key's last complete walk saw (every tenant loaded, for a key not seen before), and a whole
page is older than every known tenant's newest loaded event minus a lookback window. Otherwise
(oldest first, shuffled, grouped by account, unknown, or a tenant never loaded before) it reads
every page.

A run loads at most `max_events` events: a longer walk keeps its place (the vendor's cursor and
what the walk has seen so far) in the resource state as a backlog, and the next run continues it;
the high-water marks move only when a walk ends. A stored cursor the vendor no longer accepts
starts the walk again from the top (the merge keeps re-read events once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from pipelines.pipeline import BACKLOG
from pipelines.vendor_http import (
    MalformedResponseError,
    VendorClient,
    VendorHTTPError,
    require_records,
    server_time,
)

from .helpers import LogBatch, OrderWatch, base_url_for, parse_time, trend_client
from .settings import (
    BATCH_ROWS,
    COLUMNS,
    DEFAULT_LOOKBACK,
    LOGS,
    MAX_EVENTS_PER_LOAD,
    MAX_PAGE_LIMIT,
    PRIMARY_KEY,
    STALE_CURSOR_STATUSES,
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
) -> DltResource:
    """The Cloud One audit log, loaded incrementally into table `audit_logs`.

    Args:
        api_key: a Cloud One API key (`SOURCES__TREND_AUDIT__API_KEY`).
        base_url: the audit host, e.g. `https://audit.us-1.cloudone.trendmicro.com`
            (`SOURCES__TREND_AUDIT__BASE_URL`); built from `region` when absent.
        region: the Cloud One region, e.g. `us-1` (`SOURCES__TREND_AUDIT__REGION`).
        tenant: the tenant of events without an `accountID` (default: the host name).
        page_limit: logs per page, 1 to 25.
        lookback_minutes: events this much older than a tenant's newest loaded event are still
            looked for (must exceed the vendor's delay in logging an event).
        max_events: events one run loads at most; the walk goes on in the next run.
    """
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"{VENDOR}: page_limit must be 1 to {MAX_PAGE_LIMIT}, not {page_limit}")
    if max_events < 1:
        raise ValueError(f"{VENDOR}: max_events must be at least 1, not {max_events}")
    url = base_url_for(base_url, region)
    client = trend_client(url, api_key)
    default_tenant = tenant or urlsplit(url).hostname or "cloudone"
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
        # {tenant: RFC 3339 time of its newest loaded event}; committed with a successful load.
        marks: dict[str, str] = state.setdefault("high_water", {})
        loaded = {t: parse_time(v) for t, v in marks.items()}
        # {API key fingerprint: tenants its last complete walk saw}; a key that sees one account
        # must not wait to reach the others' events.
        seen_by_key: dict[str, list[str]] = state.setdefault("tenants_by_key", {})
        expected = set(seen_by_key.get(key_id, loaded))
        walk = _Walk(client, page_limit, loaded, expected, lookback, state.pop(BACKLOG, None))
        batch = LogBatch(default_tenant)
        for page, observed_at in walk.pages():
            walk.see([batch.add(record, observed_at) for record in page])
            if batch.size >= BATCH_ROWS:
                yield batch.take()
            if walk.events_this_run >= max_events and walk.cursor is not None:
                state[BACKLOG] = walk.place()
                break
        if batch.size:
            yield batch.take()
        if BACKLOG not in state:  # the walk ended: events up to its newest are all loaded
            seen_by_key[key_id] = sorted(walk.newest)
            for name, newest in walk.newest.items():
                if name not in marks or parse_time(marks[name]) < newest:
                    marks[name] = newest.isoformat()
        logger.info(
            "%s %s: read %d pages, %d events (%d tenants); %s",
            VENDOR,
            LOGS,
            walk.pages_read,
            walk.events_read,
            len(walk.newest),
            "more to load: the next run goes on" if BACKLOG in state else walk.stop_reason,
        )

    return audit_logs


class _Walk:
    """One cursor walk over the log, the decision to stop it early, and its place between runs
    (`place` / the `resume` argument)."""

    def __init__(
        self,
        client: VendorClient,
        page_limit: int,
        loaded: dict[str, datetime],
        expected: set[str],
        lookback: timedelta,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.page_limit = page_limit
        self.loaded = loaded  # tenant -> newest event loaded by earlier walks
        self.expected = expected  # tenants the walk must reach before it may stop early
        # Every event older than this was visible to an earlier, completed walk.
        self.cutoff = min(loaded.values()) - lookback if loaded else None
        self.stop_reason = "stopped at the last page (no `next`)"
        self.events_this_run = 0
        self._start(resume or {})

    def _start(self, place: dict[str, Any]) -> None:
        """Begin at `place` (from `place()`), or at the top when it is empty."""
        self.cursor: str | None = place.get("cursor")
        self.order = OrderWatch.from_place(place.get("order", {}))
        self.newest = {t: parse_time(v) for t, v in place.get("newest", {}).items()}
        self.new_tenant = bool(place.get("new_tenant", False))
        self.pages_read = int(place.get("pages", 0))
        self.events_read = int(place.get("events", 0))

    def place(self) -> dict[str, Any]:
        """Where the walk stands, as JSON-able state for the run that continues it."""
        return {
            "cursor": self.cursor,
            "order": self.order.place(),
            "newest": {t: moment.isoformat() for t, moment in self.newest.items()},
            "new_tenant": self.new_tenant,
            "pages": self.pages_read,
            "events": self.events_read,
        }

    def pages(self) -> Iterator[tuple[list[dict[str, Any]], datetime]]:
        """Each page's logs and the vendor's time (`Date`), until the end or a safe stop."""
        cursors: set[str] = set()
        resumed = self.cursor is not None
        while True:
            params: dict[str, Any] = {"limit": self.page_limit}
            if self.cursor is not None:
                params["cursor"] = self.cursor
            try:
                response = self.client.get(LOGS, params=params)
            except VendorHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if not resumed or status not in STALE_CURSOR_STATUSES:
                    raise
                logger.warning(
                    "%s: %s refused the stored cursor (HTTP %s); walking again from the top",
                    VENDOR,
                    LOGS,
                    status,
                )
                self._start({})
                continue
            finally:
                resumed = False
            body = response.json()
            self.pages_read += 1
            logs = require_records(body, "logs", VENDOR, LOGS)
            cursor = body.get("next")
            if cursor is None or cursor == "":
                self.cursor = None  # the last page
            elif isinstance(cursor, str) and cursor not in cursors:
                self.cursor = cursor
                cursors.add(cursor)
            else:
                raise MalformedResponseError(
                    f"{VENDOR}: {LOGS} returned a `next` cursor that is not a new string"
                )
            yield logs, server_time(response)
            if self.cursor is None:
                break

    def see(self, page: list[tuple[str, str, datetime]]) -> None:
        """Take in one page's (tenant, id, time) triples; decide whether the walk may stop."""
        self.events_read += len(page)
        self.events_this_run += len(page)
        self.order.see([(event_id, moment) for _, event_id, moment in page])
        for tenant, _, moment in page:
            if tenant not in self.loaded:
                self.new_tenant = True
            if tenant not in self.newest or self.newest[tenant] < moment:
                self.newest[tenant] = moment
        if (
            page
            and self.cutoff is not None
            and not self.new_tenant
            # a tenant not reached yet may still have new events further on (e.g. events
            # grouped by account, each group newest first)
            and self.newest.keys() >= self.expected
            and self.order.newest_first
            and max(moment for _, _, moment in page) < self.cutoff
        ):
            self.cursor = None  # the walk ends after this page
            self.stop_reason = (
                f"stopped at page {self.pages_read}: newest first and older than {self.cutoff}"
            )
