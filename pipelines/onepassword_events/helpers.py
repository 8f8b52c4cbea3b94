"""1Password Events API HTTP details: the client with its rate limiter, the POST cursor
paginator, token introspection, and the conversion of a page of items into an Arrow table.

A page's items are kept as the JSON text the vendor sent (`msgspec.Raw`: the body is only
scanned, not turned into Python objects) and parsed once, by Arrow's JSON reader, into typed
columns; that text is also each event's `raw`. Only a page Arrow cannot take as documented (an
unknown key, a value of another type) is parsed into Python objects, to coerce it."""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import PreparedRequest, Request, Response
from requests.adapters import HTTPAdapter

from pipelines.arrow import ARROW_TYPES, json_text, unknown_columns
from pipelines.vendor_http import (
    MalformedResponseError,
    VendorClient,
    parse_utc,
    require,
    server_time,
)

from .settings import ADDED_FIELDS, FIELDS, INTROSPECT, REQUIRED, SECRET_HINT, VENDOR

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


# -- the client -----------------------------------------------------------------------------------
class SlidingWindowLimiter:
    """At most `limit` requests in any `window` seconds, for each (limit, window): `acquire`
    blocks until one more request fits, `done` marks when its answer came back. Windows are
    measured from answers, not sends: the vendor saw a request no later than its answer, so a
    slow request never lets the next ones crowd into the vendor's window. Thread-safe."""

    MARGIN = 0.05  # seconds added to each wait, for clock granularity

    def __init__(
        self,
        limits: Sequence[Sequence[float]],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = [(int(limit), float(window)) for limit, window in limits]
        if any(limit < 1 or window <= 0 for limit, window in self.limits):
            raise ValueError(f"{VENDOR}: rate limits must be positive (requests, seconds) pairs")
        self._clock = clock
        self._sleep = sleep
        # One slot per request, oldest first: [time its answer came back], or [None] in flight.
        self._sent: deque[list[float | None]] = deque(
            maxlen=max((lim for lim, _ in self.limits), default=1)
        )
        self._lock = threading.Lock()

    def acquire(self) -> list[float | None]:
        """Wait until a request fits every window; returns its slot, for `done`."""
        with self._lock:
            while True:
                now = self._clock()
                wait = 0.0
                for limit, window in self.limits:
                    if len(self._sent) >= limit:
                        (answered,) = self._sent[-limit]
                        if answered is None:  # still in flight: look again shortly
                            wait = max(wait, self.MARGIN)
                        else:
                            wait = max(wait, answered + window + self.MARGIN - now)
                if wait <= 0:
                    break
                if wait >= 1:
                    logger.info("%s: waiting %.1f s to stay within the rate limits", VENDOR, wait)
                self._sleep(wait)
            slot: list[float | None] = [None]
            self._sent.append(slot)
            return slot

    def done(self, slot: list[float | None]) -> None:
        """Mark the request of `slot` answered (or failed) now."""
        slot[0] = self._clock()


class RateLimitedAdapter(HTTPAdapter):
    """A transport adapter that passes every request, retries included, through a limiter."""

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Send `request` once the limiter lets it go."""
        slot = self.limiter.acquire()
        try:
            return super().send(request, *args, **kwargs)
        finally:
            self.limiter.done(slot)


_LIMITERS: dict[tuple[str, str, tuple[tuple[float, ...], ...]], SlidingWindowLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    base_url: str, token: str, rate_limits: Sequence[Sequence[float]]
) -> SlidingWindowLimiter:
    """The process's limiter for one token at one host: every run of the source in this process
    (the parts of a backfill, each scheduled load) counts against the same windows, as the
    vendor does."""
    digest = hashlib.sha256(token.encode()).hexdigest()  # the token itself is not kept here
    key = (base_url.rstrip("/"), digest, tuple(tuple(window) for window in rate_limits))
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = SlidingWindowLimiter(rate_limits)
        return _LIMITERS[key]


def onepassword_client(
    base_url: str, token: str, rate_limits: Sequence[Sequence[float]]
) -> VendorClient:
    """A client sending `Authorization: Bearer <token>`, held under `rate_limits` (shared with
    every other client of this token in the process)."""
    if not token:
        raise ValueError(f"{VENDOR}: no bearer token configured; set {SECRET_HINT}")
    client = VendorClient(base_url, BearerTokenAuth(token), VENDOR, SECRET_HINT)
    adapter = RateLimitedAdapter(shared_limiter(base_url, token, rate_limits))
    client.session.mount("https://", adapter)
    client.session.mount("http://", adapter)
    return client


# -- protocol -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Introspection:
    """What `GET /api/v2/auth/introspect` says about the token."""

    features: frozenset[str]
    account_uuid: str | None
    server_now: datetime  # the vendor's clock (`Date` header)


def introspect(client: VendorClient) -> Introspection:
    """Ask which features (event types) the token may read, and for which account."""
    response = client.get(INTROSPECT)
    body = response.json()
    features = require(body, "features", list, VENDOR, INTROSPECT)
    account = body.get("account_uuid")
    return Introspection(
        features=frozenset(str(feature).lower() for feature in features),
        account_uuid=account if isinstance(account, str) and account else None,
        server_now=server_time(response),
    )


class EventsCursorPaginator(BasePaginator):
    """1Password's POST cursor protocol: the first body is a reset (`{limit, start_time}`) or a
    stored `{cursor}`, every later body is `{"cursor": <from the last response>}` only; stop when
    `has_more` is not true. `cursor` always holds the position to continue from next run."""

    def __init__(self, first_body: dict[str, Any], endpoint: str) -> None:
        super().__init__()
        self.first_body = first_body
        self.endpoint = endpoint
        self.cursor: str | None = first_body.get("cursor")

    def init_request(self, request: Request) -> None:
        request.json = dict(self.first_body)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()
        cursor = require(body, "cursor", str, VENDOR, self.endpoint)
        has_more = body.get("has_more") is True
        if has_more and cursor == self.cursor and not page_items(body):
            logger.warning(
                "%s: %s answered has_more with an unchanged cursor and no items; stopping here",
                VENDOR,
                self.endpoint,
            )
            has_more = False
        self.cursor = cursor
        self._has_next_page = has_more

    def update_request(self, request: Request) -> None:
        request.json = {"cursor": self.cursor}


class EventsPage(msgspec.Struct):
    """An events response as `decode_events_page` reads it: other keys are skipped."""

    cursor: Any = msgspec.UNSET
    has_more: Any = msgspec.UNSET
    items: list[msgspec.Raw] | None = None  # each item's JSON text, unparsed


_PAGE_DECODER = msgspec.json.Decoder(EventsPage)


def decode_events_page(content: bytes) -> dict[str, Any]:
    """An events response body as `{cursor, has_more, items}` (those present), with `items` a
    list of each item's JSON text (`msgspec.Raw`); raises `msgspec.DecodeError` on a body that
    is not JSON or whose `items` is not a list."""
    page = _PAGE_DECODER.decode(content)
    return {
        key: value
        for key, value in zip(page.__struct_fields__, msgspec.structs.astuple(page), strict=True)
        if value is not msgspec.UNSET
    }


def event_pages(
    client: VendorClient, endpoint: str, first_body: dict[str, Any]
) -> tuple[EventsCursorPaginator, Iterator[Any]]:
    """The paginator of a walk of `endpoint` that starts with `first_body`, and its pages (each
    response's `json()` is `decode_events_page`'s)."""
    paginator = EventsCursorPaginator(first_body, endpoint)
    pages = client.paginate(
        endpoint,
        method="POST",
        paginator=paginator,
        data_selector="$",
        decode=decode_events_page,
    )
    return paginator, pages


def page_items(body: dict[str, Any]) -> list[msgspec.Raw]:
    """The page's items, as JSON text (absent or null: none)."""
    return body.get("items") or []


class EventBudget:
    """The events one run hands to dlt, counted across the resources that fetch side by side:
    `reached` says whether `pending` more would meet the run's limit. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def spend(self, rows: int) -> None:
        """Count `rows` handed over."""
        with self._lock:
            self.spent += rows

    def reached(self, pending: int = 0) -> bool:
        """Whether the rows handed over, and `pending` more, meet the limit."""
        return self.spent + pending >= self.limit


def first_sightings(uuids: list[Any], seen: set[str]) -> list[bool] | None:
    """Which of `uuids` are not in `seen` (which learns them), or None when all are new: an
    event delivered twice in one run is loaded once. Nulls count as new (to be rejected
    later)."""
    keep = []
    for uuid in uuids:
        keep.append(uuid is None or uuid not in seen)
        if uuid is not None:
            seen.add(uuid)
    return None if all(keep) else keep


def rfc3339(moment: datetime) -> str:
    """`moment` as RFC 3339 UTC to the second, as the reset body takes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- items → Arrow --------------------------------------------------------------------------------
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
    seen: set[str],
    *,
    tenant: str,
    observed_at: datetime,
    endpoint: str,
) -> pa.Table:
    """One page's items (their JSON text) as a typed Arrow table of the events whose `uuid` is
    not in `seen` (which learns them): the documented fields flattened into columns, unknown
    top-level keys as text columns (`unknown_columns`), the item's text as `raw`."""
    raws = [bytes(item) for item in items]
    objects: list[dict[str, Any]] | None = None
    try:
        arrays = _documented_columns_fast(table, raws)
    except _ARROW_ERRORS:  # an unknown key, a value of another type: coerce field by field
        objects = [orjson.loads(raw) for raw in raws]
        if not all(isinstance(item, dict) for item in objects):
            raise MalformedResponseError(
                f"{VENDOR}: {endpoint} 'items' is not a list of objects"
            ) from None
        arrays = _documented_columns(table, objects)
    names = [column for column, _, _ in FIELDS[table]]
    keep = first_sightings(arrays[names.index("uuid")].to_pylist(), seen)
    if keep is not None:
        mask = pa.array(keep)
        arrays = [array.filter(mask) for array in arrays]
        raws = list(itertools.compress(raws, keep))
        if objects is not None:
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
    extra_fields, extra_arrays = (  # the fast path took only pages without unknown keys
        ([], [])
        if objects is None
        else unknown_columns(objects, _TOP_LEVEL[table], _TAKEN[table], f"{VENDOR}: {endpoint}")
    )
    schema = arrow_schema(table, extra_fields)
    return pa.Table.from_arrays([*arrays, *extra_arrays], schema=schema)


def _nested_schema(table: str) -> pa.Schema:
    """The documented fields of `table` as the items nest them (what the JSON reader expects)."""
    top: dict[str, Any] = {}
    for _, path, kind in FIELDS[table]:
        head, _, key = path.partition(".")
        if key:
            top.setdefault(head, []).append(pa.field(key, ARROW_TYPES[kind]))
        else:
            top[head] = ARROW_TYPES[kind]
    return pa.schema(
        [(name, pa.struct(kind) if isinstance(kind, list) else kind) for name, kind in top.items()]
    )


_JSON_OPTIONS = {
    table: pajson.ParseOptions(
        explicit_schema=_nested_schema(table), unexpected_field_behavior="infer"
    )
    for table in FIELDS
}


def _documented_columns_fast(table: str, raws: list[bytes]) -> list[pa.Array]:
    """The documented columns parsed by Arrow's JSON reader from the items' JSON (one a line);
    raises an Arrow error when a value does not have the documented type, an item is not an
    object, or an item has a top-level key the contract does not name."""
    data = b"\n".join(raws)
    options = pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
    parsed = pajson.read_json(pa.BufferReader(data), options, _JSON_OPTIONS[table])
    if parsed.num_rows != len(raws):  # an item written over several lines
        raise pa.ArrowInvalid("items are not one a line")
    if not _TOP_LEVEL[table].issuperset(parsed.schema.names):
        raise pa.ArrowInvalid("unknown top-level keys")
    parsed = parsed.flatten()
    return [parsed.column(path).combine_chunks() for _, path, _ in FIELDS[table]]


def _documented_columns(table: str, items: list[dict[str, Any]]) -> list[pa.Array]:
    """The documented columns extracted in Python, each value coerced to its column's type."""
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
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
