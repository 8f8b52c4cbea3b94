"""A simulator of Trend Micro Cloud One's Audit Log API (`GET /api/logs`).

Contract (shared api-notes, Trend Micro section): `Api-Version: v1` and `Authorization: ApiKey
<key>` on every call; `limit` (at most 25) and `cursor`; the answer is `{"logs": [...], "next":
"<cursor>"}` with no `next` on the last page. Records are `{"id", "time", "type", "description",
"accountID", "principalURN", "details"}` of the thirteen documented event types.

The log grows as the simulated clock advances (`events_per_day` per account, spread evenly over
the day in hourly steps) and forgets events older than `retention_days`. At `start` it already
holds `history_days` of events. A read (the pages from a request without a cursor to the last
one) is over a snapshot of the log taken at its first page: the cursor carries the snapshot's
bounds, so events logged during a read wait for the next read and a cursor stays valid while
the clock moves (events that expire meanwhile are left out). The order of a read is a switch
(`newest`, `oldest`, `shuffled`, `grouped`) because the vendor does not document it.
An API key sees one account's events, or every account's when it is mapped to None.

Besides the shared fault switches, `TrendFaults` has the misbehaviours of a vendor's clock and of
a cache in front of the vendor (`POST /_sim/faults` sets them too).
"""

from __future__ import annotations

import base64
import bisect
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from simulators.server import (
    DEFAULT_START,
    Faults,
    Request,
    Response,
    VendorSimulator,
    utc_iso,
)

LOGS_PATH = "/api/logs"
MAX_LIMIT = 25
DEFAULT_ACCOUNTS = ("310442718012",)
DEFAULT_API_KEY = "fake-trend-api-key"
ORDERS = ("newest", "oldest", "shuffled", "grouped")

EVENT_TYPES = (
    "audit.account_created.v1",
    "audit.account_updated.v1",
    "audit.apiKey_created.v1",
    "audit.apiKey_updated.v1",
    "audit.apiKey_deleted.v1",
    "audit.invitation_created.v1",
    "audit.invitation_updated.v1",
    "audit.role_created.v1",
    "audit.role_updated.v1",
    "audit.user_updated.v1",
    "audit.user_deleted.v1",
    "audit.user-signed-in.v1",
    "audit.user-signed-out.v1",
)
DESCRIPTIONS = {
    "audit.account_created.v1": "Account created",
    "audit.account_updated.v1": "Account updated",
    "audit.apiKey_created.v1": "API key created",
    "audit.apiKey_updated.v1": "API key updated",
    "audit.apiKey_deleted.v1": "API key deleted",
    "audit.invitation_created.v1": "Invitation created",
    "audit.invitation_updated.v1": "Invitation updated",
    "audit.role_created.v1": "Role created",
    "audit.role_updated.v1": "Role updated",
    "audit.user_updated.v1": "User updated",
    "audit.user_deleted.v1": "User deleted",
    "audit.user-signed-in.v1": "User signed in",
    "audit.user-signed-out.v1": "User signed out",
}
# Relative frequency of each type after the account's creation (sign-ins and sign-outs dominate).
_WEIGHTS = {
    "audit.account_updated.v1": 1,
    "audit.apiKey_created.v1": 4,
    "audit.apiKey_updated.v1": 3,
    "audit.apiKey_deleted.v1": 3,
    "audit.invitation_created.v1": 3,
    "audit.invitation_updated.v1": 3,
    "audit.role_created.v1": 1,
    "audit.role_updated.v1": 2,
    "audit.user_updated.v1": 4,
    "audit.user_deleted.v1": 1,
    "audit.user-signed-in.v1": 40,
    "audit.user-signed-out.v1": 35,
}
_TYPES = tuple(_WEIGHTS)
_CUMULATIVE = tuple(accumulate(_WEIGHTS.values()))

_BUILTIN_ROLES = ("full-access", "read-only", "auditor", "deployment")
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
_NAMES = ("aiko", "ben", "carla", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas")


@dataclass
class TrendFaults(Faults):
    """The shared switches plus Trend's own. Counters apply to the next N matching events or
    requests, then reset."""

    # The next event logged carries a time this many hours after the clock (a bad event, or a
    # vendor clock gone wrong); the log keeps its events in time order, so it is served first
    # in a newest-first read.
    future_event_hours: float = 0.0
    # The next N requests with a cursor are answered with the page this API key was served
    # before, under the `next` cursor the right page has (a stale cache in front of the vendor).
    stale_pages_next: int = 0
    # The next N requests are answered with no logs and a new cursor to the same place.
    empty_pages_next: int = 0


class _Account:
    """One Cloud One account's people, roles, keys and invitations (what events refer to)."""

    def __init__(self, account_id: str, region: str, rng: random.Random) -> None:
        self.id = account_id
        self.urn = f"urn:cloudone:identity:{region}:{account_id}"
        self.rng = rng
        self.users = [self.new_id() for _ in range(8)]
        self.roles = list(_BUILTIN_ROLES)
        self.api_keys: dict[str, str] = {}  # id -> alias of the keys alive
        self.invitations: dict[str, str] = {}  # id -> email of the pending invitations
        self.created = False
        self.key_count = 0

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def user_urn(self, user: str) -> str:
        return f"{self.urn}:user/{user}"

    def key_urn(self, key: str) -> str:
        return f"{self.urn}:api-key/{key}"

    def email(self, user: str) -> str:
        return f"{_NAMES[int(user[:2], 16) % len(_NAMES)]}.{user[:6]}@example.com"

    def actor(self) -> str:
        """An administrator's URN: a user, or now and then one of the account's API keys."""
        if self.api_keys and self.rng.random() < 0.2:
            return self.key_urn(self.rng.choice(list(self.api_keys)))
        return self.user_urn(self.rng.choice(self.users))


class _View:
    """The retained events one API key can see, oldest first, with absolute positions: position
    `dropped + i` is `events[i]`; positions below `dropped` have expired."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.times: list[datetime] = []
        self.dropped = 0

    @property
    def end(self) -> int:
        return self.dropped + len(self.events)

    def add(self, event: dict[str, Any], moment: datetime) -> None:
        """Log `event` at its time `moment` (in time order, even when it is not the newest)."""
        if self.times and moment < self.times[-1]:
            index = bisect.bisect_right(self.times, moment)
            self.events.insert(index, event)
            self.times.insert(index, moment)
        else:
            self.events.append(event)
            self.times.append(moment)

    def expire(self, cutoff: datetime) -> None:
        gone = bisect.bisect_left(self.times, cutoff)
        if gone:
            del self.events[:gone], self.times[:gone]
            self.dropped += gone


class TrendAuditSimulator(VendorSimulator):
    """Trend Micro Cloud One's audit log for one or several accounts (see the module docstring).

    Args:
        accounts: Cloud One account ids (12 digits).
        seed, start: randomness and the simulated clock's start.
        api_keys: key -> the account it belongs to, or None for a key that sees every account.
        events_per_day: events logged a day in each account.
        history_days: days of events already in the log at `start`.
        order: the order of a read: `newest` first, `oldest` first, `shuffled` (pages in a
            scrambled order and records shuffled within each page), or `grouped` (one account's
            events after another's, each account's newest first).
        max_requests_per_second: above this rate a request is answered 429 (0: no limit).
        send_retry_after: send `Retry-After` (whole seconds) with a rate-limit 429.
        retention_days: events older than this are gone from the log.
        region: the region in URNs.
    """

    name = "trend_audit"
    step = timedelta(hours=1)

    def __init__(
        self,
        *,
        accounts: Iterable[str] = DEFAULT_ACCOUNTS,
        seed: int = 7,
        start: datetime = DEFAULT_START,
        api_keys: Mapping[str, str | None] | None = None,
        events_per_day: float = 200.0,
        history_days: float = 30,
        order: str = "newest",
        max_requests_per_second: float = 0.0,
        send_retry_after: bool = True,
        retention_days: float = 365,
        region: str = "us-1",
    ) -> None:
        super().__init__(seed=seed, start=start)
        self.faults: TrendFaults = TrendFaults()
        self._last_page: dict[str | None, list[dict[str, Any]]] = {}  # scope -> logs served last
        self._detours = 0  # empty pages served, to make each of their cursors new
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        self.order = order
        self.events_per_day = events_per_day
        self.max_requests_per_second = max_requests_per_second
        self.send_retry_after = send_retry_after
        self.retention = timedelta(days=retention_days)
        # The world's own generator: fault switches that draw from `self.rng` never change it.
        self._world = random.Random(f"trend-audit-{seed}")
        self.accounts = {a: _Account(a, region, self._world) for a in dict.fromkeys(accounts)}
        if not self.accounts:
            raise ValueError("at least one account is needed")
        self.api_keys = dict(api_keys) if api_keys is not None else {DEFAULT_API_KEY: None}
        unknown = {a for a in self.api_keys.values() if a is not None} - set(self.accounts)
        if unknown:
            raise ValueError(f"API keys mapped to unknown accounts: {sorted(unknown)}")
        self._views: dict[str | None, _View] = {None: _View()}
        self._views.update({a: _View() for a in self.accounts})
        self._carry = 0.0
        self._recent: deque[float] = deque()  # monotonic times of the last second's requests
        self._reads_started = 0
        self.now = start - timedelta(days=history_days)
        self.evolve(start)

    # -- the log ------------------------------------------------------------------------------
    def evolve(self, until: datetime) -> None:
        """Log the events of every hour up to `until`, then forget what is past retention."""
        while self.now < until:
            window_end = min(self.now + self.step, until)
            self._log_window(self.now, window_end)
            self.now = window_end
        cutoff = self.now - self.retention
        for view in self._views.values():
            view.expire(cutoff)

    def _log_window(self, begin: datetime, end: datetime) -> None:
        self._carry += self.events_per_day * (end - begin) / timedelta(days=1)
        count = int(self._carry)
        self._carry -= count
        span = (end - begin) / timedelta(milliseconds=1)
        moments = []
        for account in self.accounts.values():
            if not account.created:  # the account's first event opens its log
                moments.append((begin, account, "audit.account_created.v1"))
                account.created = True
            for _ in range(count):
                offset = timedelta(milliseconds=int(self._world.random() * span))
                moments.append((begin + offset, account, None))
        moments.sort(key=lambda moment: moment[0])
        for moment, account, event_type in moments:
            event = self._event(account, moment, event_type)
            if self.faults.future_event_hours:
                moment += timedelta(hours=self.faults.future_event_hours)
                event["time"] = utc_iso(moment)
                self.faults.future_event_hours = 0.0
            for key in (None, account.id):
                self._views[key].add(event, moment)

    def _event(self, account: _Account, moment: datetime, event_type: str | None) -> dict:
        rng = self._world
        if event_type is None:
            drawn = _TYPES[bisect.bisect_right(_CUMULATIVE, rng.random() * _CUMULATIVE[-1])]
            event_type = _possible(account, drawn)
        principal, details = self._happen(account, event_type.split(".")[1])
        return {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": utc_iso(moment.replace(microsecond=moment.microsecond // 1000 * 1000)),
            "type": event_type,
            "description": DESCRIPTIONS[event_type],
            "accountID": account.id,
            "principalURN": principal,
            "details": details,
        }

    def _happen(self, account: _Account, kind: str) -> tuple[str | None, dict]:
        """Apply one event to the account; returns its principal URN and details."""
        rng = self._world
        if kind == "user-signed-in" or kind == "user-signed-out":
            user = rng.choice(account.users)
            if kind == "user-signed-in":
                details = {
                    "ipAddress": f"203.0.113.{rng.randrange(1, 255)}",
                    "userAgent": rng.choice(_USER_AGENTS),
                    "authMethod": rng.choice(("password", "password", "sso")),
                    "mfa": rng.random() < 0.8,
                    "sessionID": account.new_id(),
                }
                return account.user_urn(user), details
            reason = rng.choice(("signed-out", "signed-out", "account-switched", "session-timeout"))
            details = {"reason": reason, "sessionID": account.new_id()}
            # A timed-out session is ended by the system: no principal.
            return (None if reason == "session-timeout" else account.user_urn(user)), details
        if kind == "account_created":
            return None, {"accountID": account.id, "alias": f"account-{account.id[-4:]}"}
        if kind == "account_updated":
            field = rng.choice(("alias", "description", "mfaRequired"))
            return account.actor(), {"changes": {field: {"old": "before", "new": "after"}}}
        if kind.startswith("apiKey_"):
            return self._api_key_event(account, kind)
        if kind == "invitation_created":
            invitation, email = account.new_id(), f"invitee.{rng.randrange(10**6)}@example.com"
            account.invitations[invitation] = email
            role = rng.choice(account.roles)
            return account.actor(), {"invitationID": invitation, "email": email, "roleID": role}
        if kind == "invitation_updated":
            invitation = rng.choice(list(account.invitations))
            email = account.invitations.pop(invitation)
            state = rng.choice(("accepted", "accepted", "revoked", "expired"))
            if state == "accepted":
                account.users.append(account.new_id())
            principal = None if state == "expired" else account.actor()
            return principal, {"invitationID": invitation, "email": email, "state": state}
        if kind == "role_created":
            role = f"custom-{account.new_id()[:8]}"
            account.roles.append(role)
            permissions = rng.sample(("read", "write", "deploy", "admin", "audit"), 2)
            return account.actor(), {"roleID": role, "name": role, "permissions": permissions}
        if kind == "role_updated":
            role = rng.choice(account.roles)
            change = {"permissions": {"added": [rng.choice(("read", "write", "audit"))]}}
            return account.actor(), {"roleID": role, "changes": change}
        user = rng.choice(account.users)
        if kind == "user_deleted":
            account.users.remove(user)
            return account.actor(), {"userID": user, "email": account.email(user)}
        change = {"roleID": {"old": rng.choice(account.roles), "new": rng.choice(account.roles)}}
        return account.actor(), {"userID": user, "email": account.email(user), "changes": change}

    def _api_key_event(self, account: _Account, kind: str) -> tuple[str | None, dict]:
        rng = self._world
        actor = account.actor()  # chosen before a deleted key leaves the account
        if kind == "apiKey_created":
            key = account.new_id()
            account.key_count += 1
            alias = f"automation-{account.key_count}"
            account.api_keys[key] = alias
            expiry = None if rng.random() < 0.5 else utc_iso(self.now + timedelta(days=365))
            details = {
                "apiKeyID": key,
                "alias": alias,
                "roleID": rng.choice(account.roles),
                "urn": account.key_urn(key),
                "enabled": True,
                "expiryTime": expiry,
            }
            return actor, details
        key = rng.choice(list(account.api_keys))
        if kind == "apiKey_deleted":
            alias = account.api_keys.pop(key)
            if actor == account.key_urn(key):
                actor = account.user_urn(rng.choice(account.users))
            return actor, {"apiKeyID": key, "alias": alias}
        change = {"enabled": {"old": True, "new": rng.random() < 0.5}}
        return actor, {"apiKeyID": key, "alias": account.api_keys[key], "changes": change}

    def retained_events(self, account: str | None = None) -> list[dict[str, Any]]:
        """The events in the log now (one account's, or all), oldest first, as served."""
        return list(self._views[account].events)

    def api_keys_alive(self, account: str) -> dict[str, str]:
        """The account's API keys that exist now: id -> name."""
        return dict(self.accounts[account].api_keys)

    def state(self) -> dict[str, Any]:
        """Clock, request count, events in the log and reads started."""
        return {
            **super().state(),
            "events": len(self._views[None].events),
            "reads": self._reads_started,
        }

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer `GET /api/logs`."""
        if request.path != LOGS_PATH or request.method != "GET":
            return _error(404, "Not Found")
        limited = self._rate_limited()
        if limited:
            return limited
        if request.headers.get("api-version") != "v1":
            return _error(400, "Api-Version header must be v1")
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "ApiKey" or key not in self.api_keys:
            return _error(401, "Invalid API key")
        scope = self.api_keys[key]
        try:
            limit = min(int(request.query.get("limit", MAX_LIMIT)), MAX_LIMIT)
        except ValueError:
            limit = 0
        if limit < 1:
            return _error(400, "limit must be an integer from 1 to 25")
        view = self._views[scope]
        if "cursor" in request.query:
            cursor_at = _CursorPosition.decode(request.query["cursor"], scope)
            if cursor_at is None:
                return _error(400, "Invalid cursor")
        else:
            self._reads_started += 1
            cursor_at = _CursorPosition(
                scope, view.dropped, view.end, 0, limit, self._reads_started
            )
        if self.order == "grouped":
            positions, more = cursor_at.grouped_page(view)
        else:
            positions, more = cursor_at.page(self.order)
        faults = self.faults
        if faults.empty_pages_next > 0:
            faults.empty_pages_next -= 1
            self._detours += 1
            return Response(200, {"logs": [], "next": cursor_at.encode(detour=self._detours)})
        logs = [self._served(view.events[p - view.dropped]) for p in positions if p >= view.dropped]
        if self.order == "shuffled":
            random.Random(cursor_at.seed * 100_003 + cursor_at.page_no).shuffle(logs)
        if faults.stale_pages_next > 0 and "cursor" in request.query and scope in self._last_page:
            faults.stale_pages_next -= 1
            logs = self._last_page[scope]
        self._last_page[scope] = logs
        payload: dict[str, Any] = {"logs": logs}
        if more:
            payload["next"] = cursor_at.following().encode()
        return Response(200, payload)

    def _served(self, event: dict[str, Any]) -> dict[str, Any]:
        if not (self.faults.extra_field or self.faults.drop_optional):
            return event
        record = dict(event)
        if self.faults.extra_field:
            record["severity"] = "info"
            record["origin"] = {"service": "cloudone", "requestID": event["id"][:8]}
        if self.faults.drop_optional:
            record.pop("principalURN", None)
            record.pop("details", None)
        return record

    def _rate_limited(self) -> Response | None:
        if self.max_requests_per_second <= 0:
            return None
        moment = time.monotonic()
        while self._recent and moment - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) < self.max_requests_per_second:
            self._recent.append(moment)
            return None
        wait = max(1, math.ceil(1.0 - (moment - self._recent[0])))
        headers = {"Retry-After": str(wait)} if self.send_retry_after else {}
        return Response(429, {"message": "Too many requests"}, headers)


class _CursorPosition:
    """Where a read stands: the snapshot `[low, high)` of absolute positions it covers, its page
    number and size, and a seed for the shuffled order. Encoded opaquely in the cursor."""

    def __init__(
        self, scope: str | None, low: int, high: int, page_no: int, size: int, seed: int
    ) -> None:
        self.scope, self.low, self.high = scope, low, high
        self.page_no, self.size, self.seed = page_no, size, seed

    def page(self, order: str) -> tuple[range, bool]:
        """The positions of this page (in serving order) and whether a page follows."""
        pages = max(1, math.ceil((self.high - self.low) / self.size))
        block = self.page_no
        if order == "shuffled":  # an affine permutation of the pages, different per read
            step = self.seed % pages or 1
            while math.gcd(step, pages) != 1:
                step += 1
            block = (step * self.page_no + self.seed) % pages
        more = self.page_no + 1 < pages
        if order == "newest":
            top = self.high - block * self.size
            return range(top - 1, max(self.low, top - self.size) - 1, -1), more
        bottom = self.low + block * self.size
        return range(bottom, min(self.high, bottom + self.size)), more

    def grouped_page(self, view: _View) -> tuple[list[int], bool]:
        """This page of the snapshot ordered by account, each account's newest first."""
        live = range(max(self.low, view.dropped), self.high)
        ordered = sorted(live, key=lambda p: (view.events[p - view.dropped]["accountID"], -p))
        start = self.page_no * self.size
        return ordered[start : start + self.size], start + self.size < len(ordered)

    def following(self) -> _CursorPosition:
        return _CursorPosition(
            self.scope, self.low, self.high, self.page_no + 1, self.size, self.seed
        )

    def encode(self, detour: int = 0) -> str:
        """The cursor of this position; a `detour` number makes another cursor to it."""
        fields = (self.scope or "*", self.low, self.high, self.page_no, self.size, self.seed)
        text = "v1:" + ":".join(str(f) for f in (*fields, *([detour] if detour else [])))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, scope: str | None) -> _CursorPosition | None:
        """The position in `cursor`, or None when it is not a cursor of this key's reads."""
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            version, owner, *numbers = text.split(":")
            low, high, page_no, size, seed, *detour = (int(n) for n in numbers)
            if len(detour) > 1:
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        if version != "v1" or owner != (scope or "*") or not 0 < size <= MAX_LIMIT:
            return None
        return cls(scope, low, high, page_no, size, seed)


def _possible(account: _Account, event_type: str) -> str:
    """`event_type`, or a related type when the account cannot have it now (no key to delete:
    one is created)."""
    if event_type == "audit.apiKey_updated.v1" and not account.api_keys:
        return "audit.apiKey_created.v1"
    if event_type == "audit.apiKey_deleted.v1" and len(account.api_keys) < 2:
        return "audit.apiKey_created.v1"
    if event_type == "audit.invitation_updated.v1" and not account.invitations:
        return "audit.invitation_created.v1"
    if event_type == "audit.user_deleted.v1" and len(account.users) < 4:
        return "audit.user_updated.v1"
    return event_type


def _error(status: int, message: str) -> Response:
    return Response(status, {"message": message})
