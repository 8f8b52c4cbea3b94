"""The cursor pagination of a 1Password events endpoint.

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

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from dlt.sources.helpers.rest_client.client import PageData
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Request, Response

from pipelines.vendor_http import MalformedResponseError, VendorClient, VendorError, require

from .settings import MAX_EMPTY_PAGES, REPEATED_PAGE_WAITS, VENDOR

logger = logging.getLogger(__name__)


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
