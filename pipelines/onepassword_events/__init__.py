"""dlt source for 1Password Events Reporting (the Events API): sign-in attempts, item usages and
audit events, kept past the vendor's 120 days.

The token is introspected when the first resource runs (not when the source is built, so
building it makes no request): a feature the token lacks is skipped with a warning, and its table
is still created, empty. The first run resets the cursor at `start_time` (default: as far back as
retention allows); each page's cursor is kept in the resource state per tenant, so the next run
continues from where this one ended and gets the events that became visible late (1Password's
store is eventually consistent: polling by timestamp would miss them). A stored cursor the vendor
refuses (HTTP 400) starts that type again from `start_time`. The state is committed only with a
successful load; a run that dies restarts from the last good cursor. The merge on `uuid` removes
any overlap. dlt takes the three event types' batches in turn, in one thread, under one rate
limiter (fetched in threads, each thread's Arrow pages kept memory of their own). A run loads
about `max_events` (the types together) and records a backlog in its state; `posture load` runs
again until none is left.

Each page becomes an Arrow table (`arrow_tables`), passed to dlt in batches, so dlt loads it
without per-row normalisation. Talking to the API (requests, rate limits, the token check) is in
`client`; the cursor pagination and its guards in `paginator`; endpoints, limits and columns in
`settings`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from pipelines.vendor_http import VendorHTTPError, parse_utc, server_time

from .arrow_tables import combine, empty_events_table, events_to_arrow
from .client import TokenCheck, onepassword_client
from .paginator import event_pages, reset_body
from .settings import (
    BATCH_ROWS,
    DEFAULT_PAGE_LIMIT,
    EVENT_DISPOSITION,
    MAX_EVENTS_PER_LOAD,
    MAX_PAGE_LIMIT,
    PRIMARY_KEY,
    RATE_LIMITS,
    RETENTION,
    TABLES,
    VENDOR,
    table_columns,
)

logger = logging.getLogger(__name__)


@dlt.source(name="onepassword_events", section="onepassword_events", max_table_nesting=0)
def onepassword_events(
    base_url: str = dlt.config.value,
    token: str = dlt.secrets.value,
    start_time: str | datetime | None = None,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    tenant: str | None = None,
    rate_limits: Sequence[Sequence[float]] | None = None,
    max_events: int = MAX_EVENTS_PER_LOAD,
    *,
    backlog_key: str,
) -> list[DltResource]:
    """Sign-in attempts, item usages and audit events the token may read, merged on `uuid`.

    Args:
        base_url: e.g. `https://events.1password.com` (`SOURCES__ONEPASSWORD_EVENTS__BASE_URL`).
        token: the Events Reporting bearer token (`SOURCES__ONEPASSWORD_EVENTS__TOKEN`).
        start_time: where a tenant's first run starts (RFC 3339 or datetime; default: 120 days
            before the vendor's clock). Ignored once a cursor is stored.
        page_limit: items per page on a first run (1 to 1000); later runs keep the cursor's.
        tenant: a name for this 1Password account (default: its introspected `account_uuid`).
        rate_limits: (requests, seconds) windows the run stays within; default 1Password's
            600 a minute and 30,000 an hour.
        max_events: events a run loads, the types together (each type stops at its first page
            boundary past this, keeps the cursor and reports a backlog: a long backfill becomes
            several runs of flat memory, each committed on its own).
        backlog_key: the resource-state key under which a run that stopped at `max_events`
            says so (the caller runs again while it is set).
    """
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"{VENDOR}: page_limit must be from 1 to {MAX_PAGE_LIMIT}")
    if max_events < 1:
        raise ValueError(f"{VENDOR}: max_events must be at least 1, not {max_events}")
    start = _parse_start(start_time)
    client = onepassword_client(base_url, token, rate_limits or RATE_LIMITS)
    token_check = TokenCheck(client)  # asked by the first resource that runs
    budget = EventBudget(max_events)  # shared by the three types

    def events_resource(table: str) -> DltResource:
        feature, endpoint = TABLES[table]

        @dlt.resource(
            name=table,
            write_disposition=EVENT_DISPOSITION,
            primary_key=PRIMARY_KEY,
            columns=table_columns(table),
        )
        def events() -> Iterator[pa.Table | list[pa.Table]]:
            info = token_check.result()
            if feature not in info.features:
                logger.warning(
                    "%s: the token has no %r feature; skipping %s (issue a token with it to "
                    "load them)",
                    VENDOR,
                    feature,
                    table,
                )
                yield empty_events_table(table)
                return
            name = tenant or info.account_uuid or urlsplit(base_url).hostname or "1password"
            state = dlt.current.resource_state()
            cursors = state.setdefault("cursors", {})
            reset = reset_body(page_limit, start or info.server_now - RETENTION)
            stored = cursors.get(name)
            uuids_read: set[str] = set()  # the merge trusts each load to hold an event once
            paginator, pages = event_pages(
                client, endpoint, {"cursor": stored} if stored else reset, uuids_read
            )
            try:
                head = next(pages)
            except VendorHTTPError as exc:  # e.g. a cursor kept through a long pause
                if not stored or exc.response is None or exc.response.status_code != 400:
                    raise
                logger.warning(
                    "%s: %s refused the stored cursor (HTTP 400); reading again from %s (the "
                    "merge keeps the events loaded before once)",
                    VENDOR,
                    endpoint,
                    reset["start_time"],
                )
                paginator, pages = event_pages(client, endpoint, reset, uuids_read)
                head = next(pages)
            pending: list[pa.Table] = []  # pages not passed to dlt yet
            loaded = 0  # events of this type passed to dlt
            state.pop(backlog_key, None)
            for page in itertools.chain([head], pages):  # each page: its items' JSON text
                if page:
                    page_events = events_to_arrow(
                        table,
                        page,
                        uuids_read,
                        tenant=name,
                        observed_at=server_time(page.response),
                        endpoint=endpoint,
                    )
                    if page_events.num_rows:
                        pending.append(page_events)
                rows = sum(t.num_rows for t in pending)
                full = budget.reached(rows)
                # dlt's cost per yielded table is fixed and high: pass pages over in batches
                if pending and (rows >= BATCH_ROWS or full or not paginator.has_next_page):
                    yield combine(pending)
                    budget.spend(rows)
                    loaded += rows
                    pending = []
                if not pending:
                    cursors[name] = paginator.cursor  # all passed over: continue after it
                    if full and paginator.has_next_page:
                        state[backlog_key] = True
                        logger.info("%s %s: %d events loaded, more to come", VENDOR, table, loaded)
                        break

        return events

    return [events_resource(table) for table in TABLES]


class EventBudget:
    """The events one run passes to dlt, counted across its resources: `reached` says whether
    `pending` more would meet the run's limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, rows: int) -> None:
        """Count `rows` passed over."""
        self.spent += rows

    def reached(self, pending: int = 0) -> bool:
        """Whether the rows passed over, and `pending` more, meet the limit."""
        return self.spent + pending >= self.limit


def _parse_start(value: str | datetime | None) -> datetime | None:
    try:
        return parse_utc(value)
    except ValueError:
        raise ValueError(f"{VENDOR}: start_time {value!r} is not an RFC 3339 time") from None
