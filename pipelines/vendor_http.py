"""HTTP plumbing every source shares: dlt's REST client with retries, errors naming the vendor.

dlt's client already retries 429 and 5xx with exponential backoff (honouring `Retry-After`); the
response hook here turns what is left into a `VendorError` that says which vendor and endpoint
failed and why, without ever echoing a credential, and parses each body once (orjson, unless
the caller brings its own decoder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from dlt.sources.helpers.rest_client.client import PageData
from requests import HTTPError, Response


class VendorError(RuntimeError):
    """A vendor API failed in a way a retry does not fix (message names vendor and endpoint)."""


class VendorHTTPError(HTTPError, VendorError):
    """The vendor answered an error status. An HTTPError, so dlt's retry logic sees 429 and 5xx."""


class MalformedResponseError(VendorError):
    """The vendor answered 2xx with a body that is not the documented shape."""


# Request headers that carry a vendor credential (Keeper, Trend Micro and 1Password).
_CREDENTIAL_HEADERS = ("Authorization", "x-api-token")
_STATUS_HINTS = {
    401: "the credential was rejected (wrong, expired or revoked token)",
    403: "the credential lacks permission for this endpoint",
    404: "the endpoint does not exist at this base URL",
    429: "rate limited, and retries did not get through",
}


Decoder = Callable[[bytes], Any]
# What a decoder raises on a body it cannot parse (orjson's error is a ValueError).
_DECODE_ERRORS = (ValueError, msgspec.DecodeError)


def response_hook(
    vendor: str, secret_hint: str, decode: Decoder = orjson.loads
) -> Callable[..., Response]:
    """A requests response hook: raise a `VendorError` on an error status or a body `decode`
    cannot parse; `response.json()` then returns what it made of the body."""

    def hook(response: Response, *args: Any, **kwargs: Any) -> Response:
        endpoint = urlsplit(response.url).path
        if response.status_code >= 400:
            hint = _STATUS_HINTS.get(response.status_code, "")
            if response.status_code == 401:
                hint = f"{hint}; check {secret_hint}"
            raise VendorHTTPError(
                f"{vendor}: {endpoint} answered HTTP {response.status_code} {response.reason}"
                f"{': ' + hint if hint else ''}{_vendor_message(response)}",
                response=response,
            )
        try:
            payload = decode(response.content)
        except _DECODE_ERRORS as exc:
            raise MalformedResponseError(
                f"{vendor}: {endpoint} returned malformed JSON ({exc})"
            ) from None
        response.json = lambda **_: payload  # parsed once; dlt's paginator reads it from here
        return response

    return hook


def _vendor_message(response: Response) -> str:
    """The vendor's `message`, shortened, with the request's credential taken out (a vendor may
    echo the token it rejects)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        return ""
    text = str(message)
    headers = response.request.headers if response.request is not None else {}
    for header in _CREDENTIAL_HEADERS:
        for secret in (headers.get(header) or "").split():
            if len(secret) >= 8:  # the token, not its scheme word
                text = text.replace(secret, "[redacted]")
    return f" (vendor says: {text[:200]})"


class VendorClient(RESTClient):
    """dlt's REST client for one vendor: retries from dlt, errors as `VendorError`s."""

    def __init__(
        self,
        base_url: str,
        auth: AuthConfigBase,
        vendor: str,
        secret_hint: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not urlsplit(base_url).scheme.startswith("http"):
            raise ValueError(f"{vendor}: base URL {base_url!r} is not an http(s) URL")
        super().__init__(base_url=base_url.rstrip("/"), auth=auth, headers=headers)
        self.vendor = vendor
        self.secret_hint = secret_hint
        self.session.hooks["response"].append(response_hook(vendor, secret_hint))  # get/post

    def paginate(
        self, *args: Any, decode: Decoder = orjson.loads, **kwargs: Any
    ) -> Iterator[PageData[Any]]:
        """`RESTClient.paginate` with this vendor's response hook, parsing each page with
        `decode`."""
        hook = response_hook(self.vendor, self.secret_hint, decode)
        kwargs.setdefault("hooks", {"response": [hook]})
        return super().paginate(*args, **kwargs)


def require(payload: Any, key: str, kind: type, vendor: str, endpoint: str) -> Any:
    """`payload[key]` when it is a `kind`, else a `MalformedResponseError` naming the endpoint."""
    value = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(value, kind):
        found = type(value).__name__ if isinstance(payload, dict) and key in payload else "nothing"
        raise MalformedResponseError(
            f"{vendor}: {endpoint} response lacks {key!r} as {kind.__name__} (found {found})"
        )
    return value


def require_records(payload: Any, key: str, vendor: str, endpoint: str) -> list[dict[str, Any]]:
    """`payload[key]` when it is a list of objects, else a `MalformedResponseError`."""
    rows = require(payload, key, list, vendor, endpoint)
    if not all(isinstance(row, dict) for row in rows):
        raise MalformedResponseError(f"{vendor}: {endpoint} {key!r} holds a non-object item")
    return rows


def server_time(response: Response) -> datetime:
    """The response's `Date` header as an aware UTC datetime: the vendor's clock is the clock of
    record for when something was observed (the local clock only if the header is absent)."""
    header = response.headers.get("Date")
    if header:
        try:
            return parsedate_to_datetime(header).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC).replace(microsecond=0)


def parse_utc(value: Any) -> datetime | None:
    """A vendor timestamp (ISO 8601 / RFC 3339, `Z` or an offset, `t` and `z` too; no offset
    means UTC) as an aware UTC datetime; None for None or ""; ValueError when it is not one."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).upper())
        except ValueError:
            raise ValueError(f"not a timestamp: {str(value)[:40]!r}") from None
    offset = parsed.utcoffset()
    if offset is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if not offset else parsed.astimezone(UTC)


def find_vendor_error(exc: BaseException) -> VendorError | None:
    """The `VendorError` behind an exception that dlt or Dagster wrapped, if there is one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, VendorError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
