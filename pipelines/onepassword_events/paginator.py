"""The cursor pagination of a 1Password events endpoint.

The pagination is a POST whose first body resets the cursor (`{limit, start_time}`) or continues
a stored one (`{cursor}`), then `{"cursor": <from the last response>}` only, until a response
says `has_more: false`. dlt's `JSONResponseCursorPaginator` reads `cursor` and `has_more` and puts
the cursor in the body; `EventsCursorPaginator` keeps the contract's bodies and guards against
two ways a vendor (or a cache in front of it) can lose or stall the pagination: a page made only
of events this run has already read is asked for again a few times, then the run fails (taking
it would skip the page its cursor stands for); a long run of empty pages that each say
`has_more` fails the run instead of being followed forever. A page's items are kept as the JSON
text the vendor sent (`msgspec.Raw`): the body is scanned, not turned into Python objects. An
event read twice in one run is passed on once (the merge trusts each load to hold an event
once). A stored cursor the vendor refuses (HTTP 400) starts the pagination again from its reset
body.

`PagesAhead` reads an endpoint's pages in a thread of its own, a few pages ahead of the caller:
a round trip to a distant vendor takes longer than turning a page into a table, and one such
thread per event type lets the types' round trips overlap, as cursor order allows only one
request at a time per type.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import msgspec
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Request, Response

from pipelines.arrow import json_text
from pipelines.vendor_http import (
    MalformedResponseError,
    VendorClient,
    VendorError,
    VendorHTTPError,
    require,
    server_time,
)

from .settings import MAX_EMPTY_PAGES, REPEATED_PAGE_WAITS, VENDOR

logger = logging.getLogger(__name__)


class EventsResponse(msgspec.Struct):
    """An events response as `decode_events_page` reads it: other keys are skipped."""

    cursor: Any = msgspec.UNSET
    has_more: Any = msgspec.UNSET
    items: list[msgspec.Raw] | None = None  # each item's JSON text, unparsed


class EventId(msgspec.Struct):
    """An item's `uuid` (its other keys are skipped)."""

    uuid: Any = None


_PAGE_DECODER = msgspec.json.Decoder(EventsResponse)
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
    continue from in the next run; `new_items` says which of the last page's items this run had
    not read before (`uuids_read` then holds them all)."""

    def __init__(self, endpoint: str, first_body: dict[str, Any]) -> None:
        super().__init__(cursor_path="cursor", cursor_body_path="cursor", has_more_path="has_more")
        self.endpoint = endpoint
        self.first_body = first_body
        self.uuids_read: set[str] = set()
        self.new_items: list[bool] = []
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
        uuids = self._uuids(response) if data else []
        if uuids and all(uuid in self.uuids_read for uuid in uuids):
            self._wait_before_asking_again()
            self.new_items = [False] * len(uuids)
            self._next_reference = previous  # ask for the same page again
            return
        self.repeated_pages = 0
        self.new_items = self._take_new(uuids)
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

    def _uuids(self, response: Response) -> list[str | None]:
        """The page's items' uuids, as their column holds them."""
        try:
            ids = _IDS_DECODER.decode(response.content).items
        except msgspec.ValidationError:
            raise MalformedResponseError(
                f"{VENDOR}: {self.endpoint} 'items' is not a list of objects"
            ) from None
        return [json_text(item.uuid) for item in ids]

    def _take_new(self, uuids: list[str | None]) -> list[bool]:
        """Which of `uuids` are not in `uuids_read`, which then holds them all (no uuid counts as
        new, for the conversion to reject)."""
        new = []
        for uuid in uuids:
            new.append(uuid is None or uuid not in self.uuids_read)
            if uuid is not None:
                self.uuids_read.add(uuid)
        return new

    def _wait_before_asking_again(self) -> None:
        """Wait before a page of only events this run has read is asked for again; raises a
        `VendorError` once the retries are used up."""
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


@dataclass(frozen=True)
class EventsPage:
    """One page of an events endpoint, as read."""

    items: list[msgspec.Raw]  # the JSON text of each event this run had not read before
    observed_at: datetime  # the vendor's clock when it served the page
    cursor: str | None  # where the next run continues once this page is loaded
    has_more: bool


def event_pages(
    client: VendorClient, endpoint: str, stored_cursor: str | None, reset: dict[str, Any]
) -> Generator[EventsPage, None, None]:
    """`endpoint`'s pages from `stored_cursor` on, or from `reset` (a first body) when there is
    none or the vendor refuses it (HTTP 400: e.g. a cursor kept through a long pause)."""
    if stored_cursor:
        pages = _read_pages(client, endpoint, {"cursor": stored_cursor})
        try:
            head = next(pages)
        except VendorHTTPError as exc:
            if exc.response is None or exc.response.status_code != 400:
                raise
            logger.warning(
                "%s: %s refused the stored cursor (HTTP 400); reading again from %s (the "
                "merge keeps the events loaded before once)",
                VENDOR,
                endpoint,
                reset["start_time"],
            )
        else:
            yield head
            yield from pages
            return
    yield from _read_pages(client, endpoint, reset)


def _read_pages(
    client: VendorClient, endpoint: str, first_body: dict[str, Any]
) -> Generator[EventsPage, None, None]:
    paginator = EventsCursorPaginator(endpoint, first_body)
    for data in client.paginate(
        endpoint,
        method="POST",
        paginator=paginator,
        data_selector="items",
        decode=decode_events_page,
    ):
        yield EventsPage(
            items=list(itertools.compress(data, paginator.new_items)),
            observed_at=server_time(data.response),
            cursor=paginator.cursor,
            has_more=paginator.has_next_page,
        )


class PagesAhead:
    """`pages` read in a thread of their own, in their order, up to `depth` ahead of the caller
    (see the module). Iterate it inside `with`, which stops the thread once its request in
    flight is answered."""

    def __init__(self, pages: Generator[EventsPage, None, None], depth: int, name: str) -> None:
        self._pages = pages
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._ahead = deque(self._read_next() for _ in range(depth))

    def _read_next(self) -> Future[EventsPage | None]:
        return self._reader.submit(next, self._pages, None)

    def ready(self) -> bool:
        """Whether the next page has arrived (taking it will not wait)."""
        return self._ahead[0].done()

    def __iter__(self) -> Iterator[EventsPage]:
        return self

    def __next__(self) -> EventsPage:
        page = self._ahead.popleft().result()  # raises what reading it raised
        if page is None:
            raise StopIteration
        self._ahead.append(self._read_next())
        return page

    def __enter__(self) -> PagesAhead:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._reader.shutdown(cancel_futures=True)
        self._pages.close()


def reset_body(limit: int, start: datetime) -> dict[str, Any]:
    """The first body of a pagination that starts at `start` (RFC 3339 UTC to the second)."""
    return {"limit": limit, "start_time": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
