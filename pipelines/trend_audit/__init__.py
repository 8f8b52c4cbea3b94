"""dlt source for Trend Micro Cloud One's Audit Log API (`GET /api/logs`, read with its cursor).

The vendor keeps a year of audit events; this source keeps them for good. Each run reads the
log page by page with the vendor's cursor (`client.py`, the only way the API offers), turns
records into rows (`AuditLogRows`) and merges them insert-only on (tenant, id), so an event
returned twice, by one read or by two, is stored once and never rewritten. A read stops before
the last page only when the pages still to come hold nothing new (`ReadProgress`).

The row keeps what the vendor sent: the contract's fields as typed columns, any other top-level
key as a text column of its own (`unknown_columns`), and the whole record as JSON text in `raw`.
What the fields mean (a principal's type and id, an API key's id and name, which events are
sign-ins) is worked out in the dbt models, once.

The vendor documents no order, no time filter and no sort, so a read may stop before the last
page only on evidence: it has shown itself newest first, it has met every tenant the API key's
last complete read met, no tenant is new, and a whole page is older than every known tenant's
high-water mark (its newest loaded event) less a lookback window. Times ahead of the vendor's
own clock (`Date`) are stored but never trusted: a bad event or a vendor clock must not move a
high-water mark past what was really read.

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
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource

from pipelines.arrow import ARROW_TYPES, json_text, unknown_columns
from pipelines.vendor_http import MalformedResponseError, parse_utc

from .client import LogPages, StoredCursorRefused, base_url_for, trend_client
from .settings import (
    BATCH_ROWS,
    COLUMNS,
    DEFAULT_LOOKBACK,
    KNOWN_KEYS,
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


# -- records as rows ----------------------------------------------------------------------------
_TIMESTAMP = ARROW_TYPES["timestamp"]
_SCHEMA = pa.schema(
    [
        pa.field(name, ARROW_TYPES[hint["data_type"]], nullable=hint.get("nullable", True))
        for name, hint in COLUMNS.items()
    ]
)


class AuditLogRows:
    """The rows of one run, each event once (a read may return an event twice, and the table is
    merged insert-only, which needs each key once per load), given out as Arrow tables."""

    def __init__(self, tenant: str | None, default_tenant: str) -> None:
        self.tenant = tenant  # when set, every record's tenant
        self.default_tenant = default_tenant  # of a record without an `accountID`
        self._collected: dict[str, set[str]] = {}  # tenant -> ids collected in this run
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in _SCHEMA.names}
        self.unknown: dict[int, dict[str, Any]] = {}  # row -> the record's keys not in the contract
        self.size = 0

    def add(self, record: dict[str, Any], observed_at: datetime) -> tuple[str, str, datetime]:
        """Collect one record unless this run has already; returns its tenant, id and time."""
        event_id = record.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise MalformedResponseError(f"{VENDOR}: {LOGS} returned a log without an id")
        moment = parse_time(record.get("time"))
        account = json_text(record.get("accountID"))
        tenant = self.tenant or account or self.default_tenant
        collected = self._collected.setdefault(tenant, set())
        if event_id in collected:
            return tenant, event_id, moment
        collected.add(event_id)
        details = record.get("details")
        columns = self.columns
        columns["tenant"].append(tenant)
        columns["id"].append(event_id)
        columns["time"].append(moment)
        columns["type"].append(json_text(record.get("type")))
        columns["description"].append(json_text(record.get("description")))
        columns["account_id"].append(account)
        columns["principal_urn"].append(json_text(record.get("principalURN")))
        # Decoded at once: orjson's bytes hold a 4 KB buffer each, the str only what it needs.
        columns["details"].append(None if details is None else orjson.dumps(details).decode())
        columns["raw"].append(orjson.dumps(record).decode())
        columns["observed_at"].append(observed_at)
        if len(record) > len(KNOWN_KEYS) or not KNOWN_KEYS.issuperset(record):
            self.unknown[self.size] = {k: v for k, v in record.items() if k not in KNOWN_KEYS}
        self.size += 1
        return tenant, event_id, moment

    def take(self) -> pa.Table:
        """The collected rows as one Arrow table; collecting starts again from empty."""
        times = pa.array(self.columns["time"], _TIMESTAMP)
        derived = {"time": times, "event_date": pc.cast(times, pa.date32())}  # UTC days
        arrays = [
            derived[field.name] if field.name in derived else pa.array(values, field.type)
            for field, values in zip(_SCHEMA, self.columns.values(), strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=_SCHEMA)
        if self.unknown:
            rows = [self.unknown.get(row, {}) for row in range(self.size)]
            for field, array in zip(
                *unknown_columns(rows, (), _SCHEMA.names, f"{VENDOR}: {LOGS}"), strict=True
            ):
                table = table.append_column(field, array)
        self._reset()
        return table


# -- what a read has met, and when it may stop --------------------------------------------------
class ReadProgress:
    """The progress of one read of the log (possibly continued over several runs).

    Args:
        high_water_marks: tenant -> newest event loaded by earlier, complete reads.
        expected_tenants: tenants the read must meet before it may stop early.
        lookback: events this much older than a high-water mark are still looked for.
        resume: `resume_state()` of the run this one continues, if any.
    """

    def __init__(
        self,
        high_water_marks: dict[str, datetime],
        expected_tenants: set[str],
        lookback: timedelta,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.high_water_marks = dict(high_water_marks)
        self.expected_tenants = expected_tenants
        self.lookback = lookback
        resume = resume or {}
        self.order = OrderWatch.from_resume_state(resume.get("order", {}))
        # tenant -> newest trusted time this read has met
        self.newest = {t: parse_time(v) for t, v in resume.get("newest", {}).items()}
        self.new_tenant = bool(resume.get("new_tenant", False))
        self.pages_read = int(resume.get("pages", 0))
        self.events_read = int(resume.get("events", 0))
        self.pages_this_run = 0
        self.events_this_run = 0
        self.cutoff: datetime | None = None  # set at the run's first page (`_set_cutoff`)
        self.rest_is_loaded = False
        self.stop_reason = "stopped at the last page (no `next`)"

    def resume_state(self) -> dict[str, Any]:
        """What the read has met, as JSON-able state for the run that continues it."""
        return {
            "order": self.order.resume_state(),
            "newest": {t: moment.isoformat() for t, moment in self.newest.items()},
            "new_tenant": self.new_tenant,
            "pages": self.pages_read,
            "events": self.events_read,
        }

    def observe_page(self, events: list[tuple[str, str, datetime]], observed_at: datetime) -> None:
        """Take in one page's (tenant, id, time) triples, served at `observed_at` by the vendor's
        clock; sets `rest_is_loaded` once the pages still to come hold nothing new."""
        if self.pages_this_run == 0:
            self._set_cutoff(observed_at)
        self.pages_this_run += 1
        self.pages_read += 1
        self.events_read += len(events)
        self.events_this_run += len(events)
        trusted = [event for event in events if event[2] <= observed_at]
        if len(trusted) < len(events):
            logger.warning(
                "%s: %s served %d events timed after its own clock (%s); stored, but not "
                "trusted to say what is loaded",
                VENDOR,
                LOGS,
                len(events) - len(trusted),
                observed_at.isoformat(),
            )
        self.order.observe([(event_id, moment) for _, event_id, moment in trusted])
        for tenant, _, moment in trusted:
            if tenant not in self.high_water_marks:
                self.new_tenant = True
            if tenant not in self.newest or self.newest[tenant] < moment:
                self.newest[tenant] = moment
        if (
            trusted
            and self.cutoff is not None
            and not self.new_tenant
            # a tenant not met yet may still have new events further on (e.g. events grouped
            # by account, each group newest first)
            and self.newest.keys() >= self.expected_tenants
            and self.order.newest_first
            and max(moment for _, _, moment in trusted) < self.cutoff
        ):
            self.rest_is_loaded = True
            self.stop_reason = (
                f"stopped at page {self.pages_read}: newest first and older than {self.cutoff}"
            )

    def _set_cutoff(self, observed_at: datetime) -> None:
        """Every event older than the cutoff was visible to an earlier, complete read. A mark
        ahead of the vendor's clock (left by a bad event before such times were distrusted)
        says nothing: its tenant counts as new, so this read goes to the last page."""
        ahead = {t for t, mark in self.high_water_marks.items() if mark > observed_at}
        for tenant in ahead:
            logger.warning(
                "%s: the high-water mark of tenant %s (%s) is ahead of the vendor's clock; "
                "reading the whole log to replace it",
                VENDOR,
                tenant,
                self.high_water_marks.pop(tenant).isoformat(),
            )
        known = self.high_water_marks.values()
        self.cutoff = min(known) - self.lookback if known else None

    def updated_marks(self) -> dict[str, datetime]:
        """The marks to store once this read has reached its end: each tenant met gets its
        newest trusted time, unless its trusted mark is newer (a mark ahead of the vendor's
        clock was dropped at the first page, so it is replaced)."""
        known = self.high_water_marks
        return {t: n for t, n in self.newest.items() if t not in known or known[t] < n}


class OrderWatch:
    """Whether a read has shown itself newest first: time never rose from one log to the next,
    and fell at least once. Logs repeated from the previous page (a page boundary that shifted
    because new events arrived during the read) are left out of the comparison."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._fell = False
        self._rose = False
        self._previous_ids: set[str] = set()

    @classmethod
    def from_resume_state(cls, state: dict[str, Any]) -> OrderWatch:
        """A watch going on from `resume_state()` of an earlier run (empty: a new read)."""
        watch = cls()
        watch._last = parse_time(state["last"]) if state.get("last") else None
        watch._fell = bool(state.get("fell", False))
        watch._rose = bool(state.get("rose", False))
        watch._previous_ids = set(state.get("previous_ids", ()))
        return watch

    def resume_state(self) -> dict[str, Any]:
        """What the watch has seen, as JSON-able state."""
        return {
            "last": self._last.isoformat() if self._last else None,
            "fell": self._fell,
            "rose": self._rose,
            "previous_ids": sorted(self._previous_ids),
        }

    def observe(self, page: list[tuple[str, datetime]]) -> None:
        """Take in one page's (id, time) pairs, in the order served."""
        for event_id, moment in page:
            if event_id in self._previous_ids:
                continue
            if self._last is not None:
                if moment > self._last:
                    self._rose = True
                elif moment < self._last:
                    self._fell = True
            self._last = moment
        self._previous_ids = {event_id for event_id, _ in page}

    @property
    def newest_first(self) -> bool:
        """True once the read has been seen to go back in time and never forward."""
        return self._fell and not self._rose


def parse_time(value: Any) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (no offset: UTC, as the vendor says)."""
    try:
        parsed = parse_utc(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise MalformedResponseError(
            f"{VENDOR}: {LOGS} returned a log whose time is not RFC 3339: {str(value)[:40]!r}"
        )
    return parsed
