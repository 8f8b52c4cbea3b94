"""Keeper RMD Admin REST API client: everything about talking to the API. The client with the
contract's token header, the continuation-token paginator, and the benchmark update (a POST)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Response

from pipelines.vendor_http import MalformedResponseError, VendorClient, require

from .settings import MAX_EMPTY_PAGES, SECRET_HINT, SET_BENCHMARKS, VENDOR


def keeper_client(base_url: str, api_token: str) -> VendorClient:
    """A client that sends `x-api-token: Bearer <token>` on every call."""
    if not api_token:
        raise ValueError(f"{VENDOR}: no API token configured; set {SECRET_HINT}")
    auth = APIKeyAuth(name="x-api-token", api_key=f"Bearer {api_token}", location="header")
    return VendorClient(base_url, auth, VENDOR, SECRET_HINT)


class ContinuationTokenPaginator(JSONResponseCursorPaginator):
    """dlt's cursor paginator on Keeper's `continuation_token` (sent back as a query parameter),
    followed only while `has_more` is true: a response without them, as the REST contract
    shows, is a single page. It fails rather than load a partial snapshot or page forever: more
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


def fetch_pages(client: VendorClient, path: str, params: dict[str, Any] | None = None) -> Iterator:
    """The pages of `path`, each the whole response body (`page[0]`), followed by token."""
    # data_selector "$": the whole body is the page, so a missing key is caught, not skipped.
    return client.paginate(
        path, params=params, paginator=ContinuationTokenPaginator(), data_selector="$"
    )


def set_benchmarks(
    base_url: str, api_token: str, changes: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """POST `set_security_benchmarks`: set each (benchmark id, status); returns what changed."""
    client = keeper_client(base_url, api_token)
    body = [{"benchmark": benchmark, "status": status} for benchmark, status in changes]
    response = client.post(SET_BENCHMARKS, json=body)  # type: ignore[arg-type]
    return require(response.json(), "security_benchmarks", list, VENDOR, SET_BENCHMARKS)
