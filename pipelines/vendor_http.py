"""HTTP plumbing every source shares: dlt's REST client with bounded requests and retries, and
errors that name the vendor, the endpoint and what happened, in one line, without a credential.

Every request has a connect timeout and a read timeout, and its whole response (headers and
body) must arrive within the read timeout too, so a vendor that trickles a byte at a time cannot
hold a load. dlt's runtime settings choose the read timeout and the retries
(`RUNTIME__REQUEST_TIMEOUT`, `RUNTIME__REQUEST_MAX_ATTEMPTS`, `RUNTIME__REQUEST_BACKOFF_FACTOR`,
`RUNTIME__REQUEST_MAX_RETRY_DELAY`); 429 and 5xx are retried with backoff, honouring
`Retry-After`. All requests of one client (one run of a source) end within the load deadline
(`POSTURE_LOAD_DEADLINE` seconds): no retry waits past it, and no request runs beyond it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson
import requests
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests.retry import (
    DEFAULT_RETRY_EXCEPTIONS,
    DEFAULT_RETRY_STATUS,
    retry_if_status,
    wait_exponential_retry_after,
)
from dlt.sources.helpers.requests.session import Session
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from dlt.sources.helpers.rest_client.client import PageData
from requests import HTTPError, PreparedRequest, RequestException, Response
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_any, retry_if_exception_type
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

LOAD_DEADLINE_ENV = "POSTURE_LOAD_DEADLINE"
# Long enough for the largest run of a source (one run of a backfill), short enough that a stuck
# vendor is noticed well within an hourly schedule.
DEFAULT_LOAD_DEADLINE_SECONDS = 1200.0
# Reaching a host takes well under this; the read timeout comes from dlt's runtime settings.
CONNECT_TIMEOUT_SECONDS = 10.0


class VendorError(RuntimeError):
    """A vendor API failed in a way a retry does not fix (message names vendor and endpoint)."""


class VendorHTTPError(HTTPError, VendorError):
    """The vendor answered an error status. An HTTPError, so dlt's retry logic sees 429 and 5xx."""


class MalformedResponseError(VendorError):
    """The vendor answered 2xx with a body that is not the documented shape."""


class VendorUnreachableError(VendorError):
    """No usable answer: the connection failed, timed out or broke, after the retries."""


class LoadDeadlineError(VendorError):
    """The run's requests did not finish within the load deadline (`POSTURE_LOAD_DEADLINE`)."""


class ResponseTooSlow(requests.Timeout):
    """The whole response did not arrive within the read timeout (a vendor trickling bytes)."""


# Request headers that carry a vendor credential (Keeper, Trend Micro and 1Password).
_CREDENTIAL_HEADERS = ("Authorization", "x-api-token")
_STATUS_HINTS = {
    401: "the credential was rejected (wrong, expired or revoked token)",
    403: "the credential lacks permission for this endpoint",
    404: "the endpoint does not exist at this base URL",
    429: "rate limited, and retries did not get through",
}
_QUERY = re.compile(r"\?[^\s'\")]*")


def redact(text: str, request: PreparedRequest | None) -> str:
    """`text` without the credential `request` carried, nor any URL's query string: what every
    error message goes through before anyone sees it (a vendor may echo the token it rejects in
    its reason phrase or body)."""
    headers = request.headers if request is not None else {}
    for header in _CREDENTIAL_HEADERS:
        for secret in (headers.get(header) or "").split():
            if len(secret) >= 8:  # the token, not its scheme word
                text = text.replace(secret, "[redacted]")
    return _QUERY.sub("?…", text)


def load_deadline_seconds() -> float:
    """`POSTURE_LOAD_DEADLINE` seconds, or the default; ValueError naming the setting if bad."""
    text = os.environ.get(LOAD_DEADLINE_ENV, "").strip()
    if not text:
        return DEFAULT_LOAD_DEADLINE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{LOAD_DEADLINE_ENV} must be a number of seconds above 0, not {text!r}")
    return seconds


class Deadline:
    """A moment by which all of a run's requests must be done."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (0 or less once passed)."""
        return self.end - time.monotonic()


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
            message = (
                f"{vendor}: {endpoint} answered HTTP {response.status_code} {response.reason}"
                f"{': ' + hint if hint else ''}{_vendor_message(response)}"
            )
            raise VendorHTTPError(redact(message, response.request), response=response)
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
    """The vendor's `message`, shortened (the caller redacts it)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f" (vendor says: {str(message)[:200]})" if message else ""


# -- the whole response within the read timeout ------------------------------------------------
class _Sending:
    """The connection one request is using, for the timer that may cut it off."""

    connection: Any = None


_current = threading.local()  # this thread's `_Sending`, filled in by the pools below


class _NotesConnection:
    """A connection pool that notes which connection this thread's request takes: urllib3 does
    not say, and the timer in `BoundedAdapter` needs its socket."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        if sending := getattr(_current, "sending", None):
            sending.connection = conn
        return conn


class _TrackedPool(_NotesConnection, HTTPConnectionPool):
    """An http:// pool that notes the connection each request takes."""


class _TrackedTLSPool(_NotesConnection, HTTPSConnectionPool):
    """An https:// pool that notes the connection each request takes."""


class BoundedAdapter(HTTPAdapter):
    """An HTTP adapter that cuts a response off when it has not arrived whole within the read
    timeout: per-read timeouts alone let a vendor sending a byte every few seconds hold a
    request forever. Raises `ResponseTooSlow` (a `requests.Timeout`, so it is retried)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedPool, "https": _TrackedTLSPool}

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        timeout = kwargs.get("timeout")
        limit = timeout[1] if isinstance(timeout, tuple) else timeout
        if not limit or kwargs.get("stream"):
            return super().send(request, *args, **kwargs)
        sending = _current.sending = _Sending()
        cut = threading.Event()

        def cut_off() -> None:
            cut.set()
            sock = getattr(sending.connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the read blocked on it

        timer = threading.Timer(limit, cut_off)
        timer.daemon = True
        timer.start()
        try:
            response = super().send(request, *args, **{**kwargs, "stream": True})
            response.content  # noqa: B018 - the body is read while the timer runs
            return response
        except RequestException as exc:
            if cut.is_set():
                raise ResponseTooSlow(limit, request=request) from exc
            raise
        finally:
            timer.cancel()
            _current.sending = None


# -- the client ---------------------------------------------------------------------------------
def runtime_settings() -> RuntimeConfiguration:
    """dlt's runtime settings (environment, config files), as its own HTTP client reads them."""
    return resolve_configuration(RuntimeConfiguration())


class VendorClient(RESTClient):
    """dlt's REST client for one vendor and one run: every request bounded (see the module),
    every failure a `VendorError` whose one line names the vendor, the endpoint and the cause."""

    def __init__(
        self,
        base_url: str,
        auth: AuthConfigBase,
        vendor: str,
        secret_hint: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{vendor}: base URL {base_url!r} is not an http(s) URL")
        self.vendor = vendor
        self.secret_hint = secret_hint
        self.deadline = Deadline(load_deadline_seconds())
        settings = runtime_settings()
        self.read_timeout = float(settings.request_timeout)
        session = Session(raise_for_status=False)
        adapter = BoundedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(response_hook(vendor, secret_hint))  # get/post
        # dlt's `Client` builds the same retries, but its waits (a `Retry-After` too) know no
        # deadline; this stop does.
        retrying = Retrying(
            retry=retry_any(
                retry_if_status(DEFAULT_RETRY_STATUS),
                retry_if_exception_type(DEFAULT_RETRY_EXCEPTIONS),
            ),
            wait=wait_exponential_retry_after(
                multiplier=settings.request_backoff_factor, max=settings.request_max_retry_delay
            ),
            stop=self._stop(settings.request_max_attempts),
            reraise=True,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        send = retrying.wraps(self._attempt(session.send))
        session.send = self._named_failures(send)  # type: ignore[method-assign]
        super().__init__(base_url=base_url.rstrip("/"), auth=auth, headers=headers, session=session)

    def _attempt(self, send: Callable[..., Response]) -> Callable[..., Response]:
        """`send` within what is left of the deadline: its timeouts shortened to fit, and not
        at all once the deadline has passed."""

        def attempt(request: PreparedRequest, **kwargs: Any) -> Response:
            left = self.deadline.remaining()
            if left <= 0:
                raise self.deadline_error(request, "")
            read = min(self.read_timeout, left)
            kwargs["timeout"] = (min(CONNECT_TIMEOUT_SECONDS, read), read)
            return send(request, **kwargs)

        return attempt

    def _stop(self, attempts: int) -> Callable[[RetryCallState], bool]:
        """Stop after `attempts`, or with a `LoadDeadlineError` when the wait before the next
        attempt would end past the deadline (a long `Retry-After` included)."""

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= attempts:
                return True
            if state.upcoming_sleep >= self.deadline.remaining():
                request = state.args[0] if state.args else None
                last = _outcome_text(state)
                raise self.deadline_error(request, f"last attempt: {last}" if last else "")
            return False

        return stop

    def deadline_error(self, request: PreparedRequest | None, reason: str) -> LoadDeadlineError:
        """The error of `request` not done within the deadline, saying `reason` if given."""
        endpoint = urlsplit(request.url or "").path if request is not None else ""
        after = f"; {reason}" if reason else ""
        return LoadDeadlineError(
            redact(
                f"{self.vendor}: {endpoint} not done within the load deadline of "
                f"{self.deadline.seconds:g} s ({LOAD_DEADLINE_ENV}){after}",
                request,
            )
        )

    def _named_failures(self, send: Callable[..., Response]) -> Callable[..., Response]:
        """`send`, raising what requests raises as a `VendorUnreachableError` naming the vendor,
        the endpoint and the cause."""

        def named(request: PreparedRequest, **kwargs: Any) -> Response:
            try:
                return send(request, **kwargs)
            except VendorError:
                raise
            except RequestException as exc:
                endpoint = urlsplit(request.url or "").path
                message = f"{self.vendor}: {endpoint} {describe_request_failure(exc)}"
                raise VendorUnreachableError(redact(message, request)) from None

        return named

    def paginate(
        self, *args: Any, decode: Decoder = orjson.loads, **kwargs: Any
    ) -> Iterator[PageData[Any]]:
        """`RESTClient.paginate` with this vendor's response hook, parsing each page with
        `decode`."""
        hook = response_hook(self.vendor, self.secret_hint, decode)
        kwargs.setdefault("hooks", {"response": [hook]})
        return super().paginate(*args, **kwargs)


def _outcome_text(state: RetryCallState) -> str:
    """What the last attempt got, in words."""
    outcome = state.outcome
    if outcome is None:
        return ""
    if not outcome.failed:
        return f"HTTP {getattr(outcome.result(), 'status_code', '?')}"
    exc = outcome.exception()
    if isinstance(exc, VendorHTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, RequestException):
        return describe_request_failure(exc)
    return _first_line(exc)


def describe_request_failure(exc: RequestException) -> str:
    """What went wrong with a request, in words (from `exc` and its causes; no URL)."""
    if isinstance(exc, ResponseTooSlow):
        return f"sent no complete response within {exc.args[0]:g} s (read timeout)"
    if isinstance(exc, requests.ConnectTimeout):
        return "did not accept a connection in time (connect timeout)"
    if isinstance(exc, requests.ReadTimeout):
        return "accepted the request but sent no answer in time (read timeout)"
    if isinstance(exc, requests.exceptions.InvalidSchema | requests.exceptions.InvalidURL):
        return f"has an unusable URL ({_first_line(exc)})"
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in causes:
        causes.append(cause)
        reason = getattr(cause, "reason", None)
        if not isinstance(reason, BaseException):
            reason = cause.__cause__ or cause.__context__
        cause = reason
    for cause in causes:
        name = type(cause).__name__
        if isinstance(cause, ConnectionRefusedError):
            return "refused the connection (nothing listens at that host and port)"
        if isinstance(cause, socket.gaierror) or name == "NameResolutionError":
            host = urlsplit(exc.request.url or "").hostname if exc.request else None
            return f"could not be reached: host name {host or '?'} does not resolve"
        if name == "SSLError":
            return f"failed the TLS handshake ({_first_line(cause)})"
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return "closed the connection mid-request (connection reset)"
        if name in ("RemoteDisconnected", "IncompleteRead", "ProtocolError"):
            return "closed the connection before the response was complete"
    return f"failed ({type(causes[-1]).__name__}: {_first_line(causes[-1])})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


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
