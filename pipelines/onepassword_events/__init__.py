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

Each page becomes an Arrow table, passed to dlt in batches, so dlt loads it without per-row
normalisation. A page's items arrive as the JSON text the vendor sent (see `client`): each is
parsed (by msgspec, which keeps integers of any size) for its columns, and kept as it came in
`raw`. Documented fields become typed, flattened columns; a value that does not fit its column
(another type, a number too big for BIGINT) is left null there and kept whole in `raw`; keys the
contract does not name become text columns.

Talking to the API (requests, rate limits, the token check, the cursor pagination and its
guards) is in `client`; endpoints, limits and columns in `settings`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import dlt
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource

from pipelines.arrow import ARROW_TYPES, json_text, unknown_columns
from pipelines.vendor_http import MalformedResponseError, VendorHTTPError, parse_utc, server_time

from .client import TokenCheck, event_pages, onepassword_client, reset_body
from .settings import (
    ADDED_FIELDS,
    BATCH_ROWS,
    DEFAULT_PAGE_LIMIT,
    EVENT_DISPOSITION,
    FIELDS,
    MAX_EVENTS_PER_LOAD,
    MAX_PAGE_LIMIT,
    PRIMARY_KEY,
    RATE_LIMITS,
    REQUIRED,
    RETENTION,
    TABLES,
    VENDOR,
    table_columns,
)

logger = logging.getLogger(__name__)

TIMESTAMP = ARROW_TYPES["timestamp"]
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)
_EMPTY: dict[str, Any] = {}
# Per table: the top-level keys the contract names, and the column names already in use.
_TOP_LEVEL = {table: {path.partition(".")[0] for _, path, _ in FIELDS[table]} for table in FIELDS}
_TAKEN = {
    table: {column for column, _, _ in FIELDS[table]} | {column for column, _ in ADDED_FIELDS}
    for table in FIELDS
}


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


# -- a page of events as an Arrow table ----------------------------------------------------------
def new_event_mask(uuids: list[Any], uuids_read: set[str]) -> list[bool] | None:
    """Which of `uuids` are not in `uuids_read` (which then holds them all), or None when all
    are new: an event delivered twice in one run is loaded once. Nulls count as new (to be
    rejected later)."""
    keep = []
    for uuid in uuids:
        keep.append(uuid is None or uuid not in uuids_read)
        if uuid is not None:
            uuids_read.add(uuid)
    return None if all(keep) else keep


def arrow_schema(table: str, extra: Sequence[pa.Field] = ()) -> pa.Schema:
    """The Arrow schema of `table`'s contract and added columns, then `extra`."""
    columns = [(column, kind) for column, _, kind in FIELDS[table]] + list(ADDED_FIELDS)
    fields = [
        pa.field(column, ARROW_TYPES[kind], nullable=column not in REQUIRED)
        for column, kind in columns
    ]
    return pa.schema([*fields, *extra])


def events_to_arrow(
    table: str,
    items: list[msgspec.Raw],
    uuids_read: set[str],
    *,
    tenant: str,
    observed_at: datetime,
    endpoint: str,
) -> pa.Table:
    """One page's items (their JSON text) as a typed Arrow table of the events whose `uuid` is
    not in `uuids_read` (which then holds them): the documented fields flattened into columns,
    unknown top-level keys as text columns (`unknown_columns`), the item's text as `raw`."""
    raws = [bytes(item) for item in items]
    objects = [msgspec.json.decode(raw) for raw in raws]  # each an object: the paginator checked
    arrays = _documented_columns(table, objects)
    names = [column for column, _, _ in FIELDS[table]]
    keep = new_event_mask(arrays[names.index("uuid")].to_pylist(), uuids_read)
    if keep is not None:
        mask = pa.array(keep)
        arrays = [array.filter(mask) for array in arrays]
        raws = list(itertools.compress(raws, keep))
        objects = list(itertools.compress(objects, keep))
    for name in ("uuid", "timestamp"):  # required: the merge key and the day an event counts for
        missing = arrays[names.index(name)].null_count
        if missing:
            raise MalformedResponseError(
                f"{VENDOR}: {endpoint} returned {missing} item(s) without a valid {name!r}"
            )
    count = len(raws)
    timestamps = arrays[names.index("timestamp")]
    arrays += [
        pa.repeat(pa.scalar(tenant, pa.string()), count),
        pc.cast(timestamps, pa.date32()),
        pa.repeat(pa.scalar(observed_at, TIMESTAMP), count),
        pa.array(raws, pa.binary()).cast(pa.string()),
    ]
    extra_fields, extra_arrays = unknown_columns(
        objects, _TOP_LEVEL[table], _TAKEN[table], f"{VENDOR}: {endpoint}"
    )
    schema = arrow_schema(table, extra_fields)
    return pa.Table.from_arrays([*arrays, *extra_arrays], schema=schema)


def _documented_columns(table: str, items: list[dict[str, Any]]) -> list[pa.Array]:
    """The documented columns of `items`, each value coerced to its column's type."""
    nested: dict[str, list[dict[str, Any]]] = {}

    def values(path: str) -> list[Any]:
        head, _, key = path.partition(".")
        if not key:
            return [item.get(head) for item in items]
        if head not in nested:
            nested[head] = [_as_dict(item.get(head)) for item in items]
        return [parent.get(key) for parent in nested[head]]

    return [_to_array(values(path), kind) for _, path, kind in FIELDS[table]]


def combine(tables: list[pa.Table]) -> pa.Table | list[pa.Table]:
    """The pages' tables as one (columns only some pages have are null elsewhere), or the list
    as it is when an unknown column changed type between pages."""
    try:
        return pa.concat_tables(tables, promote_options="default")
    except _ARROW_ERRORS:
        return tables


def empty_events_table(table: str) -> pa.Table:
    """A table with `table`'s columns and no rows: loading it creates the table."""
    return arrow_schema(table).empty_table()


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def _to_array(values: list[Any], kind: str) -> pa.Array:
    """`values` as an Arrow array of `kind`; values of another type are coerced, or left null
    when they cannot be (the item's `raw` keeps them)."""
    if kind == "timestamp":
        return _timestamps(values)
    try:
        return pa.array(values, ARROW_TYPES[kind])
    except _ARROW_ERRORS:
        coerce = {"text": json_text, "bigint": _integer, "double": _number}[kind]
        return pa.array([coerce(value) for value in values], ARROW_TYPES[kind])


def _timestamps(values: list[Any]) -> pa.Array:
    texts = _to_array(values, "text")
    for unit in ("us", "ns"):  # nanosecond precision parses as ns, then truncates to us
        try:
            return pc.cast(pc.cast(texts, pa.timestamp(unit, tz="UTC")), TIMESTAMP, safe=False)
        except _ARROW_ERRORS:
            continue
    return pa.array([_parse_timestamp(value) for value in texts.to_pylist()], TIMESTAMP)


def _parse_timestamp(value: str | None) -> datetime | None:
    try:
        return parse_utc(value)
    except ValueError:
        return None


def _integer(value: Any) -> int | None:
    """`value` as a BIGINT, or None when it is not a whole number or does not fit one."""
    if isinstance(value, bool):
        return None
    whole = isinstance(value, float) and value.is_integer()
    if whole or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        value = int(value)
    return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
