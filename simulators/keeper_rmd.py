"""A simulator of Keeper's Risk Management Dashboard (RMD) Admin REST API.

It serves the six `/api/rest/rmd/...` endpoints of the contract (`x-api-token: Bearer <token>`)
over a simulated enterprise that changes day by day: users join, leave, log in, go dormant or
come back, and create their first vault record; security benchmarks get resolved or ignored and
the automatically checked ones can regress; audit events arrive at rates that rise and fall.

At `start` the world already has 60 days of history (the daily evolution is run internally from
`start - 60 days`), so the first call sees a lived-in enterprise. All randomness comes from
`self.rng`: a seed and a sequence of `advance` calls always give the same answers. The world
changes in whole simulated days (`step`); an advance by hours moves only the clock until a day is
complete, so 24 one-hour advances give the same world as one one-day advance.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from simulators.server import DEFAULT_START, Request, Response, VendorSimulator, check_bearer

BENCHMARK_IDS = (
    "SB_DEPLOY_ACROSS_ENTIRE_ORGANIZATION",
    "SB_PREVENT_INSTALLATION_OF_UNTRUSTED_EXTENSIONS",
    "SB_ENABLE_ACCOUNT_TRANSFER_POLICY",
    "SB_REDUCE_ADMINISTRATOR_PRIVILEGE",
    "SB_ENSURE_OUTSIDE_SSO_ADMINISTRATOR_EXISTS",
    "SB_LOCK_DOWN_SSO_PROVIDER",
    "SB_CREATE_AT_LEAST_TWO_KEEPER_ADMINISTRATORS",
    "SB_ENSURE_TWO_FACTOR_AUTHENTICATION_ADMIN_USERS",
    "SB_ENFORCE_STRONG_MASTER_PASSWORD",
    "SB_ENSURE_TWO_FACTOR_AUTHENTICATION_FOR_END_USERS",
    "SB_CONFIGURE_IP_ALLOWLISTING",
    "SB_CREATE_ALERTS",
    "SB_DISABLE_BROWSER_PASSWORD_MANAGERS",
    "SB_DISABLE_ACCOUNT_RECOVERY",
    "SB_ENFORCE_LEAST_PRIVILEGE_POLICY",
)
# The benchmarks Keeper can check by itself; only these regress without an admin's action.
AUTO_RESOLVE_IDS = frozenset(
    {
        "SB_DEPLOY_ACROSS_ENTIRE_ORGANIZATION",
        "SB_CREATE_AT_LEAST_TWO_KEEPER_ADMINISTRATORS",
        "SB_ENSURE_TWO_FACTOR_AUTHENTICATION_ADMIN_USERS",
        "SB_ENFORCE_STRONG_MASTER_PASSWORD",
        "SB_ENSURE_TWO_FACTOR_AUTHENTICATION_FOR_END_USERS",
    }
)
STATUSES = ("RESOLVED", "UNRESOLVED", "IGNORED")

# Audit event types made by the daily evolution: (events a day, more events a day per user,
# who is attributed: "user" any user, "records" a user with records, "admin" the admin).
_EVENT_RATES: dict[str, tuple[float, float, str]] = {
    "login_failure": (0.5, 0.012, "user"),
    "two_factor_code_invalid": (0.2, 0.004, "user"),
    "account_recovery_decline": (0.05, 0.0015, "user"),
    "bw_record_high_risk": (0.2, 0.003, "records"),
    "exported_records": (0.05, 0.0005, "records"),
    "login_failed_ip_whitelist": (0.8, 0.002, "user"),
    "lock_user": (0.1, 0.0002, "admin"),
    "added_admin_key": (0.04, 0.0, "admin"),
    "role_enforcement_changed": (0.15, 0.0, "admin"),
}
# `delete_user`: one per departing user (by the admin); `set_security_benchmark`: one per change
# POSTed to set_security_benchmarks (by the admin).
EVENT_TYPES = (*_EVENT_RATES, "delete_user", "set_security_benchmark")
# An event type that first occurs two weeks after `start`, so a newly appearing type can be seen.
NEW_EVENT_TYPE = "login_failed_ip_whitelist"
NEW_EVENT_DELAY = timedelta(days=14)

HISTORY = timedelta(days=60)  # simulated before `start`; also how long events are kept
RECENT = timedelta(days=30)  # "logged in recently"; also the alert summary's window
DAY_SECONDS = 86_400

# Daily rates per user.
_JOIN_RATE = 0.0005
_LEAVE_RATE = 0.0004
_DRIFT_RATE = 0.004  # a user's login habit is redrawn (goes dormant, comes back, ...)
_RECORDS_DELETED_RATE = 0.0003  # a user deletes all their records
# Daily chances for a benchmark.
_RESOLVE_RATE = 0.006  # UNRESOLVED -> RESOLVED or IGNORED (auto_resolve ones: twice as often)
_REGRESS_RATE = 0.02  # RESOLVED -> UNRESOLVED, auto_resolve ones only

_FIRST_NAMES = (
    "aiko", "ben", "carla", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas",
    "kaito", "lena", "marco", "nadia", "omar", "priya", "quinn", "rosa", "sven", "tomoko",
    "uma", "victor", "wen", "ximena", "yusuf", "zoe", "ana", "bruno", "chloe", "daniel",
    "emma", "felix", "hana", "ivan", "julia", "kenji", "laura", "mei", "noah", "olga",
)  # fmt: skip
_LAST_NAMES = (
    "abe", "baker", "chen", "diaz", "eriksen", "fischer", "garcia", "hayashi", "ito", "jensen",
    "kim", "lopez", "muller", "nakamura", "okafor", "petrov", "quist", "rossi", "sato", "tanaka",
    "ueda", "varga", "wong", "xu", "yamada", "zimmer", "alvarez", "brown", "cohen", "dubois",
    "evans", "ferrari", "gupta", "horvat", "ivanova", "kowalski", "larsen", "moreau", "novak",
    "smith",
)  # fmt: skip


class _User:
    __slots__ = ("email", "has_records", "last_login", "login_p", "record_p")

    def __init__(self, email: str, login_p: float, record_p: float) -> None:
        self.email = email
        # Daily chance to log in; before the first login, the chance to accept the invitation.
        self.login_p = login_p
        self.record_p = record_p  # chance, on a login day, to create a first record
        self.last_login: int | None = None  # epoch seconds
        self.has_records = False


class _Benchmark:
    __slots__ = ("auto_resolve", "id", "last_updated", "status")

    def __init__(self, benchmark_id: str) -> None:
        self.id = benchmark_id
        self.auto_resolve = benchmark_id in AUTO_RESOLVE_IDS
        self.status = "UNRESOLVED"
        self.last_updated: int | None = None  # epoch seconds of the last status change


class KeeperRmdSimulator(VendorSimulator):
    """Keeper RMD Admin REST API over a simulated enterprise of about `users` users.

    Args:
        users: head count at `start` (the first user is the admin, who never leaves).
        seed: seed of the random generator; the same seed gives the same world.
        start: the simulated clock's start; the world has 60 days of history before it.
        tokens: API tokens accepted in `x-api-token: Bearer <token>`.
        domain: e-mail domain of the users.
    """

    name = "keeper_rmd"
    step = timedelta(days=1)

    def __init__(
        self,
        *,
        users: int = 300,
        seed: int = 7,
        start: datetime = DEFAULT_START,
        tokens: Iterable[str] = ("keeper-demo-token",),
        domain: str = "example.com",
    ) -> None:
        if users < 1:
            raise ValueError("users must be at least 1")
        super().__init__(seed=seed, start=start)
        self.tokens = set(tokens)
        self.domain = domain
        self._start = start
        self._routes: dict[str, tuple[str, Callable[[Request], Response]]] = {
            "/api/rest/rmd/get_enterprise_stat": ("GET", self._get_enterprise_stat),
            "/api/rest/rmd/get_enterprise_stat_details": ("GET", self._get_stat_details),
            "/api/rest/rmd/get_security_alerts_summary": ("GET", self._get_alerts_summary),
            "/api/rest/rmd/get_security_alerts_detail": ("GET", self._get_alerts_detail),
            "/api/rest/rmd/get_security_benchmarks": ("GET", self._get_benchmarks),
            "/api/rest/rmd/set_security_benchmarks": ("POST", self._set_benchmarks),
        }
        self._users: list[_User] = []
        self._emails: set[str] = set()
        self._benchmarks = {bid: _Benchmark(bid) for bid in BENCHMARK_IDS}
        self._events: list[tuple[int, str, str]] = []  # (epoch seconds, event type, user)
        self._event_level = dict.fromkeys(_EVENT_RATES, 0.0)  # log of each rate's drift factor
        self._version = 0  # bumped whenever users change; keys the details cache
        self._details_cache: tuple[int, list[dict[str, Any]]] | None = None
        self.now = start - HISTORY
        self._simulated_until = self.now  # the world is simulated up to here, in whole days
        self._populate(users, int(self.now.timestamp()))
        self.evolve(start)

    # -- test helpers -------------------------------------------------------------------------
    def user_count(self) -> int:
        """How many users the enterprise has now."""
        with self.lock:
            return len(self._users)

    def benchmark(self, benchmark_id: str) -> dict[str, Any]:
        """One benchmark's record as `get_security_benchmarks` shows it (without faults)."""
        with self.lock:
            return _benchmark_record(self._benchmarks[benchmark_id])

    def state(self) -> dict[str, Any]:
        """The base summary plus head count and the number of events kept."""
        with self.lock:
            return {**super().state(), "users": len(self._users), "events": len(self._events)}

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer one API request."""
        route = self._routes.get(request.path)
        if route is None:
            return _error(404, "Not Found")
        denied = check_bearer(request, "x-api-token", "Bearer", self.tokens)
        if denied is not None:
            return denied
        method, answer = route
        if request.method != method:
            return Response(
                405, {"status": 405, "message": "Method Not Allowed"}, {"Allow": method}
            )
        return answer(request)

    def _get_enterprise_stat(self, request: Request) -> Response:
        recent_from = (self.now - RECENT).timestamp()
        record = {
            "users_has_records": sum(1 for u in self._users if u.has_records),
            "users_logged_recent": sum(
                1 for u in self._users if u.last_login is not None and u.last_login >= recent_from
            ),
        }
        return Response(200, self._with_faults([record], ())[0])

    def _get_stat_details(self, request: Request) -> Response:
        records = self._with_faults(self._detail_records(), ("last_logged_in",))
        return Response(200, {"enterprise_stat_details": records})

    def _get_alerts_summary(self, request: Request) -> Response:
        rows = [row for row in self._alert_rows() if row["event_occurrences"] or row["last_events"]]
        return Response(200, {"security_alerts_summary": self._with_faults(rows, ())})

    def _get_alerts_detail(self, request: Request) -> Response:
        event_type = request.query.get("audit_event_type", "")
        if event_type not in EVENT_TYPES:
            return _error(400, "Can't find required query param: audit_event_type value")
        rows = [row for row in self._alert_rows() if row["event"] == event_type]
        return Response(200, {"security_alerts_summary": self._with_faults(rows, ())})

    def _get_benchmarks(self, request: Request) -> Response:
        records = [_benchmark_record(b) for b in self._benchmarks.values()]
        return Response(200, {"security_benchmarks": self._with_faults(records, ("last_updated",))})

    def _set_benchmarks(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, list) or not body:
            return _error(
                400, 'request body must be a non-empty JSON list of {"benchmark", "status"} objects'
            )
        changes: list[tuple[str, str]] = []
        for index, item in enumerate(body):
            if not isinstance(item, dict):
                return _error(400, f"item {index} is not an object")
            benchmark_id, status = item.get("benchmark"), item.get("status")
            if not isinstance(benchmark_id, str) or benchmark_id not in self._benchmarks:
                return _error(400, f"item {index}: unknown benchmark {benchmark_id!r}")
            if status not in STATUSES:
                return _error(400, f"item {index}: status must be one of {', '.join(STATUSES)}")
            changes.append((benchmark_id, status))
        stamp = int(self.now.timestamp())
        admin = self._users[0].email
        for benchmark_id, status in changes:
            benchmark = self._benchmarks[benchmark_id]
            benchmark.status = status
            benchmark.last_updated = stamp
            self._events.append((stamp, "set_security_benchmark", admin))
        changed = dict.fromkeys(benchmark_id for benchmark_id, _ in changes)
        records = [_benchmark_record(self._benchmarks[benchmark_id]) for benchmark_id in changed]
        return Response(200, {"security_benchmarks": self._with_faults(records, ("last_updated",))})

    def _detail_records(self) -> list[dict[str, Any]]:
        """The details records, rebuilt only when users changed (they never change in place)."""
        if self._details_cache is None or self._details_cache[0] != self._version:
            records = []
            for user in self._users:
                record: dict[str, Any] = {}
                if user.last_login is not None:
                    record["last_logged_in"] = _keeper_time(user.last_login)
                record["has_records"] = user.has_records
                record["enterprise_user_id"] = user.email
                records.append(record)
            self._details_cache = (self._version, records)
        return self._details_cache[1]

    def _alert_rows(self) -> list[dict[str, Any]]:
        """One row per event type: this 30-day window and the 30 days before it."""
        now = self.now.timestamp()
        current_from = now - RECENT.total_seconds()
        previous_from = now - HISTORY.total_seconds()
        counts: Counter[tuple[str, bool]] = Counter()
        users: defaultdict[tuple[str, bool], set[str]] = defaultdict(set)
        for moment, event_type, user in self._events:
            if previous_from < moment <= now:
                key = (event_type, moment > current_from)
                counts[key] += 1
                users[key].add(user)
        return [
            {
                "event_occurrences": counts[event_type, True],
                "unique_users": len(users[event_type, True]),
                "last_users": len(users[event_type, False]),
                "event": event_type,
                "last_events": counts[event_type, False],
            }
            for event_type in EVENT_TYPES
        ]

    def _with_faults(self, records: list[dict[str, Any]], optional: tuple[str, ...]) -> list:
        """Records as served: optional fields dropped and/or an unknown field added on demand."""
        drop = self.faults.drop_optional and bool(optional)
        if not (drop or self.faults.extra_field):
            return records
        shaped = []
        for record in records:
            record = {k: v for k, v in record.items() if not (drop and k in optional)}
            if self.faults.extra_field:
                record["risk_score"] = 0.3
            shaped.append(record)
        return shaped

    # -- the simulated world ------------------------------------------------------------------
    def evolve(self, until: datetime) -> None:
        """Simulate every whole day that ends by `until`, then set the clock to `until`."""
        if until < self.now:
            raise ValueError("the simulated clock only moves forward")
        while self._simulated_until + self.step <= until:
            day_start = self._simulated_until
            self._simulate_day(int(day_start.timestamp()), warmup=day_start < self._start)
            self._simulated_until = day_start + self.step
        self.now = until

    def _populate(self, count: int, at: int) -> None:
        """The enterprise as it was at `at` (epoch seconds), before the simulated history."""
        rng = self.rng
        admin = _User(f"admin@{self.domain}", 0.9, 0.0)
        admin.last_login = at - 1 - int(rng.random() * DAY_SECONDS)
        admin.has_records = True
        self._emails.add(admin.email)
        self._users.append(admin)
        for _ in range(count - 1):
            if rng.random() < 0.055:  # invited, never logged in
                self._users.append(self._new_user(rng.uniform(0.0005, 0.004)))
                continue
            login_p = self._habit()
            user = _User(self._new_email(), login_p, 0.0)
            days_ago = 1 + min(364, int(math.log(1.0 - rng.random()) / math.log(1.0 - login_p)))
            user.last_login = at - days_ago * DAY_SECONDS + int(rng.random() * DAY_SECONDS)
            user.has_records = rng.random() < 0.66
            if not user.has_records:
                user.record_p = rng.uniform(0.01, 0.05) if rng.random() < 0.25 else 0.0005
            self._users.append(user)
        for benchmark in self._benchmarks.values():
            if rng.random() < 0.15:
                benchmark.status = "RESOLVED"
                benchmark.last_updated = at - int(rng.random() * 120 * DAY_SECONDS)

    def _habit(self) -> float:
        """A daily login chance: mostly daily users, some occasional, some nearly dormant."""
        r = self.rng.random()
        if r < 0.64:
            return self.rng.uniform(0.25, 0.9)
        if r < 0.84:
            return self.rng.uniform(0.015, 0.08)
        return self.rng.uniform(0.0005, 0.008)

    def _new_email(self) -> str:
        base = f"{self.rng.choice(_FIRST_NAMES)}.{self.rng.choice(_LAST_NAMES)}"
        email, n = f"{base}@{self.domain}", 1
        while email in self._emails:
            n += 1
            email = f"{base}{n}@{self.domain}"
        self._emails.add(email)
        return email

    def _new_user(self, accept_p: float) -> _User:
        """An invited user: no login and no records yet."""
        record_p = self.rng.uniform(0.05, 0.3) if self.rng.random() < 0.7 else 0.002
        return _User(self._new_email(), accept_p, record_p)

    def _simulate_day(self, day: int, *, warmup: bool) -> None:
        """One simulated day from `day` (epoch seconds). During the warm-up before `start` as
        many users join as leave, so the head count at `start` is the one asked for."""
        rng = self.rng
        rand = rng.random
        users = self._users
        self._version += 1
        # Login habits drift: some users go dormant, some dormant ones come back.
        for _ in range(self._rounded(len(users) * _DRIFT_RATE)):
            user = users[rng.randrange(len(users))]
            if user is not users[0] and user.last_login is not None:
                user.login_p = self._habit()
        # Logins, and first records on login days.
        for user in users:
            if rand() < user.login_p:
                if user.last_login is None:  # accepted the invitation: a habit from now on
                    user.login_p = self._habit()
                user.last_login = day + int(rand() * DAY_SECONDS)
                if not user.has_records and rand() < user.record_p:
                    user.has_records = True
        # Some users delete all their records.
        for _ in range(self._rounded(len(users) * _RECORDS_DELETED_RATE)):
            users[rng.randrange(len(users))].has_records = False
        # Departures (removed by the admin), then arrivals (they log in on a later day).
        day_events: list[tuple[int, str, str]] = []
        leaving = min(self._poisson(len(users) * _LEAVE_RATE), len(users) - 1)
        for _ in range(leaving):
            users.pop(1 + rng.randrange(len(users) - 1))
            day_events.append((day + int(rand() * DAY_SECONDS), "delete_user", users[0].email))
        joining = leaving if warmup else self._poisson(len(users) * _JOIN_RATE)
        for _ in range(joining):
            accept_p = rng.uniform(0.2, 0.8) if rand() < 0.85 else rng.uniform(0.002, 0.02)
            users.append(self._new_user(accept_p))
        day_events.extend(self._day_alerts(day))
        day_events.sort()
        self._events.extend(day_events)
        self._evolve_benchmarks(day)
        kept_from = day + DAY_SECONDS - int(HISTORY.total_seconds())
        self._events = [event for event in self._events if event[0] > kept_from]

    def _day_alerts(self, day: int) -> list[tuple[int, str, str]]:
        """The day's audit events; each type's rate follows its own slowly drifting factor."""
        rng = self.rng
        users = self._users
        new_type_from = int((self._start + NEW_EVENT_DELAY).timestamp())
        events = []
        for event_type, (base, per_user, actor) in _EVENT_RATES.items():
            level = 0.9 * self._event_level[event_type] + rng.gauss(0.0, 0.3)
            self._event_level[event_type] = level
            if event_type == NEW_EVENT_TYPE and day < new_type_from:
                continue
            for _ in range(self._poisson((base + per_user * len(users)) * math.exp(level))):
                user = users[0] if actor == "admin" else users[rng.randrange(len(users))]
                if actor == "records":
                    for _ in range(3):  # prefer a user who has records
                        if user.has_records:
                            break
                        user = users[rng.randrange(len(users))]
                events.append((day + int(rng.random() * DAY_SECONDS), event_type, user.email))
        return events

    def _evolve_benchmarks(self, day: int) -> None:
        rng = self.rng
        for benchmark in self._benchmarks.values():
            r = rng.random()
            if benchmark.status == "UNRESOLVED":
                if r < _RESOLVE_RATE * (2 if benchmark.auto_resolve else 1):
                    benchmark.status = "RESOLVED" if rng.random() < 0.75 else "IGNORED"
                    benchmark.last_updated = day + int(rng.random() * DAY_SECONDS)
            elif benchmark.status == "RESOLVED" and benchmark.auto_resolve and r < _REGRESS_RATE:
                benchmark.status = "UNRESOLVED"
                benchmark.last_updated = day + int(rng.random() * DAY_SECONDS)

    def _rounded(self, expected: float) -> int:
        """`expected` rounded up or down at random, so the mean is right."""
        return int(expected + self.rng.random())

    def _poisson(self, mean: float) -> int:
        """A Poisson-distributed count (normal approximation for large means)."""
        if mean <= 0:
            return 0
        if mean > 50:
            return max(0, round(self.rng.gauss(mean, math.sqrt(mean))))
        limit, count, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count


def _benchmark_record(benchmark: _Benchmark) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if benchmark.last_updated is not None:
        record["last_updated"] = _keeper_time(benchmark.last_updated)
    record.update(id=benchmark.id, auto_resolve=benchmark.auto_resolve, status=benchmark.status)
    return record


def _keeper_time(epoch_seconds: int) -> str:
    """Keeper's `YYYY-MM-DD HH:MM:SS` in UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))


def _error(status: int, message: str) -> Response:
    return Response(status, {"status": status, "message": message})
