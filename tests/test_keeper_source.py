"""The Keeper RMD dlt source against the simulator over real HTTP, into a real DuckDB file."""

from __future__ import annotations

import pytest
import requests

from pipelines.registry import load
from pipelines.vendor_http import MalformedResponseError, VendorHTTPError, find_vendor_error
from simulators.keeper_rmd import KeeperRmdSimulator
from simulators.server import Request, Response, SimulatorServer
from tests.conftest import files_containing, query
from warehouse.location import WarehouseLocation

TABLES = (
    "enterprise_stat",
    "enterprise_stat_details",
    "security_alerts_summary",
    "security_alerts_detail",
    "security_benchmarks",
)
BUSINESS_COLUMNS = {
    "enterprise_stat": "tenant, snapshot_date, observed_at, users_has_records, users_logged_recent",
    "enterprise_stat_details": (
        "tenant, snapshot_date, enterprise_user_id, last_logged_in, has_records"
    ),
    "security_alerts_summary": "tenant, snapshot_date, event, event_occurrences, unique_users",
    "security_alerts_detail": "tenant, snapshot_date, audit_event_type, event, event_occurrences",
    "security_benchmarks": "tenant, snapshot_date, id, status, auto_resolve, last_updated",
}


def snapshot(location: WarehouseLocation) -> dict[str, list[tuple]]:
    """Every table's business rows, sorted: what "the warehouse as it was" means."""
    return {
        table: sorted(
            query(location, f"select {BUSINESS_COLUMNS[table]} from keeper_rmd.{table}"), key=str
        )
        for table in TABLES
    }


def per_day(location: WarehouseLocation, table: str) -> dict[str, int]:
    rows = query(
        location, f"select snapshot_date, count(*) from keeper_rmd.{table} group by 1 order by 1"
    )
    return {str(day): count for day, count in rows}


def test_first_load_takes_every_endpoint(keeper_env: SimulatorServer, location):
    load("keeper", location)
    sim = keeper_env.simulator
    day = sim.now.date().isoformat()
    assert per_day(location, "enterprise_stat") == {day: 1}
    assert per_day(location, "enterprise_stat_details") == {day: sim.user_count()}
    assert per_day(location, "security_benchmarks") == {day: 15}
    summary_events = query(location, "select event from keeper_rmd.security_alerts_summary")
    detail_events = query(
        location, "select distinct audit_event_type from keeper_rmd.security_alerts_detail"
    )
    assert summary_events and sorted(summary_events) == sorted(detail_events)
    # Every row says when it was observed (the vendor's clock) and from which load.
    ((observed, loads),) = query(
        location,
        "select min(observed_at), count(distinct _dlt_load_id) "
        "from keeper_rmd.enterprise_stat_details",
    )
    assert observed.replace(tzinfo=None) == sim.now.replace(tzinfo=None) and loads == 1


def test_same_day_rerun_changes_nothing(keeper_env: SimulatorServer, location):
    load("keeper", location)
    before = snapshot(location)
    load("keeper", location)
    assert snapshot(location) == before


def test_next_day_adds_one_day_and_keeps_the_last(keeper_env: SimulatorServer, location):
    load("keeper", location)
    first = snapshot(location)
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    for table in TABLES:
        assert len(per_day(location, table)) == 2, table
    # Yesterday's rows are exactly as they were.
    day_one = min(per_day(location, "enterprise_stat"))
    again = {
        table: sorted(
            query(
                location,
                f"select {BUSINESS_COLUMNS[table]} from keeper_rmd.{table} "
                f"where snapshot_date = '{day_one}'",
            ),
            key=str,
        )
        for table in TABLES
    }
    assert again == first


def test_a_retake_replaces_only_that_day(keeper_env: SimulatorServer, location):
    load("keeper", location)
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    keeper_env.simulator.advance(hours=3)  # same day, later: the world moved a little
    load("keeper", location)
    counts = per_day(location, "enterprise_stat")
    assert list(counts.values()) == [1, 1]
    ((observed,),) = query(location, "select max(observed_at) from keeper_rmd.enterprise_stat")
    assert observed.replace(tzinfo=None) == keeper_env.simulator.now.replace(tzinfo=None)


def test_a_retake_that_finds_no_alerts_clears_that_days_alerts(
    keeper_env: SimulatorServer, location, monkeypatch
):
    load("keeper", location)
    keeper_env.simulator.advance(days=1)
    load("keeper", location)
    alerts = {table: per_day(location, table) for table in TABLES[2:4]}
    assert all(len(days) == 2 for days in alerts.values())
    # Later the same day the vendor answers no alerts at all: an empty list, so no detail calls.
    monkeypatch.setattr(keeper_env.simulator, "_alert_rows", list)
    keeper_env.simulator.advance(hours=3)
    load("keeper", location)
    today = keeper_env.simulator.now.date().isoformat()
    for table, days in alerts.items():
        assert per_day(location, table) == {d: n for d, n in days.items() if d != today}, table
    assert len(per_day(location, "security_benchmarks")) == 2  # the other tables keep the day


def test_wrong_token_names_keeper_and_401_and_leaks_nothing(
    keeper: SimulatorServer, location, keeper_token: str, capsys
):
    with pytest.raises(Exception) as raised:
        load("keeper", location, base_url=keeper.url, api_token="wrong-" + keeper_token)
    error = find_vendor_error(raised.value)
    assert isinstance(error, VendorHTTPError)
    assert "Keeper RMD" in str(error) and "401" in str(error)
    assert keeper_token not in str(raised.value) and keeper_token not in repr(raised.value)
    captured = capsys.readouterr()
    assert keeper_token not in captured.out + captured.err
    assert files_containing(location.data_dir, keeper_token) == []


class EchoingKeeper(KeeperRmdSimulator):
    """Rejects every token, echoing it in the error message."""

    def handle(self, request: Request) -> Response:
        return Response(401, {"message": f"token {request.headers.get('x-api-token')} rejected"})


def test_a_token_the_vendor_echoes_is_redacted(location, keeper_token: str, capsys):
    server = SimulatorServer(EchoingKeeper(users=5, seed=3, tokens=(keeper_token,)))
    with server, pytest.raises(Exception) as raised:
        load("keeper", location, base_url=server.url, api_token=keeper_token)
    error = str(find_vendor_error(raised.value))
    assert "vendor says: token Bearer [redacted] rejected" in error
    assert keeper_token not in str(raised.value) and keeper_token not in repr(raised.value)
    captured = capsys.readouterr()
    assert keeper_token not in captured.out + captured.err
    assert files_containing(location.data_dir, keeper_token) == []


def test_token_never_lands_in_files(keeper_env: SimulatorServer, location, keeper_token: str):
    load("keeper", location)
    assert files_containing(location.data_dir, keeper_token) == []


def test_malformed_json_mid_run_fails_and_keeps_the_warehouse(
    keeper_env: SimulatorServer, location
):
    load("keeper", location)
    before = snapshot(location)
    keeper_env.simulator.advance(days=1)
    keeper_env.simulator.faults.update(malformed_next=1, path_contains="get_security_benchmarks")
    with pytest.raises(Exception) as raised:
        load("keeper", location)
    error = find_vendor_error(raised.value)
    assert isinstance(error, MalformedResponseError)
    assert "get_security_benchmarks" in str(error)
    assert snapshot(location) == before
    # The next run is clean and complete.
    load("keeper", location)
    assert all(len(per_day(location, table)) == 2 for table in TABLES)


def test_transient_failures_are_retried(keeper_env: SimulatorServer, location):
    keeper_env.simulator.faults.update(burst_429_next=3, error_rate=0.2)
    load("keeper", location)
    assert per_day(location, "security_benchmarks") == {
        keeper_env.simulator.now.date().isoformat(): 15
    }


def test_unknown_field_becomes_a_column(keeper_env: SimulatorServer, location):
    load("keeper", location)
    keeper_env.simulator.advance(days=1)
    keeper_env.simulator.faults.update(extra_field=True)
    load("keeper", location)
    columns = {row[0] for row in query(location, "describe keeper_rmd.enterprise_stat_details")}
    assert columns - {
        "tenant",
        "snapshot_date",
        "observed_at",
        "enterprise_user_id",
        "last_logged_in",
        "has_records",
        "_dlt_load_id",
        "_dlt_id",
    }


def test_an_unknown_field_that_changes_type_still_loads(
    keeper_env: SimulatorServer, location, monkeypatch: pytest.MonkeyPatch
):
    # Unknown fields load as text: a number one day and a word the next is no reason to stop
    # loading. A second key with the same column name (riskScore) is left out.
    sim = keeper_env.simulator
    unknown: dict[str, object] = {"risk_score": 3, "riskScore": "x"}
    served = sim._with_faults
    monkeypatch.setattr(
        sim,
        "_with_faults",
        lambda records, optional: [{**r, **unknown} for r in served(records, optional)],
    )
    load("keeper", location)
    sim.advance(days=1)
    unknown["risk_score"] = "high"
    load("keeper", location)
    rows = query(
        location,
        "select min(risk_score), max(risk_score), count(*) from keeper_rmd.enterprise_stat_details "
        "group by snapshot_date order by snapshot_date",
    )
    assert [(low, high) for low, high, _ in rows] == [("3", "3"), ("high", "high")]
    assert rows[-1][2] == sim.user_count()


def test_absent_optional_fields_load_as_null(keeper_env: SimulatorServer, location):
    keeper_env.simulator.faults.update(drop_optional=True)
    load("keeper", location)
    ((with_login,),) = query(
        location,
        "select count(last_logged_in) from keeper_rmd.enterprise_stat_details",
    )
    assert with_login == 0


def test_bad_base_url_is_a_clear_error(location):
    with pytest.raises(ValueError, match="not an http"):
        load("keeper", location, base_url="keepersecurity.com", api_token="x")


class PagedKeeper(KeeperRmdSimulator):
    """A Keeper implementation that pages the user details with continuation tokens, as
    Keeper's internal channel does, and returns keys in another order with extra fields."""

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if not request.path.endswith("get_enterprise_stat_details") or response.status != 200:
            return response
        rows = response.payload["enterprise_stat_details"]
        start = int(request.query.get("continuation_token") or 0)
        page = rows[start : start + 25]
        more = start + 25 < len(rows)
        payload = {"has_more": more, "enterprise_stat_details": page, "page_size": 25}
        if more:
            payload["continuation_token"] = str(start + 25)
        return Response(200, payload)


def test_continuation_tokens_are_followed(location, keeper_token: str):
    with SimulatorServer(PagedKeeper(users=60, seed=3, tokens=(keeper_token,))) as server:
        first = requests.get(
            f"{server.url}/api/rest/rmd/get_enterprise_stat_details",
            headers={"x-api-token": f"Bearer {keeper_token}"},
            timeout=5,
        ).json()
        assert first["has_more"] is True
        load("keeper", location, base_url=server.url, api_token=keeper_token)
        assert per_day(location, "enterprise_stat_details") == {
            server.simulator.now.date().isoformat(): server.simulator.user_count()
        }


class TokenlessKeeper(PagedKeeper):
    """Once `tokenless`, says it has more user details but sends no token to reach them."""

    tokenless = False

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if self.tokenless and isinstance(response.payload, dict):
            response.payload.pop("continuation_token", None)
        return response


def test_more_pages_without_a_token_fail_instead_of_loading_part(location, keeper_token: str):
    sim = TokenlessKeeper(users=60, seed=3, tokens=(keeper_token,))
    with SimulatorServer(sim) as server:
        load("keeper", location, base_url=server.url, api_token=keeper_token)
        day_one = per_day(location, "enterprise_stat_details")
        sim.advance(days=1)
        sim.tokenless = True
        with pytest.raises(Exception) as failure:
            load("keeper", location, base_url=server.url, api_token=keeper_token)
    message = str(find_vendor_error(failure.value))
    assert "get_enterprise_stat_details says it has more pages but sent no continuation" in message
    assert per_day(location, "enterprise_stat_details") == day_one


class StampingKeeper(KeeperRmdSimulator):
    """Sends, in each user-details record, fields named like the project's own columns."""

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if request.path.endswith("get_enterprise_stat_details") and response.status == 200:
            for row in response.payload["enterprise_stat_details"]:
                row.update(tenant="vendor-side", observed_at="yesterday")
        return response


def test_vendor_fields_named_like_our_columns_are_kept_beside_them(location, keeper_token: str):
    sim = StampingKeeper(users=12, seed=3, tokens=(keeper_token,))
    with SimulatorServer(sim) as server:
        load("keeper", location, base_url=server.url, api_token=keeper_token, tenant="acme")
    rows = query(
        location,
        "select distinct tenant, vendor_tenant, vendor_observed_at, observed_at is not null "
        "from keeper_rmd.enterprise_stat_details",
    )
    assert rows == [("acme", "vendor-side", "yesterday", True)]


TENANTS_WITH_SQL_CHARACTERS = ("O'Brien; Co {eu} 100%", "north\nsouth; DROP TABLE x; --", "%s {}")


def test_tenant_names_never_reach_sql_text(keeper_env: SimulatorServer, location, monkeypatch):
    # Quotes, semicolons, new lines, braces and percent signs: loaded twice on one day (the
    # second replaces the first), beside a plain tenant. dbt builds and publishes them in
    # tests/test_end_to_end.py.
    for tenant in ("acme", *TENANTS_WITH_SQL_CHARACTERS):
        monkeypatch.setenv("SOURCES__KEEPER_RMD__TENANT", tenant)
        load("keeper", location)
        load("keeper", location)
    users = keeper_env.simulator.user_count()
    rows = query(
        location,
        "select tenant, count(*), count(distinct _dlt_load_id) "
        "from keeper_rmd.enterprise_stat_details group by 1 order by 1",
    )
    assert rows == sorted((t, users, 1) for t in ("acme", *TENANTS_WITH_SQL_CHARACTERS))


class LoopingKeeper(PagedKeeper):
    """Pages the user details, then goes wrong: `loop` sends the first token again, `empty`
    sends empty pages with `has_more` and a new token for ever."""

    mode = ""

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        payload = response.payload
        if not self.mode or not isinstance(payload, dict) or "has_more" not in payload:
            return response
        token = int(request.query.get("continuation_token") or 0)
        if self.mode == "loop" and token >= 25:
            payload.update(has_more=True, continuation_token="25")
        if self.mode == "empty" and token >= 25:
            payload.update(has_more=True, continuation_token=str(token + 1))
            payload["enterprise_stat_details"] = []
        return response


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("loop", "sent a continuation_token it had sent before"),
        ("empty", "sent 11 empty pages in a row"),
    ],
)
def test_pages_that_would_not_end_fail_naming_the_endpoint(
    location, keeper_token: str, mode: str, expected: str
):
    sim = LoopingKeeper(users=60, seed=3, tokens=(keeper_token,))
    sim.mode = mode
    with SimulatorServer(sim) as server, pytest.raises(Exception) as failure:
        load("keeper", location, base_url=server.url, api_token=keeper_token)
    message = str(find_vendor_error(failure.value))
    assert message.startswith(f"Keeper RMD: /api/rest/rmd/get_enterprise_stat_details {expected}")
