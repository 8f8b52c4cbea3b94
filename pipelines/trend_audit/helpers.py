"""Trend Micro Cloud One HTTP details: the audit host, the client with the contract's headers,
and the contract's timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from pipelines.vendor_http import MalformedResponseError, VendorClient, parse_utc

from .settings import API_VERSION, DEFAULT_REGION, LOGS, REGION_URL, SECRET_HINT, VENDOR


def base_url_for(base_url: str | None, region: str | None) -> str:
    """The configured base URL, else the audit host of `region` (default us-1)."""
    return base_url or REGION_URL.format(region=region or DEFAULT_REGION)


def trend_client(base_url: str, api_key: str) -> VendorClient:
    """A client sending `Api-Version: v1` and `Authorization: ApiKey <key>` on every call."""
    if not api_key:
        raise ValueError(f"{VENDOR}: no API key configured; set {SECRET_HINT}")
    auth = APIKeyAuth(name="Authorization", api_key=f"ApiKey {api_key}", location="header")
    return VendorClient(base_url, auth, VENDOR, SECRET_HINT, headers={"Api-Version": API_VERSION})


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
