"""1Password Events API client: dlt's REST client held under 1Password's rate limits (one limiter
per token for every run in the process, however many requests are in flight), and the token
check (`introspect`) that says which event types the token may read.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from requests import PreparedRequest, Response

from pipelines.vendor_http import (
    BoundedAdapter,
    Deadline,
    VendorClient,
    require,
    server_time,
)

from .settings import INTROSPECT, SECRET_HINT, VENDOR

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
