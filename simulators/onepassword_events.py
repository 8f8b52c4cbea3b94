"""1Password Events Reporting (Events API) simulator: sign-in attempts, item usages, audit events.

Endpoints (v2, and the same under `/api/v1/…`):
- `GET /api/v2/auth/introspect`: `{"uuid", "issued_at", "features", "account_uuid"}` for the token.
- `POST /api/v2/signinattempts`, `/api/v2/itemusages`, `/api/v2/auditevents`: a reset body
  `{"limit", "start_time", "end_time"}` (all optional) or a continuing body `{"cursor"}`; answers
  `{"cursor", "has_more", "items"}`.

The store is eventually consistent, as 1Password warns: every event becomes visible some time
after its timestamp (seconds for most, up to `max_lateness` for a `late_fraction` of them), so an
event can become visible after events with later timestamps. Events are kept in *visibility*
order and a cursor is a position in that order: a client that keeps its cursor gets every late
event, one that polls by timestamp misses some. A reset selects by timestamp among the events
visible at that moment. Events older than `retention` (120 days) are dropped.

Besides the shared fault switches, `OnePasswordFaults` adds two of a misbehaving vendor's: a
stale cache that serves the previous page's items again under a new cursor, and an endless run of
empty pages that each say `has_more` with a new cursor.

Events are generated per hour of simulated time from a generator seeded by (seed, feature, hour),
so the same seed gives the same events however the clock is advanced. Rate limits are kept per
token over sliding windows of real time (600 a minute and 30,000 an hour by default); a request
over a limit gets 429 with `Retry-After`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.server import (
    DEFAULT_START,
    Faults,
    Request,
    Response,
    VendorSimulator,
    check_bearer,
    utc_iso,
)

FEATURES = ("auditevents", "itemusages", "signinattempts")
DEFAULT_TOKENS: Mapping[str, Sequence[str]] = {"op-demo-token": FEATURES}
DEFAULT_EVENTS_PER_DAY: Mapping[str, float] = {
    "signinattempts": 300.0,
    "itemusages": 900.0,
    "auditevents": 60.0,
}
RATE_LIMITS: tuple[tuple[int, float], ...] = ((600, 60.0), (30_000, 3_600.0))
RETENTION = timedelta(days=120)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000

_US = 1_000_000
_HOUR_US = 3_600 * _US
_SEQ_BITS = 32  # an event's position key: visible_at in microseconds, then its sequence number

# Sign-in categories with their share of attempts and the `type` values that go with them.
SIGNIN_CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("success", 0.885, ("credentials_ok", "mfa_ok")),
    ("credentials_failed", 0.06, ("password_secret_bad",)),
    ("mfa_failed", 0.03, ("totp_bad", "totp_timeout", "duo_bad", "u2f_bad", "mfa_missing")),
    ("sso_failed", 0.008, ("sso_failed",)),
    ("modern_version_failed", 0.004, ("modern_version_old", "modern_version_missing")),
    ("firewall_failed", 0.008, ("country_blocked", "ip_blocked", "anonymous_blocked")),
    ("firewall_reported_success", 0.005, ("ip_blocked", "country_blocked")),
)
ITEM_ACTIONS: tuple[tuple[str, float], ...] = (
    ("fill", 0.44),
    ("secure-copy", 0.2),
    ("reveal", 0.15),
    ("server-fetch", 0.07),
    ("enter-item-edit-mode", 0.04),
    ("server-update", 0.03),
    ("server-create", 0.02),
    ("share", 0.015),
    ("export", 0.006),
    ("select-sso-provider", 0.007),
    ("other", 0.007),
)
# (action, object_type, share): what admins and members do, with the sensitive ones rare.
AUDIT_ACTIONS: tuple[tuple[str, str, float], ...] = (
    ("grant", "uva", 0.15),
    ("update", "user", 0.12),
    ("join", "gm", 0.08),
    ("revoke", "uva", 0.05),
    ("grant", "gva", 0.05),
    ("create", "vault", 0.05),
    ("update", "vault", 0.05),
    ("create", "invite", 0.05),
    ("create", "user", 0.04),
    ("enblmfa", "user", 0.04),
    ("leave", "gm", 0.03),
    ("role", "gm", 0.03),
    ("create", "device", 0.05),
    ("update", "account", 0.02),
    ("create", "group", 0.02),
    ("delete", "vault", 0.01),
    ("delete", "user", 0.01),
    ("delete", "group", 0.005),
    ("disblmfa", "user", 0.015),
    ("suspend", "user", 0.015),
    ("reactive", "user", 0.01),
    ("export", "vault", 0.01),
)
# Top-level keys left out when the `drop_optional` fault is on.
OPTIONAL_KEYS = {
    "signinattempts": ("details", "location", "country", "session_uuid"),
    "itemusages": ("location", "used_version"),
    "auditevents": ("aux_id", "aux_uuid", "aux_details", "aux_info", "object_details", "location"),
}
EXTRA_FIELD = "new_field"  # the unknown key every item gains with the `extra_field` fault

_FIRST = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kei")
_LAST = ("Ito", "Khan", "Lopez", "Meyer", "Novak", "Okafor", "Park", "Rossi", "Silva", "Tanaka")
_CLIENTS = (
    ("1Password Browser Extension", "81080002", "Chrome", "131.0.6778.86", "MacOSX", "14.6.1"),
    ("1Password Browser Extension", "81080002", "Firefox", "133.0", "Windows", "10.0.22631"),
    ("1Password for Mac", "81010040", "Mac", "14.6.1", "MacOSX", "14.6.1"),
    ("1Password for Windows", "81010040", "Windows", "10.0.22631", "Windows", "10.0.22631"),
    ("1Password for iOS", "81010038", "iPhone", "18.1", "iOS", "18.1"),
    ("1Password for Android", "81010038", "Android", "15", "Android", "15"),
    ("1Password for Web", "2143", "Chrome", "131.0.6778.86", "Linux", "6.8"),
    ("1Password CLI", "2300401", "Go", "1.23", "Linux", "6.8"),
)
_LOCATIONS = (
    ("CA", "Canada", "Ontario", "Toronto", 43.6532, -79.3832),
    ("CA", "Canada", "British Columbia", "Vancouver", 49.2827, -123.1207),
    ("US", "United States", "New York", "New York", 40.7128, -74.006),
    ("US", "United States", "California", "San Francisco", 37.7749, -122.4194),
    ("GB", "United Kingdom", "England", "London", 51.5072, -0.1276),
    ("DE", "Germany", "Berlin", "Berlin", 52.52, 13.405),
    ("JP", "Japan", "Tokyo", "Tokyo", 35.6762, 139.6503),
)
_DAILY_PROFILE = tuple(0.3 if h < 7 or h > 19 else 1.65 for h in range(24))  # mean 1.0


def op_uuid(rng: random.Random) -> str:
    """A 26-character base32 id, the shape 1Password gives its uuids."""
    return base64.b32encode(rng.randbytes(16)).decode()[:26]


@dataclass
class OnePasswordFaults(Faults):
    """The shared switches, and two that apply to continuing (cursor) requests whose path
    contains `path_contains`."""

    repeat_page_next: int = 0  # the next N pages repeat the previous page's items, cursor moved on
    empty_pages_next: int = 0  # the next N pages are empty, with has_more and a new cursor


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return [value / total for value in out]


_SIGNIN_CUM = _cumulative([share for _, share, _ in SIGNIN_CATEGORIES])
_ITEM_CUM = _cumulative([share for _, share in ITEM_ACTIONS])
_AUDIT_CUM = _cumulative([share for *_, share in AUDIT_ACTIONS])


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    return min(bisect.bisect_left(cumulative, rng.random()), len(cumulative) - 1)


def _rfc3339(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC with milliseconds, as 1Password writes them."""
    moment = datetime.fromtimestamp(us // _US, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{us % _US // 1000:03d}Z"


def _to_us(moment: datetime) -> int:
    return int(moment.timestamp()) * _US + moment.microsecond


def _parse_time(value: Any, field: str) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field} lacks a time zone")
    return _to_us(moment)


class _Event:
    """One stored event: when it happened and became visible, and what to render."""

    __slots__ = ("fields", "overrides", "ts_us", "uuid", "visible_us")

    def __init__(self, ts_us: int, visible_us: int, uuid: str, fields: tuple) -> None:
        self.ts_us = ts_us
        self.visible_us = visible_us
        self.uuid = uuid
        self.fields = fields
        self.overrides: dict[str, Any] | None = None


class _Stream:
    """The events of one feature in visibility order, with their position keys."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.events: list[_Event] = []
        self.max_delay_us = 0

    def add(self, batch: list[tuple[int, _Event]], fixed_us: int) -> None:
        """Insert events that become visible after `fixed_us`: the events visible by then keep
        their positions, so a cursor into them stays valid."""
        if not batch:
            return
        start = bisect.bisect_right(self.keys, self._now_key(fixed_us))
        merged = sorted([*zip(self.keys[start:], self.events[start:], strict=True), *batch])
        del self.keys[start:], self.events[start:]
        self.keys.extend(key for key, _ in merged)
        self.events.extend(event for _, event in merged)
        for _, event in batch:
            self.max_delay_us = max(self.max_delay_us, event.visible_us - event.ts_us)

    def prune(self, cutoff_us: int) -> None:
        """Drop events that were visible before `cutoff_us` (their timestamp is older still)."""
        end = bisect.bisect_left(self.keys, cutoff_us << _SEQ_BITS)
        del self.keys[:end], self.events[:end]

    @staticmethod
    def _now_key(now_us: int) -> int:
        return (now_us << _SEQ_BITS) | ((1 << _SEQ_BITS) - 1)

    def visible_end(self, now_us: int) -> int:
        """Index one past the last event visible at `now_us`."""
        return bisect.bisect_right(self.keys, self._now_key(now_us))


class OnePasswordEventsSimulator(VendorSimulator):
    """A 1Password Business account's Events API (see the module docstring)."""

    name = "onepassword_events"
    step = timedelta(hours=1)

    def __init__(
        self,
        *,
        account_uuid: str = "OPACCTSIMULATED0000000000A",
        seed: int = 7,
        start: datetime = DEFAULT_START,
        tokens: Mapping[str, Sequence[str]] | None = None,
        users: int = 40,
        vaults: int = 6,
        events_per_day: Mapping[str, float] | None = None,
        history_days: float = 7.0,
        late_fraction: float = 0.02,
        max_lateness: timedelta = timedelta(minutes=30),
        retention: timedelta = RETENTION,
        rate_limits: Sequence[tuple[int, float]] = RATE_LIMITS,
    ) -> None:
        """Args:
        account_uuid: the account every token belongs to (introspect's `account_uuid`).
        seed, start: the random seed and the simulated time "now" at construction.
        tokens: token → features it may read (default: `op-demo-token` with all three).
        users, vaults: size of the account.
        events_per_day: mean events a day per feature (signinattempts, itemusages, auditevents).
        history_days: days of events that already exist at `start` (capped by retention).
        late_fraction, max_lateness: share of events that become visible late, and how late at
            most (the rest become visible within 3 seconds).
        retention: events older than this are dropped (120 days, as 1Password keeps them).
        rate_limits: (requests, window seconds) per token; an empty sequence lifts the limit.
        """
        super().__init__(seed=seed, start=start)
        self.faults = OnePasswordFaults()
        self._last_items: dict[str, list[dict[str, Any]]] = {}  # per feature, for a stale cache
        self._empty_pages = 0  # empty pages served by the fault, to make each cursor new
        self.account_uuid = account_uuid
        self.seed = seed
        self.tokens = {
            token: tuple(features) for token, features in (tokens or DEFAULT_TOKENS).items()
        }
        for features in self.tokens.values():
            unknown = set(features) - set(FEATURES)
            if unknown:
                raise ValueError(f"unknown feature(s): {', '.join(sorted(unknown))}")
        self.token_uuids = {token: op_uuid(self.rng) for token in self.tokens}
        self.events_per_day = {**DEFAULT_EVENTS_PER_DAY, **(events_per_day or {})}
        self.late_fraction = late_fraction
        self.max_lateness = max_lateness
        self.retention = retention
        self.rate_limits = tuple(rate_limits)
        self.rate_limited = 0  # requests answered 429 by the rate limiter
        self._request_times: dict[str, deque[float]] = {}
        self._streams = {feature: _Stream() for feature in FEATURES}
        self._seq = 0
        self._users = [self._make_user(i) for i in range(max(users, 1))]
        self._admins = self._users[: max(1, len(self._users) // 10)]
        self._vaults = [op_uuid(self.rng) for _ in range(max(vaults, 1))]
        self._items = {vault: [op_uuid(self.rng) for _ in range(25)] for vault in self._vaults}
        self._groups = [op_uuid(self.rng) for _ in range(4)]
        self._home = [self.rng.randrange(len(_LOCATIONS)) for _ in self._users]
        history = min(timedelta(days=history_days), retention)
        self._next_hour = (_to_us(start - history)) // _HOUR_US
        self._generate_until(_to_us(start))

    # -- the simulated world ------------------------------------------------------------------
    def _make_user(self, index: int) -> dict[str, str]:
        first = _FIRST[index % len(_FIRST)]
        last = _LAST[(index // len(_FIRST)) % len(_LAST)]
        suffix = "" if index < len(_FIRST) * len(_LAST) else str(index)
        email = f"{first}.{last}{suffix}@acme.example".lower()
        return {"uuid": op_uuid(self.rng), "name": f"{first} {last}", "email": email}

    def evolve(self, until: datetime) -> None:
        """Generate the events up to `until`, then drop those past retention."""
        self._generate_until(_to_us(until))
        self.now = until
        cutoff = _to_us(until - self.retention)
        for stream in self._streams.values():
            stream.prune(cutoff)

    def _generate_until(self, until_us: int) -> None:
        # The next hour starts at or after the clock, and its events become visible after it.
        while self._next_hour * _HOUR_US < until_us:
            hour = self._next_hour
            for feature in FEATURES:
                rng = random.Random(f"{self.seed}/{feature}/{hour}")
                expected = self.events_per_day[feature] / 24 * _DAILY_PROFILE[hour % 24]
                count = int(expected + rng.random())
                batch = [self._new_event(feature, rng, hour * _HOUR_US) for _ in range(count)]
                self._streams[feature].add(batch, hour * _HOUR_US)
            self._next_hour += 1

    def _delay_us(self, rng: random.Random) -> int:
        if rng.random() < self.late_fraction:
            return int(rng.uniform(60, max(60.0, self.max_lateness.total_seconds())) * _US)
        return int(rng.uniform(0.05, 3.0) * _US)

    def _new_event(
        self, feature: str, rng: random.Random, hour_us: int, ts_us: int | None = None
    ) -> tuple[int, _Event]:
        ts_us = hour_us + rng.randrange(_HOUR_US) if ts_us is None else ts_us
        visible_us = ts_us + max(1, self._delay_us(rng))
        event = _Event(ts_us, visible_us, op_uuid(rng), self._fields(feature, rng, ts_us))
        self._seq += 1
        return (visible_us << _SEQ_BITS) | self._seq, event

    def _fields(self, feature: str, rng: random.Random, ts_us: int) -> tuple:
        user = rng.randrange(len(self._users))
        client = rng.randrange(len(_CLIENTS))
        location = self._home[user] if rng.random() < 0.9 else rng.randrange(len(_LOCATIONS))
        ip = f"203.0.{113 + location}.{(user * 7) % 250 + 1}"
        if feature == "signinattempts":
            category = _pick(rng, _SIGNIN_CUM)
            kinds = SIGNIN_CATEGORIES[category][2]
            return (user, client, location, ip, op_uuid(rng), category, rng.choice(kinds))
        if feature == "itemusages":
            vault = rng.randrange(len(self._vaults))
            item = rng.choice(self._items[self._vaults[vault]])
            return (
                user,
                client,
                location,
                ip,
                vault,
                item,
                _pick(rng, _ITEM_CUM),
                rng.randint(1, 30),
            )
        action = _pick(rng, _AUDIT_CUM)
        actor = rng.randrange(len(self._admins)) if rng.random() < 0.8 else user  # admins first
        login_us = ts_us - rng.randrange(8 * _HOUR_US)
        return (actor, client, location, ip, action, user, op_uuid(rng), op_uuid(rng), login_us)

    def add_event(
        self,
        feature: str,
        *,
        timestamp: datetime | None = None,
        visible_after: timedelta = timedelta(0),
        **overrides: Any,
    ) -> str:
        """Add one event with `timestamp` (default now) that becomes visible `visible_after`
        from now; `overrides` replace top-level fields of the rendered item. Returns its uuid."""
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}")
        with self.lock:
            rng = random.Random(f"{self.seed}/added/{self._seq}")
            now_us = _to_us(self.now)
            ts_us = _to_us(timestamp) if timestamp else now_us
            key, event = self._new_event(feature, rng, 0, ts_us)
            event.visible_us = now_us + max(0, int(visible_after.total_seconds() * _US))
            event.overrides = overrides
            key = (event.visible_us << _SEQ_BITS) | (key & ((1 << _SEQ_BITS) - 1))
            self._streams[feature].add([(key, event)], now_us - 1)
            return event.uuid

    def visible_uuids(self, feature: str) -> list[str]:
        """The uuids of the events a client can read now (visible and within retention)."""
        with self.lock:
            stream = self._streams[feature]
            now_us = _to_us(self.now)
            cutoff = _to_us(self.now - self.retention)
            end = stream.visible_end(now_us)
            return [e.uuid for e in stream.events[:end] if e.ts_us >= cutoff]

    def revoke(self, token: str) -> None:
        """Revoke a token: from now on it gets 401."""
        with self.lock:
            self.tokens.pop(token, None)

    def state(self) -> dict[str, Any]:
        """Clock, counters, and per feature the visible and not-yet-visible event counts."""
        with self.lock:
            now_us = _to_us(self.now)
            events = {}
            for feature, stream in self._streams.items():
                visible = stream.visible_end(now_us)
                events[feature] = {"visible": visible, "pending": len(stream.keys) - visible}
        return {
            **super().state(),
            "account_uuid": self.account_uuid,
            "rate_limited": self.rate_limited,
            "events": events,
        }

    # -- rendering ----------------------------------------------------------------------------
    def _render(self, feature: str, event: _Event) -> dict[str, Any]:
        fields = event.fields
        user = self._users[fields[0]]
        app, app_version, platform, platform_version, os_name, os_version = _CLIENTS[fields[1]]
        code, country, region, city, latitude, longitude = _LOCATIONS[fields[2]]
        client = {
            "app_name": app,
            "app_version": app_version,
            "platform_name": platform,
            "platform_version": platform_version,
            "os_name": os_name,
            "os_version": os_version,
            "ip_address": fields[3],
        }
        location = {
            "country": country,
            "region": region,
            "city": city,
            "latitude": latitude,
            "longitude": longitude,
        }
        item: dict[str, Any] = {"uuid": event.uuid, "timestamp": _rfc3339(event.ts_us)}
        if feature == "signinattempts":
            category = SIGNIN_CATEGORIES[fields[5]][0]
            item.update(
                session_uuid=fields[4],
                category=category,
                type=fields[6],
                country=code,
                target_user=dict(user),
                client=client,
                location=location,
            )
            if category.startswith("firewall"):
                item["details"] = {"value": code if "country" in fields[6] else fields[3]}
        elif feature == "itemusages":
            item.update(
                used_version=fields[7],
                vault_uuid=self._vaults[fields[4]],
                item_uuid=fields[5],
                action=ITEM_ACTIONS[fields[6]][0],
                user=dict(user),
                client=client,
                location=location,
            )
        else:
            item.update(self._render_audit(fields, client, location))
        if event.overrides:
            item.update(event.overrides)
        if self.faults.drop_optional:
            for key in OPTIONAL_KEYS[feature]:
                item.pop(key, None)
        if self.faults.extra_field:
            item[EXTRA_FIELD] = f"sim-{event.ts_us % 97}"
        return item

    def _render_audit(self, fields: tuple, client: dict, location: dict) -> dict[str, Any]:
        actor_index, _, _, ip, action_index, target, session_uuid, device_uuid, login_us = fields
        actor = self._users[actor_index]
        action, object_type, _ = AUDIT_ACTIONS[action_index]
        person = self._users[target]
        vault = self._vaults[target % len(self._vaults)]
        group = self._groups[target % len(self._groups)]
        item: dict[str, Any] = {
            "actor_uuid": actor["uuid"],
            "actor_details": dict(actor),
            "action": action,
            "object_type": object_type,
        }
        if object_type == "user":
            item.update(object_uuid=person["uuid"], object_details=dict(person))
        elif object_type == "uva":  # a user's access to a vault: the vault, aux the user
            item.update(object_uuid=vault, aux_uuid=person["uuid"], aux_details=dict(person))
            item.update(aux_id=target + 1000, aux_info="A" if action == "grant" else "R")
        elif object_type == "gva":
            item.update(object_uuid=vault, aux_uuid=group, aux_info="A")
        elif object_type == "gm":  # group membership: the group, aux the member
            item.update(object_uuid=group, aux_uuid=person["uuid"], aux_details=dict(person))
            item.update(aux_info="R" if action == "role" else "M")
        elif object_type == "vault":
            item.update(object_uuid=vault)
        elif object_type == "invite":
            item.update(object_uuid=device_uuid, aux_info=person["email"])
        elif object_type == "account":
            item.update(object_uuid=self.account_uuid)
        else:
            item.update(object_uuid=device_uuid)
        item["session"] = {
            "uuid": session_uuid,
            "login_time": _rfc3339(login_us),
            "device_uuid": device_uuid,
            "ip": ip,
        }
        item["location"] = location
        return item

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer one Events API request."""
        denied = check_bearer(request, "Authorization", "Bearer", set(self.tokens))
        if denied is not None:
            return denied
        token = request.headers["authorization"][len("Bearer ") :]
        limited = self._rate_limit(token)
        if limited is not None:
            return limited
        parts = request.path.rstrip("/").split("/")
        if request.path in ("/api/v2/auth/introspect", "/api/auth/introspect"):
            if request.method != "GET":
                return _error(405, "Method Not Allowed")
            return self._introspect(token, v1=request.path == "/api/auth/introspect")
        if len(parts) == 4 and parts[:2] == ["", "api"] and parts[2] in ("v1", "v2"):
            feature = parts[3]
            if feature in FEATURES:
                if request.method != "POST":
                    return _error(405, "Method Not Allowed")
                if feature not in self.tokens[token]:
                    return _error(401, f"Unauthorized: the token has no access to {feature}")
                return self._events(feature, request)
        return _error(404, "Not Found")

    def _rate_limit(self, token: str) -> Response | None:
        if not self.rate_limits:
            return None
        now = time.monotonic()
        times = self._request_times.setdefault(token, deque())
        longest = max(window for _, window in self.rate_limits)
        while times and times[0] <= now - longest:
            times.popleft()
        wait = 0.0
        for limit, window in self.rate_limits:
            recent = len(times) - bisect.bisect_right(times, now - window)
            if recent >= limit:
                wait = max(wait, times[len(times) - limit] + window - now)
        if wait > 0:
            self.rate_limited += 1
            retry_after = str(max(1, math.ceil(wait)))
            return Response(
                429, {"status": 429, "message": "Too Many Requests"}, {"Retry-After": retry_after}
            )
        times.append(now)
        return None

    def _introspect(self, token: str, *, v1: bool) -> Response:
        issued = utc_iso(self.now.replace(microsecond=0) - timedelta(days=30))
        features = list(self.tokens[token])
        if v1:
            return Response(
                200, {"UUID": self.token_uuids[token], "IssuedAt": issued, "Features": features}
            )
        body = {
            "uuid": self.token_uuids[token],
            "issued_at": issued,
            "features": features,
            "account_uuid": self.account_uuid,
        }
        return Response(200, body)

    def _events(self, feature: str, request: Request) -> Response:
        try:
            body = request.json() if request.body.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            position = self._position(feature, body)
        except ValueError as exc:
            return _error(400, f"Bad Request: {exc}")
        faults = self.faults
        if "cursor" in body and faults.path_contains in request.path:
            if faults.empty_pages_next > 0:
                faults.empty_pages_next -= 1
                self._empty_pages += 1
                cursor = self._encode_cursor(feature, *position, serial=self._empty_pages)
                return Response(200, {"cursor": cursor, "has_more": True, "items": []})
            if faults.repeat_page_next > 0 and feature in self._last_items:
                faults.repeat_page_next -= 1
                page = self._page(feature, *position)
                return Response(200, {**page, "items": self._last_items[feature]})
        page = self._page(feature, *position)
        self._last_items[feature] = page["items"]
        return Response(200, page)

    def _position(self, feature: str, body: dict[str, Any]) -> tuple[int, int, int | None, int]:
        """(after key, start µs, end µs or None, limit) from a reset or a continuing body."""
        if "cursor" in body:
            if set(body) != {"cursor"}:
                raise ValueError("a cursor request takes no other fields")
            return self._decode_cursor(feature, body["cursor"])
        unknown = set(body) - {"limit", "start_time", "end_time"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        limit = body.get("limit", DEFAULT_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}")
        end_us = _parse_time(body["end_time"], "end_time") if "end_time" in body else None
        if "start_time" in body:
            start_us = _parse_time(body["start_time"], "start_time")
        else:
            start_us = (end_us or _to_us(self.now)) - _HOUR_US
        if end_us is not None and end_us <= start_us:
            raise ValueError("end_time must be after start_time")
        return ((start_us << _SEQ_BITS) - 1, start_us, end_us, limit)

    def _encode_cursor(
        self, feature: str, after: int, start: int, end: int | None, limit: int, serial: int = 0
    ) -> str:
        """A cursor for the position after `after`; `serial` tells apart cursors that name the
        same position."""
        fields = [feature, after, start, end, limit] + ([serial] if serial else [])
        raw = json.dumps(fields, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_cursor(self, feature: str, cursor: Any) -> tuple[int, int, int | None, int]:
        try:
            padded = str(cursor) + "=" * (-len(str(cursor)) % 4)
            kind, after, start, end, limit, *_ = json.loads(base64.urlsafe_b64decode(padded))
            if kind != feature:
                raise ValueError
            return int(after), int(start), None if end is None else int(end), int(limit)
        except (ValueError, TypeError, binascii.Error):
            raise ValueError("invalid cursor") from None

    def _page(self, feature: str, after: int, start: int, end: int | None, limit: int) -> dict:
        stream = self._streams[feature]
        now_us = _to_us(self.now)
        stop = stream.visible_end(now_us)
        if end is not None:  # nothing visible after end + the longest delay has an earlier time
            stop = min(
                stop, bisect.bisect_right(stream.keys, (end + stream.max_delay_us + 1) << _SEQ_BITS)
            )
        lowest = max(start, _to_us(self.now - self.retention))
        index = bisect.bisect_right(stream.keys, after)
        items = []
        while index < stop and len(items) < limit:
            event = stream.events[index]
            if event.ts_us >= lowest and (end is None or event.ts_us < end):
                items.append(self._render(feature, event))
            after = stream.keys[index]
            index += 1
        cursor = self._encode_cursor(feature, after, start, end, limit)
        return {"cursor": cursor, "has_more": index < stop, "items": items}


def _error(status: int, message: str) -> Response:
    return Response(status, {"status": status, "message": message})
