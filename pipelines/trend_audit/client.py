"""Trend Micro Cloud One Audit Log API client: everything about talking to the API. The audit
host, the client with the contract's headers, and `GET /api/logs` read page by page with the
vendor's cursor through dlt's cursor paginator, guarded against a vendor (or a cache in front of
it) whose pages would make a run loop, skip events or never end."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Request, Response

from pipelines.vendor_http import (
    MalformedResponseError,
    VendorClient,
    VendorHTTPError,
    require_records,
    server_time,
)

from .settings import (
    API_VERSION,
    DEFAULT_REGION,
    LOGS,
    MAX_EMPTY_PAGES_IN_A_ROW,
    REGION_URL,
    REPEATED_PAGE_RETRIES,
    REPEATED_PAGE_WAIT_SECONDS,
    SECRET_HINT,
    STALE_CURSOR_STATUSES,
    VENDOR,
)

logger = logging.getLogger(__name__)


def base_url_for(base_url: str | None, region: str | None) -> str:
    """The configured base URL, else the audit host of `region` (default us-1)."""
    return base_url or REGION_URL.format(region=region or DEFAULT_REGION)


def trend_client(base_url: str, api_key: str) -> VendorClient:
    """A client sending `Api-Version: v1` and `Authorization: ApiKey <key>` on every call."""
    if not api_key:
        raise ValueError(f"{VENDOR}: no API key configured; set {SECRET_HINT}")
    auth = APIKeyAuth(name="Authorization", api_key=f"ApiKey {api_key}", location="header")
    return VendorClient(base_url, auth, VENDOR, SECRET_HINT, headers={"Api-Version": API_VERSION})


# -- the audit log, page by page ----------------------------------------------------------------
class StoredCursorRefused(Exception):
    """The vendor no longer accepts the cursor an earlier run stored (it answered 400, 404 or
    410 to it): the caller starts again at the top of the log."""


@dataclass
class LogPage:
    """One page of the audit log: its records and the vendor's clock (`Date`) when it was served."""

    logs: list[dict[str, Any]]
    observed_at: datetime


class AuditLogPaginator(JSONResponseCursorPaginator):
    """dlt's cursor paginator for the contract (`next` in the body, `cursor` in the query), which
    also refuses pages a correct vendor never serves:

    - a `next` that is not a string, or one this read has already followed (a loop);
    - a page holding only events this read has already met, e.g. a stale cache serving the
      previous page again under a new cursor: the same cursor is asked again, after a wait,
      up to `REPEATED_PAGE_RETRIES` times, and then the run fails, since following its
      cursor would skip the page the vendor really has there;
    - more than `MAX_EMPTY_PAGES_IN_A_ROW` empty pages in a row, each with a new cursor.

    `previous_page_ids` are the ids of the last page an earlier run read before stopping, so
    a repeat of that page is recognised too.
    """

    def __init__(self, previous_page_ids: Iterable[str] = ()) -> None:
        super().__init__(cursor_path="next", cursor_param="cursor")
        self.ids_read: set[str] = set(previous_page_ids)
        self.last_page_ids: list[str] = list(previous_page_ids)
        self.cursors_followed: set[str] = set()
        self.empty_pages_in_a_row = 0
        self.repeats_of_this_page = 0
        self.page_is_repeat = False

    def init_request(self, request: Request) -> None:
        """Start from the request's own cursor, if it has one: a repeated first page is then
        asked again at that cursor, not at the top of the log."""
        cursor = (request.params or {}).get(self.cursor_param)
        if cursor is not None:
            self._next_reference = cursor
            self.cursors_followed.add(cursor)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        """Check the page and take its `next` cursor (or keep the current one to ask again)."""
        logs = require_records(response.json(), "logs", VENDOR, LOGS)
        ids = [log.get("id") for log in logs]
        self.page_is_repeat = bool(ids) and self.ids_read.issuperset(ids)
        if self.page_is_repeat:
            self.repeats_of_this_page += 1
            if self.repeats_of_this_page > REPEATED_PAGE_RETRIES:
                raise MalformedResponseError(
                    f"{VENDOR}: {LOGS} served only events this run had already read, "
                    f"{self.repeats_of_this_page} times for the same cursor (a stale cache in "
                    "front of the vendor?); following its `next` would skip events"
                )
            time.sleep(REPEATED_PAGE_WAIT_SECONDS * 2 ** (self.repeats_of_this_page - 1))
            return  # the cursor stays: the same page is asked for again
        self.repeats_of_this_page = 0
        self.empty_pages_in_a_row = 0 if logs else self.empty_pages_in_a_row + 1
        if self.empty_pages_in_a_row > MAX_EMPTY_PAGES_IN_A_ROW:
            raise MalformedResponseError(
                f"{VENDOR}: {LOGS} served {self.empty_pages_in_a_row} empty pages in a row, "
                "each with a new `next` cursor; giving up rather than following them forever"
            )
        self.ids_read.update(ids)
        if logs:
            self.last_page_ids = ids
        super().update_state(response, data)
        cursor = self._next_reference
        if cursor is None:
            return
        if not isinstance(cursor, str) or cursor in self.cursors_followed:
            raise MalformedResponseError(
                f"{VENDOR}: {LOGS} returned a `next` cursor that is not a new string"
            )
        self.cursors_followed.add(cursor)

    @property
    def next_cursor(self) -> str | None:
        """The cursor of the next page; None after the last page."""
        return self._next_reference if self.has_next_page else None


class LogPages:
    """The pages of one read of the log, from `cursor` (where an earlier run stopped) or from
    the top, until the last page or until the caller stops iterating."""

    def __init__(
        self,
        client: VendorClient,
        page_limit: int,
        cursor: str | None = None,
        previous_page_ids: Iterable[str] = (),
    ) -> None:
        self.client = client
        self.page_limit = page_limit
        self.start_cursor = cursor
        self.paginator = AuditLogPaginator(previous_page_ids if cursor else ())

    def __iter__(self) -> Iterator[LogPage]:
        """Each page the paginator accepts; a stored cursor the vendor refuses raises
        `StoredCursorRefused` before any page."""
        params: dict[str, Any] = {"limit": self.page_limit}
        if self.start_cursor is not None:
            params["cursor"] = self.start_cursor
        pages = self.client.paginate(
            LOGS, params=params, paginator=self.paginator, data_selector="logs"
        )
        first = True
        while True:
            try:
                page = next(pages, None)
            except VendorHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if first and self.start_cursor is not None and status in STALE_CURSOR_STATUSES:
                    raise StoredCursorRefused(
                        f"{VENDOR}: {LOGS} refused the stored cursor (HTTP {status})"
                    ) from None
                raise
            if page is None:
                return
            first = False
            if not self.paginator.page_is_repeat:
                yield LogPage(list(page), server_time(page.response))

    @property
    def next_cursor(self) -> str | None:
        """Where the next page starts; None once the last page has been read."""
        return self.paginator.next_cursor

    @property
    def last_page_ids(self) -> list[str]:
        """The ids of the last page read (so a run that goes on from here knows them)."""
        return self.paginator.last_page_ids
