"""dlt source for Trend Micro Cloud One's Audit Log API (`GET /api/logs`, cursor walk).

The vendor keeps a year of audit events; this source keeps them for good. Each run walks the log
with the cursor (the only way the API offers) and merges insert-only on (tenant, id), so an event
returned twice, by one walk or by two, is stored once and never rewritten. The walk stops early
only when that is safe: the walk has shown itself newest first and a whole page is older than
every known tenant's newest loaded event minus a lookback window. Otherwise (oldest first,
shuffled, unknown, or a tenant never loaded before) it reads every page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from pipelines.vendor_http import MalformedResponseError, VendorClient, require_records, server_time

from .helpers import LogBatch, OrderWatch, base_url_for, parse_time, trend_client
from .settings import (
    BATCH_ROWS,
    COLUMNS,
    DEFAULT_LOOKBACK,
    LOGS,
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
    """
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"{VENDOR}: page_limit must be 1 to {MAX_PAGE_LIMIT}, not {page_limit}")
    url = base_url_for(base_url, region)
    client = trend_client(url, api_key)
    default_tenant = tenant or urlsplit(url).hostname or "cloudone"
    lookback = timedelta(minutes=lookback_minutes)

    @dlt.resource(
        name="audit_logs",
        write_disposition=WRITE_DISPOSITION,
        primary_key=PRIMARY_KEY,
        columns=COLUMNS,
    )
    def audit_logs() -> Iterator[pa.Table]:
        # {tenant: RFC 3339 time of its newest loaded event}; committed with a successful load.
        marks: dict[str, str] = dlt.current.resource_state().setdefault("high_water", {})
        walk = _Walk(client, page_limit, {t: parse_time(v) for t, v in marks.items()}, lookback)
        batch = LogBatch(default_tenant)
        for page, observed_at in walk.pages():
            walk.see([batch.add(record, observed_at) for record in page])
            if batch.size >= BATCH_ROWS:
                yield batch.take()
        if batch.size:
            yield batch.take()
        for name, newest in walk.newest.items():
            if name not in marks or parse_time(marks[name]) < newest:
                marks[name] = newest.isoformat()
        logger.info(
            "%s %s: read %d pages, %d events (%d tenants); stopped at %s",
            VENDOR,
            LOGS,
            walk.pages_read,
            walk.events_read,
            len(walk.newest),
            walk.stop_reason,
        )

    return audit_logs


class _Walk:
    """One cursor walk over the log, and the decision to stop it early."""

    def __init__(
        self,
        client: VendorClient,
        page_limit: int,
        loaded: dict[str, datetime],
        lookback: timedelta,
    ) -> None:
        self.client = client
        self.page_limit = page_limit
        self.loaded = loaded  # tenant -> newest event loaded by earlier runs
        # Every event older than this was visible to an earlier, completed walk.
        self.cutoff = min(loaded.values()) - lookback if loaded else None
        self.order = OrderWatch()
        self.newest: dict[str, datetime] = {}  # tenant -> newest event of this walk
        self.new_tenant = False
        self.pages_read = self.events_read = 0
        self.stop_reason = "the last page (no `next`)"
        self._stop = False

    def pages(self) -> Iterator[tuple[list[dict[str, Any]], datetime]]:
        """Each page's logs and the vendor's time (`Date`), until the end or a safe stop."""
        params: dict[str, Any] = {"limit": self.page_limit}
        cursors: set[str] = set()
        while not self._stop:
            response = self.client.get(LOGS, params=params)
            body = response.json()
            self.pages_read += 1
            yield require_records(body, "logs", VENDOR, LOGS), server_time(response)
            cursor = body.get("next")
            if cursor is None or cursor == "":
                break
            if not isinstance(cursor, str) or cursor in cursors:
                raise MalformedResponseError(
                    f"{VENDOR}: {LOGS} returned a `next` cursor that is not a new string"
                )
            cursors.add(cursor)
            params = {"limit": self.page_limit, "cursor": cursor}

    def see(self, page: list[tuple[str, str, datetime]]) -> None:
        """Take in one page's (tenant, id, time) triples; decide whether the walk may stop."""
        self.events_read += len(page)
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
            and self.order.newest_first
            and max(moment for _, _, moment in page) < self.cutoff
        ):
            self._stop = True
            self.stop_reason = f"page {self.pages_read}: newest first and older than {self.cutoff}"
