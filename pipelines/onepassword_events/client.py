"""1Password Events API client: everything about talking to the API. dlt's REST client held
under 1Password's rate limits, the token check (`introspect`) that says which event types the
token may read, and the cursor pagination of an events endpoint.

The pagination is a POST whose first body resets the cursor (`{limit, start_time}`) or continues
a stored one (`{cursor}`), then `{"cursor": <from the last response>}` only, until a response
says `has_more: false`. dlt's `JSONResponseCursorPaginator` reads `cursor` and `has_more` and puts
the cursor in the body; `EventsCursorPaginator` keeps the contract's bodies and guards against
two ways a vendor (or a cache in front of it) can lose or stall the pagination: a page made only
of events this run has already read is asked for again a few times, then the run fails (taking
it would skip the page its cursor stands for); a long run of empty pages that each say
`has_more` fails the run instead of being followed forever. A page's items are kept as the JSON
text the vendor sent (`msgspec.Raw`): the body is scanned, not turned into Python objects.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import PageData
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import PreparedRequest, Request, Response

from pipelines.vendor_http import (
    BoundedAdapter,
    Deadline,
    MalformedResponseError,
    VendorClient,
    VendorError,
    require,
    server_time,
)

from .settings import INTROSPECT, MAX_EMPTY_PAGES, REPEATED_PAGE_WAITS, SECRET_HINT, VENDOR

logger = logging.getLogger(__name__)


class WaitPastDeadline(Exception):
    """A request's wait for the rate limits would end past the run's deadline (says why)."""


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

    def acquire(self, deadline: Deadline | None = None) -> list[float | None]:
        """Wait until a request fits every window; returns its slot, for `done`. Raises
        `WaitPastDeadline` instead of waiting when the wait would end past `deadline`."""
        lock_timeout = -1 if deadline is None else max(deadline.remaining(), 0)
        if not self._lock.acquire(timeout=lock_timeout):  # another request of the token is waiting
            raise WaitPastDeadline("another request was still waiting for the rate limits")
        try:
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
                if deadline is not None and wait >= deadline.remaining():
                    raise WaitPastDeadline(f"the rate limits asked for a wait of {wait:.0f} s")
                if wait >= 1:
                    logger.info("%s: waiting %.1f s to stay within the rate limits", VENDOR, wait)
                self._sleep(wait)
            slot: list[float | None] = [None]
            self._sent.append(slot)
            return slot
        finally:
            self._lock.release()

    def done(self, slot: list[float | None]) -> None:
        """Mark the request of `slot` answered (or failed) now."""
        slot[0] = self._clock()


class RateLimitedAdapter(BoundedAdapter):
    """A transport adapter that passes every request of `client`, retries included, through a
    limiter, within the client's deadline (each response bounded in time as the shared
    client's are)."""

    def __init__(self, limiter: SlidingWindowLimiter, client: VendorClient) -> None:
        super().__init__()
        self.limiter = limiter
        self.client = client

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Send `request` once the limiter lets it go, its timeouts cut to what the wait left
        of the deadline; a wait that would outlast the deadline fails the run instead."""
        try:
            slot = self.limiter.acquire(self.client.deadline)
        except WaitPastDeadline as exc:
            raise self.client.deadline_error(request, str(exc)) from None
        if isinstance(timeout := kwargs.get("timeout"), tuple):
            left = self.client.deadline.remaining()
            kwargs["timeout"] = tuple(min(part, left) for part in timeout)
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
    (the runs of a backfill, each scheduled load) counts against the same windows, as the
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
    adapter = RateLimitedAdapter(shared_limiter(base_url, token, rate_limits), client)
    client.session.mount("https://", adapter)
    client.session.mount("http://", adapter)
    return client


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


class TokenCheck:
    """The token's introspection, asked once for a run of the source however many event types
    read: the first caller asks, the others get its answer, or its error."""

    def __init__(self, client: VendorClient) -> None:
        self._client = client
        self._answer: Introspection | None = None
        self._error: BaseException | None = None

    def result(self) -> Introspection:
        """What the token may read (raises the check's error, for every caller)."""
        if self._answer is None and self._error is None:
            try:
                self._answer = introspect(self._client)
            except Exception as exc:
                self._error = exc
                raise
            features = ", ".join(sorted(self._answer.features))
            logger.info("%s: the token reads %s", VENDOR, features)
        if self._error is not None:
            raise self._error
        return self._answer


# -- the cursor pagination of an events endpoint -------------------------------------------------
class EventsPage(msgspec.Struct):
    """An events response as `decode_events_page` reads it: other keys are skipped."""

    cursor: Any = msgspec.UNSET
    has_more: Any = msgspec.UNSET
    items: list[msgspec.Raw] | None = None  # each item's JSON text, unparsed


class EventId(msgspec.Struct):
    """An item's `uuid` (its other keys are skipped)."""

    uuid: Any = None


_PAGE_DECODER = msgspec.json.Decoder(EventsPage)
_IDS_DECODER = msgspec.json.Decoder(msgspec.defstruct("EventIds", [("items", list[EventId])]))


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


class EventsCursorPaginator(JSONResponseCursorPaginator):
    """The pages of one events endpoint (see the module). `cursor` is always the position to
    continue from in the next run; `uuids_read` holds the uuids this run has read from the
    endpoint (the caller adds each page's)."""

    def __init__(self, endpoint: str, first_body: dict[str, Any], uuids_read: set[str]) -> None:
        super().__init__(cursor_path="cursor", cursor_body_path="cursor", has_more_path="has_more")
        self.endpoint = endpoint
        self.first_body = first_body
        self.uuids_read = uuids_read
        self._next_reference = first_body.get("cursor")
        self.empty_pages = 0  # in a row, each with has_more
        self.repeated_pages = 0  # in a row, each of events already read

    @property
    def cursor(self) -> str | None:
        """Where the next run continues (None until a response names a cursor)."""
        return self._next_reference

    def init_request(self, request: Request) -> None:
        request.json = dict(self.first_body)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()
        require(body, "cursor", str, VENDOR, self.endpoint)
        previous = self.cursor
        if self._only_events_already_read(response, data):
            self._next_reference = previous  # ask for the same page again
            return
        super().update_state(response, data)
        if data:
            self.empty_pages = 0
        elif self.has_next_page and self.cursor == previous:
            logger.warning(
                "%s: %s answered has_more with an unchanged cursor and no items; stopping here",
                VENDOR,
                self.endpoint,
            )
            self._has_next_page = False
        elif self.has_next_page:
            self.empty_pages += 1
            if self.empty_pages >= MAX_EMPTY_PAGES:
                raise VendorError(
                    f"{VENDOR}: {self.endpoint} answered {self.empty_pages} empty pages in a "
                    "row, each saying has_more with a new cursor; stopped following it (the "
                    "next run continues from the last cursor that brought events)"
                )

    def _only_events_already_read(self, response: Response, data: list[Any] | None) -> bool:
        """Whether the page holds only events this run has read (waits before it is asked for
        again); raises a `VendorError` once the retries are used up."""
        if not data:
            return False
        try:
            ids = _IDS_DECODER.decode(response.content).items
        except msgspec.ValidationError:
            raise MalformedResponseError(
                f"{VENDOR}: {self.endpoint} 'items' is not a list of objects"
            ) from None
        if not all(item.uuid in self.uuids_read for item in ids):
            self.repeated_pages = 0
            return False
        if self.repeated_pages >= len(REPEATED_PAGE_WAITS):
            raise VendorError(
                f"{VENDOR}: {self.endpoint} served a page of only events this run had already "
                f"read {self.repeated_pages + 1} times in a row (a stale cache in front of the "
                "vendor?); stopped, as taking it would skip the page its cursor stands for"
            )
        wait = REPEATED_PAGE_WAITS[self.repeated_pages]
        self.repeated_pages += 1
        logger.warning(
            "%s: %s served a page of only events this run had already read; asking for it "
            "again in %g s",
            VENDOR,
            self.endpoint,
            wait,
        )
        time.sleep(wait)
        return True

    def update_request(self, request: Request) -> None:
        request.json = {}  # a continuing body holds the cursor only
        super().update_request(request)

    def _handle_missing_has_more(self, response_json: dict[str, Any]) -> None:
        raise MalformedResponseError(f"{VENDOR}: {self.endpoint} response lacks 'has_more'")

    def _handle_invalid_has_more(self, has_more: Any) -> None:
        raise MalformedResponseError(
            f"{VENDOR}: {self.endpoint} response's 'has_more' is {type(has_more).__name__}, "
            "not a boolean"
        )


def event_pages(
    client: VendorClient, endpoint: str, first_body: dict[str, Any], uuids_read: set[str]
) -> tuple[EventsCursorPaginator, Iterator[PageData[Any]]]:
    """The paginator of `endpoint`'s pages from `first_body` on, and those pages: each
    the page's items as JSON text (`page.response.json()` is `decode_events_page`'s)."""
    paginator = EventsCursorPaginator(endpoint, first_body, uuids_read)
    pages = client.paginate(
        endpoint,
        method="POST",
        paginator=paginator,
        data_selector="items",
        decode=decode_events_page,
    )
    return paginator, pages


def reset_body(limit: int, start: datetime) -> dict[str, Any]:
    """The first body of a pagination that starts at `start` (RFC 3339 UTC to the second)."""
    return {"limit": limit, "start_time": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
