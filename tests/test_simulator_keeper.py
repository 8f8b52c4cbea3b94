"""The Keeper RMD simulator, exercised over real HTTP on loopback."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from simulators.keeper_rmd import (
    BENCHMARK_IDS,
    EVENT_TYPES,
    NEW_EVENT_TYPE,
    KeeperRmdSimulator,
)
from simulators.server import SimulatorServer

TOKEN = "keeper-demo-token"
HEADERS = {"x-api-token": f"Bearer {TOKEN}"}
API = "/api/rest/rmd"
GET_PATHS = (
    "get_enterprise_stat",
    "get_enterprise_stat_details",
    "get_security_alerts_summary",
    "get_security_alerts_detail",
    "get_security_benchmarks",
)
KEEPER_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ALERT_KEYS = {"event", "event_occurrences", "unique_users", "last_events", "last_users"}
DETAIL_400 = {"status": 400, "message": "Can't find required query param: audit_event_type value"}


class Api:
    """A tiny client for one running simulator."""

    def __init__(self, sim: KeeperRmdSimulator, url: str) -> None:
        self.sim = sim
        self.url = url

    def get(self, path: str, headers: dict[str, str] | None = None, **params: str):
        return requests.get(
            f"{self.url}{API}/{path}",
            headers=HEADERS if headers is None else headers,
            params=params,
            timeout=30,
        )

    def body(self, path: str, **params: str) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, **kwargs: Any):
        return requests.post(f"{self.url}{API}/{path}", headers=HEADERS, timeout=30, **kwargs)

    def control(self, path: str, payload: dict[str, Any]) -> Any:
        response = requests.post(f"{self.url}/_sim/{path}", json=payload, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def details(self) -> list[dict[str, Any]]:
        return self.body("get_enterprise_stat_details")["enterprise_stat_details"]

    def summary(self) -> dict[str, dict[str, Any]]:
        rows = self.body("get_security_alerts_summary")["security_alerts_summary"]
        return {row["event"]: row for row in rows}

    def benchmarks(self) -> list[dict[str, Any]]:
        return self.body("get_security_benchmarks")["security_benchmarks"]


@pytest.fixture
def api() -> Iterator[Api]:
    sim = KeeperRmdSimulator(users=300, seed=7)
    with SimulatorServer(sim) as server:
        yield Api(sim, server.url)


def counts_from_details(details: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """What get_enterprise_stat should say, derived from the details."""
    recent_from = now - timedelta(days=30)
    recent = 0
    for row in details:
        if "last_logged_in" in row:
            logged_in = datetime.strptime(row["last_logged_in"], "%Y-%m-%d %H:%M:%S")
            recent += logged_in.replace(tzinfo=UTC) >= recent_from
    return {
        "users_has_records": sum(row["has_records"] for row in details),
        "users_logged_recent": recent,
    }


def keeper_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- auth and routing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-token": "Bearer wrong-token"},
        {"x-api-token": TOKEN},
        {"Authorization": f"Bearer {TOKEN}"},
    ],
    ids=["missing", "wrong-token", "no-scheme", "wrong-header"],
)
def test_every_endpoint_needs_the_token(api: Api, headers: dict[str, str]) -> None:
    for path in GET_PATHS:
        response = api.get(path, headers=headers, audit_event_type="login_failure")
        assert response.status_code == 401, path
        assert response.json() == {"status": 401, "message": "Unauthorized"}
    response = requests.post(
        f"{api.url}{API}/set_security_benchmarks", headers=headers, json=[], timeout=30
    )
    assert response.status_code == 401


def test_unknown_path_is_404_and_wrong_method_405(api: Api) -> None:
    response = api.get("get_everything")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "message": "Not Found"}
    response = api.get("set_security_benchmarks")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    response = api.post("get_enterprise_stat", json=[])
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


# -- shapes ------------------------------------------------------------------------------------
def test_enterprise_stat_details_shape(api: Api) -> None:
    details = api.details()
    assert len(details) == api.sim.user_count() == 300
    emails = [row["enterprise_user_id"] for row in details]
    assert len(set(emails)) == len(emails)
    assert emails[0] == "admin@example.com"
    for row in details:
        assert set(row) <= {"enterprise_user_id", "last_logged_in", "has_records"}
        assert row["enterprise_user_id"].endswith("@example.com")
        assert isinstance(row["has_records"], bool)
        if "last_logged_in" in row:
            assert KEEPER_TIME.match(row["last_logged_in"])
            assert row["last_logged_in"] <= keeper_time(api.sim.now)
        else:
            assert row["has_records"] is False  # records need a login
    never = sum("last_logged_in" not in row for row in details)
    assert 0 < never < len(details) // 5


def test_enterprise_stat_agrees_with_details(api: Api) -> None:
    for advance in (timedelta(0), timedelta(hours=13), timedelta(days=3, hours=2)):
        api.sim.advance(days=advance.days, hours=advance.seconds / 3600)
        stat = api.body("get_enterprise_stat")
        assert set(stat) == {"users_has_records", "users_logged_recent"}
        assert all(type(value) is int for value in stat.values())
        assert stat == counts_from_details(api.details(), api.sim.now)


def test_world_at_start_has_history(api: Api) -> None:
    stat = api.body("get_enterprise_stat")
    assert 0.6 <= stat["users_logged_recent"] / 300 <= 0.9
    assert 0.5 <= stat["users_has_records"] / 300 <= 0.8
    oldest = min(row["last_logged_in"] for row in api.details() if "last_logged_in" in row)
    assert oldest < keeper_time(api.sim.now - timedelta(days=60))
    summary = api.summary()
    assert any(row["last_events"] for row in summary.values())
    assert any(row["event_occurrences"] for row in summary.values())
    statuses = {row["status"] for row in api.benchmarks()}
    assert "UNRESOLVED" in statuses
    assert statuses & {"RESOLVED", "IGNORED"}


def test_alerts_summary_and_detail_shape(api: Api) -> None:
    summary = api.summary()
    assert summary
    assert set(summary) <= set(EVENT_TYPES)
    assert NEW_EVENT_TYPE not in summary  # appears only two weeks after start
    assert "set_security_benchmark" not in summary  # only a POST makes it
    for event, row in summary.items():
        assert set(row) == ALERT_KEYS
        assert row["event_occurrences"] + row["last_events"] > 0
        assert 0 <= row["unique_users"] <= row["event_occurrences"]
        assert 0 <= row["last_users"] <= row["last_events"]
        detail = api.body("get_security_alerts_detail", audit_event_type=event)
        assert detail == {"security_alerts_summary": [row]}


@pytest.mark.parametrize("params", [{}, {"audit_event_type": ""}, {"audit_event_type": "nope"}])
def test_alerts_detail_needs_a_known_event_type(api: Api, params: dict[str, str]) -> None:
    response = api.get("get_security_alerts_detail", **params)
    assert response.status_code == 400
    assert response.json() == DETAIL_400


def test_alerts_detail_of_a_quiet_known_type_is_zeros(api: Api) -> None:
    detail = api.body("get_security_alerts_detail", audit_event_type="set_security_benchmark")
    row = dict.fromkeys(ALERT_KEYS - {"event"}, 0)
    assert detail == {"security_alerts_summary": [{**row, "event": "set_security_benchmark"}]}


def test_benchmarks_shape(api: Api) -> None:
    benchmarks = api.benchmarks()
    assert [row["id"] for row in benchmarks] == list(BENCHMARK_IDS)
    assert len(BENCHMARK_IDS) == 15
    for row in benchmarks:
        assert set(row) <= {"id", "status", "auto_resolve", "last_updated"}
        assert row["status"] in {"RESOLVED", "UNRESOLVED", "IGNORED"}
        assert isinstance(row["auto_resolve"], bool)
        if "last_updated" in row:
            assert KEEPER_TIME.match(row["last_updated"])
        assert api.sim.benchmark(row["id"]) == row
    assert sum(row["auto_resolve"] for row in benchmarks) == 5
    assert any("last_updated" not in row for row in benchmarks)


# -- set_security_benchmarks -------------------------------------------------------------------
def test_set_benchmark_changes_it_and_logs_an_event(api: Api) -> None:
    target = next(row["id"] for row in api.benchmarks() if row["status"] == "UNRESOLVED")
    response = api.post(
        "set_security_benchmarks", json=[{"benchmark": target, "status": "IGNORED"}]
    )
    assert response.status_code == 200
    changed = {**api.sim.benchmark(target), "last_updated": keeper_time(api.sim.now)}
    assert changed["status"] == "IGNORED"
    assert response.json() == {"security_benchmarks": [changed]}
    assert changed in api.benchmarks()

    expected = {
        "event": "set_security_benchmark",
        "event_occurrences": 1,
        "unique_users": 1,
        "last_events": 0,
        "last_users": 0,
    }
    assert api.summary()["set_security_benchmark"] == expected
    detail = api.body("get_security_alerts_detail", audit_event_type="set_security_benchmark")
    assert detail == {"security_alerts_summary": [expected]}

    api.sim.advance(days=31)  # the event moves to the previous window...
    assert api.summary()["set_security_benchmark"] == {
        **expected,
        "event_occurrences": 0,
        "unique_users": 0,
        "last_events": 1,
        "last_users": 1,
    }
    api.sim.advance(days=30)  # ...then drops out of the 60 days
    assert "set_security_benchmark" not in api.summary()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "JSON"),
        ({"benchmark": BENCHMARK_IDS[0], "status": "RESOLVED"}, "list"),
        ([], "list"),
        (["SB_CREATE_ALERTS"], "item 0"),
        ([{"benchmark": "SB_NOPE", "status": "RESOLVED"}], "SB_NOPE"),
        ([{"status": "RESOLVED"}], "benchmark"),
        ([{"benchmark": "SB_CREATE_ALERTS", "status": "DONE"}], "status"),
        (
            [
                {"benchmark": "SB_CREATE_ALERTS", "status": "RESOLVED"},
                {"benchmark": "SB_CREATE_ALERTS"},
            ],
            "item 1",
        ),
    ],
)
def test_set_benchmark_rejects_bad_bodies(api: Api, body: Any, fragment: str) -> None:
    before = api.benchmarks()
    if isinstance(body, bytes):
        response = api.post("set_security_benchmarks", data=body)
    else:
        response = api.post("set_security_benchmarks", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["status"] == 400
    assert fragment in payload["message"]
    assert api.benchmarks() == before  # nothing applied, not even the valid first item
    assert "set_security_benchmark" not in api.summary()


# -- the clock and the evolving world ----------------------------------------------------------
def test_date_header_is_the_simulated_clock(api: Api) -> None:
    response = api.get("get_enterprise_stat")
    assert len(response.raw.headers.getlist("Date")) == 1  # not also the machine's clock
    first = parsedate_to_datetime(response.headers["Date"])
    assert first == api.sim.now == datetime(2026, 1, 1, 9, tzinfo=UTC)
    moved = api.control("advance", {"days": 1})
    assert datetime.fromisoformat(moved["now"]) == first + timedelta(days=1)
    second = parsedate_to_datetime(api.get("get_enterprise_stat").headers["Date"])
    assert second == first + timedelta(days=1) == api.sim.now


def _world(sim: KeeperRmdSimulator) -> tuple[Any, ...]:
    with SimulatorServer(sim) as server:
        client = Api(sim, server.url)
        return client.details(), client.summary(), client.benchmarks()


def test_same_seed_gives_the_same_world() -> None:
    one, two, other = (KeeperRmdSimulator(seed=seed) for seed in (11, 11, 12))
    for sim in (one, two, other):
        sim.advance(days=5)
    assert _world(one) == _world(two)
    assert _world(one)[0] != _world(other)[0]


def test_hourly_advances_give_the_same_world_as_a_daily_one() -> None:
    daily, hourly = KeeperRmdSimulator(seed=3), KeeperRmdSimulator(seed=3)
    daily.advance(days=2)
    for _ in range(48):
        hourly.advance(hours=1)
    assert daily.now == hourly.now
    assert _world(daily) == _world(hourly)


def test_world_changes_day_to_day(api: Api) -> None:
    stats, heads, details = [], [], []
    for _ in range(30):
        api.control("advance", {"days": 1})
        stats.append(tuple(api.body("get_enterprise_stat").values()))
        heads.append(api.sim.user_count())
        details.append(api.details())
    assert len(set(stats)) > 5
    assert len(set(heads)) > 1
    assert all(before != after for before, after in itertools.pairwise(details))
    summary = api.summary()  # a type that was absent at start has appeared
    assert summary[NEW_EVENT_TYPE]["event_occurrences"] > 0
    assert summary[NEW_EVENT_TYPE]["last_events"] == 0


def test_benchmarks_change_on_their_own(api: Api) -> None:
    start = {row["id"]: row["status"] for row in api.benchmarks()}
    api.control("advance", {"days": 60})
    now = api.benchmarks()
    changed = [row for row in now if row["status"] != start[row["id"]]]
    assert changed
    for row in changed:
        assert row["last_updated"] > keeper_time(api.sim.now - timedelta(days=60))
        if row["status"] == "UNRESOLVED":
            assert row["auto_resolve"]  # only auto-resolved benchmarks regress by themselves


# -- faults ------------------------------------------------------------------------------------
def test_extra_field_fault_adds_a_key_to_every_record(api: Api) -> None:
    api.control("faults", {"extra_field": True})
    records = [
        api.body("get_enterprise_stat"),
        *api.details(),
        *api.summary().values(),
        *api.benchmarks(),
    ]
    assert all("risk_score" in record for record in records)
    api.control("faults", {"extra_field": False})
    assert not any("risk_score" in record for record in api.details())


def test_drop_optional_fault_leaves_out_optional_fields(api: Api) -> None:
    assert any("last_logged_in" in row for row in api.details())
    api.control("faults", {"drop_optional": True})
    details = api.details()
    assert len(details) == 300
    assert not any("last_logged_in" in row for row in details)
    assert not any("last_updated" in row for row in api.benchmarks())
    assert all({"id", "status", "auto_resolve"} <= set(row) for row in api.benchmarks())


def test_malformed_fault_truncates_the_next_body(api: Api) -> None:
    api.control("faults", {"malformed_next": 1})
    response = api.get("get_enterprise_stat_details")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert len(api.details()) == 300


def test_burst_fault_answers_429_with_retry_after(api: Api) -> None:
    api.control("faults", {"burst_429_next": 2, "retry_after_seconds": 1})
    for _ in range(2):
        response = api.get("get_security_benchmarks")
        assert response.status_code == 429
        assert float(response.headers["Retry-After"]) == 1
    assert api.get("get_security_benchmarks").status_code == 200


# -- scale -------------------------------------------------------------------------------------
def test_ten_thousand_users() -> None:
    sim = KeeperRmdSimulator(users=10_000, seed=5)
    with SimulatorServer(sim) as server:
        client = Api(sim, server.url)
        details = client.details()
        stat = client.body("get_enterprise_stat")
    assert len(details) == len({row["enterprise_user_id"] for row in details}) == 10_000
    assert stat == counts_from_details(details, sim.now)
    assert 0.70 <= stat["users_logged_recent"] / 10_000 <= 0.85
    assert 0.60 <= stat["users_has_records"] / 10_000 <= 0.70
    assert 0.03 <= sum("last_logged_in" not in row for row in details) / 10_000 <= 0.07
