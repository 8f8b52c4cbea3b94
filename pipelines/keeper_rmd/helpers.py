"""Keeper RMD HTTP details: the client, the continuation-token paginator, time parsing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Response

from pipelines.vendor_http import MalformedResponseError, VendorClient, parse_utc, server_time

from .settings import MAX_EMPTY_PAGES, SECRET_HINT, SNAPSHOT_DISPOSITION, VENDOR


def keeper_client(base_url: str, api_token: str) -> VendorClient:
    """A client that sends `x-api-token: Bearer <token>` on every call."""
    if not api_token:
        raise ValueError(f"{VENDOR}: no API token configured; set {SECRET_HINT}")
    auth = APIKeyAuth(name="x-api-token", api_key=f"Bearer {api_token}", location="header")
    return VendorClient(base_url, auth, VENDOR, SECRET_HINT)


class ContinuationTokenPaginator(JSONResponseCursorPaginator):
    """dlt's cursor paginator on Keeper's `continuation_token` (sent back as a query parameter),
    followed only while `has_more` is true: a response without them, as the REST contract
    shows, is a single page. It fails rather than load a partial snapshot or walk forever: more
    pages without a token, a token seen before, or more than `MAX_EMPTY_PAGES` empty pages in
    a row."""

    def __init__(self) -> None:
        super().__init__(cursor_path="continuation_token", cursor_param="continuation_token")
        self._tokens: set[Any] = set()
        self._empty_pages = 0

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        body = response.json()
        endpoint = urlsplit(response.url).path
        if not (isinstance(body, dict) and body.get("has_more") is True):
            self._has_next_page = False
            return
        token = self._next_reference
        if not token:
            raise MalformedResponseError(
                f"{VENDOR}: {endpoint} says it has more pages but sent no continuation_token"
            )
        if token in self._tokens:
            raise MalformedResponseError(
                f"{VENDOR}: {endpoint} sent a continuation_token it had sent before (a loop)"
            )
        self._tokens.add(token)
        empty = not any(isinstance(value, list) and value for value in body.values())
        self._empty_pages = self._empty_pages + 1 if empty else 0
        if self._empty_pages > MAX_EMPTY_PAGES:
            raise MalformedResponseError(
                f"{VENDOR}: {endpoint} sent {self._empty_pages} empty pages in a row, each "
                "saying it has more"
            )


@dataclass
class Observation:
    """When a snapshot was taken: the vendor's `Date` on the run's first response, and the tenant.

    Every row of one run carries the same `observed_at` and `snapshot_date`, so a day's snapshot
    is one consistent picture even if the run straddles midnight."""

    tenant: str
    observed_at: datetime | None = None

    def snapshot_columns(self, response: Response) -> dict[str, Any]:
        """The snapshot columns for rows from `response` (fixing the time on first use)."""
        if self.observed_at is None:
            self.observed_at = server_time(response)
        return {
            "tenant": self.tenant,
            "snapshot_date": self.snapshot_date,
            "observed_at": self.observed_at,
        }

    @property
    def snapshot_date(self) -> date:
        """The UTC day of the observation."""
        assert self.observed_at is not None
        return self.observed_at.date()

    def replacing_its_day(self) -> dict[str, Any]:
        """The merge that replaces this tenant's rows of the snapshot's day and no others. Its
        scope is the day, not the rows loaded, so a table the vendor now answers empty loses
        that day's earlier rows too (dlt's `destination_scope`, a SQL condition; `{table}` is
        dlt's placeholder for the destination table). The tenant is free text, and dlt splits
        that SQL on semicolons and new lines, so it goes in as hexadecimal digits only."""
        tenant = self.tenant.encode().hex()
        scope = (
            f"{{table}}.tenant = decode(from_hex('{tenant}'))"
            f" AND {{table}}.snapshot_date = DATE '{self.snapshot_date.isoformat()}'"
        )
        return {**SNAPSHOT_DISPOSITION, "destination_scope": scope}


def with_columns(record: dict[str, Any], columns: dict[str, Any]) -> dict[str, Any]:
    """`record` with `columns` added. A vendor field of the same name and another value is kept
    as `vendor_<name>`, not overwritten."""
    kept = {f"vendor_{k}": record[k] for k in columns if k in record and record[k] != columns[k]}
    return {**record, **kept, **columns}


def parse_keeper_time(value: Any, field: str, endpoint: str) -> datetime | None:
    """Keeper's `YYYY-MM-DD HH:MM:SS` (UTC) as an aware datetime; ISO 8601 is accepted too."""
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise MalformedResponseError(f"{VENDOR}: {endpoint} field {field!r} is {exc}") from None
