"""The Trend Micro Cloud One audit log source against the simulator over real HTTP, into a real
DuckDB file: every event exactly once, incremental runs, faults, orders and several accounts."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dlt
import orjson
import pyarrow as pa
import pytest

from pipelines import registry
from pipelines.pipeline import LOADER_FILE_FORMAT, make_pipeline
from pipelines.trend_audit import OrderWatch, ReadProgress, parse_time
from pipelines.trend_audit.client import base_url_for
from pipelines.trend_audit.settings import COLUMNS, PRIMARY_KEY, WRITE_DISPOSITION
from pipelines.vendor_http import MalformedResponseError, VendorHTTPError, find_vendor_error
from simulators.server import Request, Response, SimulatorServer
from simulators.trend_audit import EVENT_TYPES, TrendAuditSimulator
from tests.conftest import files_containing, query
from warehouse.location import WarehouseLocation

ACCOUNT = "310442718012"
OTHER_ACCOUNT = "529901334417"
BUSINESS_COLUMNS = (
    "tenant, id, time, event_date, type, description, account_id, principal_urn, details, raw"
)


def simulator(key: str, kind: type = TrendAuditSimulator, **options) -> TrendAuditSimulator:
    """A week of history at 400 events a day (2,800 events, 112 pages) unless told otherwise."""
    options = {"events_per_day": 400, "history_days": 7, "seed": 5, **options}
    options.setdefault("api_keys", {key: None})
    return kind(**options)


@pytest.fixture
def trend(trend_key: str) -> Iterator[SimulatorServer]:
    """The simulator, newest first, on an ephemeral loopback port."""
    with SimulatorServer(simulator(trend_key)) as server:
        yield server


def load(location: WarehouseLocation, server: SimulatorServer, key: str, **args) -> int:
    """Run the source's pipeline once; returns how many requests the run made."""
    before = server.simulator.requests_served
    registry.load("trend", location, base_url=server.url, api_key=key, **args)
    return server.simulator.requests_served - before


def table(location: WarehouseLocation) -> list[tuple]:
    """The business columns of every loaded event, sorted."""
    return query(location, f"select {BUSINESS_COLUMNS} from trend_audit.audit_logs order by 1, 2")


def loaded_ids(location: WarehouseLocation) -> list[tuple[str, str]]:
    """(tenant, id) of every row, sorted, duplicates kept."""
    return query(location, "select tenant, id from trend_audit.audit_logs order by 1, 2")


def expected_ids(sim: TrendAuditSimulator, account: str | None = None) -> list[tuple[str, str]]:
    """(account, id) of every event the simulator's log holds now, sorted."""
    return sorted((e["accountID"], e["id"]) for e in sim.retained_events(account))


def requests_of_a_full_read(sim: TrendAuditSimulator, account: str | None = None) -> int:
    """Requests of a read over the whole log, 25 logs a page."""
    return max(1, math.ceil(len(sim.retained_events(account)) / 25))


def test_first_load_takes_every_page(trend: SimulatorServer, location, trend_key: str):
    sim = trend.simulator
    requests_made = load(location, trend, trend_key)
    assert requests_made == requests_of_a_full_read(sim)
    assert loaded_ids(location) == expected_ids(sim)
    # The event's day, and what every row says about its load.
    ((types, days, observed, loads),) = query(
        location,
        "select count(distinct type), count(distinct event_date), min(observed_at), "
        "count(distinct _dlt_load_id) from trend_audit.audit_logs",
    )
    assert types == len(EVENT_TYPES) and days == 8
    assert observed == sim.now and loads == 1
    # Nothing the vendor sent is lost: `raw` is the record, `details` its details.
    event = sim.retained_events()[-1]
    ((raw, details),) = query(
        location, f"select raw, details from trend_audit.audit_logs where id = '{event['id']}'"
    )
    assert orjson.loads(raw) == event and orjson.loads(details) == event["details"]


def test_second_run_without_new_events_adds_nothing_in_few_requests(
    trend: SimulatorServer, location, trend_key: str
):
    load(location, trend, trend_key)
    before = table(location)
    assert load(location, trend, trend_key) <= 3
    assert table(location) == before
    # The events it fetched again were not rewritten: every row is still from the first load.
    assert query(location, "select count(distinct _dlt_load_id) from trend_audit.audit_logs") == [
        (1,)
    ]


def test_new_events_appear_after_the_clock_advances(
    trend: SimulatorServer, location, trend_key: str
):
    sim = trend.simulator
    load(location, trend, trend_key)
    first = len(loaded_ids(location))
    sim.advance(days=1)
    new_events = len(sim.retained_events()) - first
    assert new_events == 400
    requests_made = load(location, trend, trend_key)
    assert requests_made <= math.ceil(new_events / 25) + 3
    assert loaded_ids(location) == expected_ids(sim)


def test_a_wrong_key_fails_naming_trend_micro_and_leaks_nothing(
    trend: SimulatorServer, location, trend_key: str, capsys
):
    wrong = trend_key + "-revoked"
    with pytest.raises(Exception) as raised:
        load(location, trend, wrong)
    error = find_vendor_error(raised.value)
    assert isinstance(error, VendorHTTPError)
    message = str(error)
    assert "Trend Micro Cloud One" in message and "/api/logs" in message and "401" in message
    assert "SOURCES__TREND_AUDIT__API_KEY" in message
    for text in (str(raised.value), repr(raised.value), *capsys.readouterr()):
        assert wrong not in text
    assert files_containing(location.data_dir, wrong) == []


def test_a_429_burst_slows_the_run_but_loses_nothing(
    trend: SimulatorServer, location, trend_key: str
):
    sim = trend.simulator
    sim.faults.update(burst_429_next=3)
    requests_made = load(location, trend, trend_key)
    assert requests_made == requests_of_a_full_read(sim) + 3
    assert loaded_ids(location) == expected_ids(sim)


@pytest.mark.parametrize("send_retry_after", [True, False])
def test_the_rate_limit_is_honoured(location, trend_key: str, send_retry_after: bool, monkeypatch):
    # The waits must be able to outlast the simulator's 1-second window.
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    if not send_retry_after:
        monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.3")
    sim = simulator(
        trend_key, history_days=2, max_requests_per_second=20, send_retry_after=send_retry_after
    )
    with SimulatorServer(sim) as server:
        requests_made = load(location, server, trend_key)
        assert requests_made > requests_of_a_full_read(sim)  # some were answered 429, and retried
        assert loaded_ids(location) == expected_ids(sim)


def test_malformed_json_mid_read_fails_naming_the_endpoint_and_keeps_the_warehouse(
    location, trend_key: str, monkeypatch
):
    monkeypatch.setattr("pipelines.trend_audit.BATCH_ROWS", 100)  # rows reach dlt mid-read
    with SimulatorServer(simulator(trend_key, BreaksAt)) as server:
        sim = server.simulator
        load(location, server, trend_key)
        before = table(location)
        sim.advance(days=2)
        sim.break_at = sim.requests_served + 20  # the 20th page of the next read
        with pytest.raises(Exception) as raised:
            load(location, server, trend_key)
        error = find_vendor_error(raised.value)
        assert isinstance(error, MalformedResponseError)
        assert "Trend Micro Cloud One" in str(error) and "/api/logs" in str(error)
        assert table(location) == before
        load(location, server, trend_key)
        assert loaded_ids(location) == expected_ids(sim)


class BreaksAt(TrendAuditSimulator):
    """Answers the request numbered `break_at` with a truncated body (the malformed fault)."""

    break_at = 0

    def handle(self, request: Request) -> Response:
        if self.requests_served == self.break_at:
            self.faults.malformed_next = 1
        return super().handle(request)


class RepeatsEvents(TrendAuditSimulator):
    """Starts every page after the first with the previous page's last three logs, as an
    offset-paged log does when events arrive during a read."""

    _tail: list = []  # replaced by each response

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        logs = response.payload.get("logs") if response.status == 200 else None
        if logs is None:
            return response
        repeated = self._tail if "cursor" in request.query else []
        self._tail = logs[-3:]
        return Response(200, {**response.payload, "logs": repeated + logs}, response.headers)


def test_events_a_read_returns_twice_are_stored_once(location, trend_key: str):
    with SimulatorServer(simulator(trend_key, RepeatsEvents)) as server:
        sim = server.simulator
        load(location, server, trend_key)
        assert loaded_ids(location) == expected_ids(sim)
        sim.advance(hours=12)
        # Repeats across page boundaries do not hide that the read is newest first.
        assert load(location, server, trend_key) <= math.ceil(200 / 25) + 3
        assert loaded_ids(location) == expected_ids(sim)


def test_a_run_killed_mid_read_and_run_again_leaves_every_event_once(location, trend_key: str):
    sim = simulator(trend_key, history_days=30)  # 12,000 events, 480 pages
    with SimulatorServer(sim) as server:
        load(location, server, trend_key)
        sim.advance(days=5)
        sim.faults.update(slow_seconds=0.01)
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN],
            env={
                **os.environ,
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                "POSTURE_DATA_DIR": str(location.data_dir),
                "SOURCES__TREND_AUDIT__BASE_URL": server.url,
                "SOURCES__TREND_AUDIT__API_KEY": trend_key,
                "TREND_TEST_BATCH_ROWS": "50",
            },
        )
        started = sim.requests_served
        deadline = time.monotonic() + 60
        while sim.requests_served < started + 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert 40 <= sim.requests_served - started < 80, "killed in the middle of the read"
        sim.faults.update(slow_seconds=0)
        load(location, server, trend_key)
        assert loaded_ids(location) == expected_ids(sim)


def test_a_long_read_loads_in_runs_and_a_failed_run_keeps_the_ones_before(location, trend_key: str):
    with SimulatorServer(simulator(trend_key, BreaksAt)) as server:
        sim = server.simulator
        before = sim.requests_served
        infos = registry.load(
            "trend", location, base_url=server.url, api_key=trend_key, max_events=500
        )
        # About 2,800 events, 500 a run: six runs continuing one read, each its own load.
        assert len(infos) == 6
        assert sim.requests_served - before == requests_of_a_full_read(sim)
        assert loaded_ids(location) == expected_ids(sim)
        loads = query(location, "select count(distinct _dlt_load_id) from trend_audit.audit_logs")
        assert loads == [(6,)]
        assert load(location, server, trend_key, max_events=500) <= 3  # nothing new: one run
        loaded = len(loaded_ids(location))

        sim.advance(days=3)  # 1,200 new events, newest first: the next read takes three runs
        sim.break_at = sim.requests_served + 30  # a page of the second run
        with pytest.raises(Exception) as raised:
            load(location, server, trend_key, max_events=500)
        assert isinstance(find_vendor_error(raised.value), MalformedResponseError)
        assert len(loaded_ids(location)) == loaded + 500  # the first run stays, once
        load(location, server, trend_key, max_events=500)  # goes on from the stored cursor
        assert loaded_ids(location) == expected_ids(sim)


def test_a_stored_cursor_the_vendor_refuses_starts_the_read_again(location, trend_key: str, caplog):
    with SimulatorServer(simulator(trend_key, BreaksAt)) as server:
        sim = server.simulator
        sim.break_at = sim.requests_served + 30  # a page of the second run
        with pytest.raises(Exception) as raised:
            load(location, server, trend_key, max_events=500)
        assert isinstance(find_vendor_error(raised.value), MalformedResponseError)
        assert len(loaded_ids(location)) == 500  # the first run, and its cursor, are stored
    # The same log behind a vendor that no longer knows that cursor (it belongs to another
    # key's scope there): the read starts again at the top, and nothing is lost or doubled.
    with SimulatorServer(simulator(trend_key, api_keys={trend_key: ACCOUNT})) as server:
        with caplog.at_level("WARNING"):
            load(location, server, trend_key, max_events=500)
        assert "refused the stored cursor (HTTP 400); reading again from the top" in caplog.text
        assert loaded_ids(location) == expected_ids(server.simulator)


def test_an_event_timed_ahead_of_the_vendor_clock_does_not_end_later_reads_early(
    trend: SimulatorServer, location, trend_key: str
):
    sim = trend.simulator
    load(location, trend, trend_key)
    sim.faults.update(future_event_hours=36)  # the next event logged says it is 36 hours later
    sim.advance(hours=1)
    load(location, trend, trend_key)
    sim.advance(hours=12)  # 200 new events, newest first, behind the future one
    assert load(location, trend, trend_key) <= math.ceil(200 / 25) + 3  # still stops early
    assert loaded_ids(location) == expected_ids(sim)
    # The bad event is stored as the vendor sent it.
    ahead = query(
        location,
        "select count(*) from trend_audit.audit_logs where time > observed_at + interval 1 day",
    )
    assert ahead == [(1,)]


def test_a_page_repeating_the_previous_one_under_a_new_cursor_is_asked_again(
    trend: SimulatorServer, location, trend_key: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("pipelines.trend_audit.client.REPEATED_PAGE_WAIT_SECONDS", 0.01)
    sim = trend.simulator
    sim.faults.update(stale_pages_next=2)  # a stale cache answers twice, then the vendor does
    assert load(location, trend, trend_key) == requests_of_a_full_read(sim) + 2
    assert loaded_ids(location) == expected_ids(sim)


def test_a_cache_that_keeps_repeating_a_page_fails_the_run_naming_the_endpoint(
    trend: SimulatorServer, location, trend_key: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("pipelines.trend_audit.client.REPEATED_PAGE_WAIT_SECONDS", 0.01)
    sim = trend.simulator
    load(location, trend, trend_key)
    before = table(location)
    sim.advance(days=1)
    sim.faults.update(stale_pages_next=1_000)
    with pytest.raises(Exception) as raised:
        load(location, trend, trend_key)
    error = find_vendor_error(raised.value)
    assert isinstance(error, MalformedResponseError)
    assert "Trend Micro Cloud One: /api/logs" in str(error) and "already read" in str(error)
    assert table(location) == before  # nothing of the failed run is kept
    sim.faults.update(stale_pages_next=0)
    load(location, trend, trend_key)
    assert loaded_ids(location) == expected_ids(sim)


def test_empty_pages_are_followed_within_a_bound(trend: SimulatorServer, location, trend_key: str):
    sim = trend.simulator
    sim.faults.update(empty_pages_next=5)
    assert load(location, trend, trend_key) == requests_of_a_full_read(sim) + 5
    assert loaded_ids(location) == expected_ids(sim)
    loaded = loaded_ids(location)
    sim.advance(hours=6)
    sim.faults.update(empty_pages_next=100_000)  # an endless run of empty pages
    with pytest.raises(Exception) as raised:
        load(location, trend, trend_key)
    error = find_vendor_error(raised.value)
    assert isinstance(error, MalformedResponseError)
    assert "Trend Micro Cloud One: /api/logs" in str(error) and "empty pages" in str(error)
    assert sim.faults.empty_pages_next > 100_000 - 100
    assert loaded_ids(location) == loaded


def test_a_high_water_mark_ahead_of_the_vendor_clock_is_replaced():
    # A warehouse whose mark a bad event moved ahead (before such times were distrusted): the
    # next read does not stop early on it, and its end replaces the mark.
    clock = datetime(2026, 3, 1, 12, tzinfo=UTC)
    marks = {ACCOUNT: clock + timedelta(hours=36), OTHER_ACCOUNT: clock - timedelta(hours=1)}
    progress = ReadProgress(marks, set(marks), timedelta(minutes=15))
    hour = timedelta(hours=1)
    for page in range(4):
        progress.observe_page(
            [
                (ACCOUNT, f"a{page}", clock - (2 * page + 1) * hour),
                (OTHER_ACCOUNT, f"o{page}", clock - (2 * page + 2) * hour),
            ],
            clock,
        )
        assert not progress.rest_is_loaded
    assert progress.updated_marks() == {ACCOUNT: clock - hour}


def test_a_warehouse_holding_the_columns_the_loader_used_to_derive_still_loads(
    trend: SimulatorServer, location, trend_key: str
):
    # Warehouses loaded before the principal and API key columns were derived in SQL hold them
    # in the raw table and in dlt's schema; new rows leave them NULL.
    sim = trend.simulator
    load(location, trend, trend_key)
    old_columns = ("principal_type", "principal_id", "api_key_id", "api_key_name")
    hints = {**COLUMNS, **{name: {"data_type": "text"} for name in old_columns}}

    @dlt.source(name="trend_audit", max_table_nesting=0)
    def previous_version():
        row = {"tenant": "t0", "id": "e0", "time": sim.now, "event_date": sim.now.date()}
        row.update(raw="{}", observed_at=sim.now, principal_type="user", api_key_id="k0")
        table = pa.Table.from_pylist([row])
        kwargs = {"write_disposition": WRITE_DISPOSITION, "primary_key": PRIMARY_KEY}
        yield dlt.resource(table, name="audit_logs", columns=hints, **kwargs)

    pipeline = make_pipeline("trend_audit", location)
    pipeline.run(previous_version(), loader_file_format=LOADER_FILE_FORMAT)
    sim.advance(hours=6)
    load(location, trend, trend_key)
    assert loaded_ids(location) == sorted([*expected_ids(sim), ("t0", "e0")])
    ((kept, new_rows_null),) = query(
        location,
        "select count(principal_type), count(*) filter (where api_key_id is null) "
        "from trend_audit.audit_logs",
    )
    assert kept == 1 and new_rows_null == len(expected_ids(sim))


# The killed run: the source as production runs it, configured from the environment, with small
# batches so that rows reach dlt before the kill.
KILLED_RUN = textwrap.dedent(
    """
    import os
    import pipelines.trend_audit as source
    from pipelines.registry import load
    from warehouse.location import current_location
    source.BATCH_ROWS = int(os.environ["TREND_TEST_BATCH_ROWS"])
    load("trend", current_location())
    """
)


def test_an_unknown_field_becomes_a_column_and_absent_optionals_are_null(
    trend: SimulatorServer, location, trend_key: str
):
    sim = trend.simulator
    sim.faults.update(extra_field=True)
    load(location, trend, trend_key)
    ((severity, origin),) = query(
        location, "select min(severity), min(origin) from trend_audit.audit_logs"
    )
    assert severity == "info" and orjson.loads(origin)["service"] == "cloudone"
    loaded = {e["id"] for e in sim.retained_events()}
    sim.advance(hours=6)
    new = ", ".join(f"'{e['id']}'" for e in sim.retained_events() if e["id"] not in loaded)
    sim.faults.update(extra_field=False, drop_optional=True)
    load(location, trend, trend_key)
    ((rows, urns, details, severities),) = query(
        location,
        "select count(*), count(principal_urn), count(details), count(severity) "
        f"from trend_audit.audit_logs where id in ({new})",
    )
    assert rows == 100 and urns == 0 and details == 0 and severities == 0
    assert loaded_ids(location) == expected_ids(sim)


def test_an_unknown_field_that_changes_type_still_loads(
    trend: SimulatorServer, location, trend_key: str, monkeypatch: pytest.MonkeyPatch
):
    # Unknown fields load as text, whatever JSON type each run brings; `raw` keeps the value.
    # Of two keys with one column name, the one already named so keeps the column.
    sim = trend.simulator
    unknown: dict[str, object] = {"risk_score": 3}
    served = sim._served
    monkeypatch.setattr(sim, "_served", lambda event: {**served(event), **unknown})
    load(location, trend, trend_key)
    sim.advance(hours=6)
    unknown.update(risk_score="high", riskScore=2.5)
    load(location, trend, trend_key)
    scores = dict(
        query(location, "select risk_score, count(*) from trend_audit.audit_logs group by 1")
    )
    assert set(scores) == {"3", "high"}
    ((kept,),) = query(
        location,
        "select count(*) from trend_audit.audit_logs where risk_score = 'high' "
        "and json_extract(raw, '$.riskScore')::double = 2.5",
    )
    assert kept == scores["high"]
    assert loaded_ids(location) == expected_ids(sim)


def test_the_three_orders_give_the_same_table(tmp_path: Path, trend_key: str):
    tables, second_runs = {}, {}
    for order in ("newest", "oldest", "shuffled"):
        location = WarehouseLocation(tmp_path / order).ensure()
        with SimulatorServer(simulator(trend_key, order=order)) as server:
            load(location, server, trend_key)
            server.simulator.advance(hours=12)
            load(location, server, trend_key)
            tables[order] = table(location)
            second_runs[order] = load(location, server, trend_key)
            assert loaded_ids(location) == expected_ids(server.simulator)
            full = requests_of_a_full_read(server.simulator)
    assert tables["newest"] == tables["oldest"] == tables["shuffled"]
    # Only a read seen to be newest first stops early; the others read every page.
    assert second_runs["newest"] <= 3
    assert second_runs["oldest"] == second_runs["shuffled"] == full


def test_one_key_for_several_accounts(location, trend_key: str):
    sim = simulator(trend_key, accounts=(ACCOUNT, OTHER_ACCOUNT))
    with SimulatorServer(sim) as server:
        load(location, server, trend_key)
        assert loaded_ids(location) == expected_ids(sim)
        per_tenant = dict(
            query(location, "select tenant, count(*) from trend_audit.audit_logs group by 1")
        )
        assert per_tenant == {a: len(sim.retained_events(a)) for a in (ACCOUNT, OTHER_ACCOUNT)}
        assert load(location, server, trend_key) <= 3


def test_events_grouped_by_account_are_read_past_the_first_account(location, trend_key: str):
    # One account's events after the other's, each newest first: the read looks newest first
    # within the first account, but the second one's new events come after its old ones.
    sim = simulator(trend_key, accounts=(ACCOUNT, OTHER_ACCOUNT), order="grouped")
    with SimulatorServer(sim) as server:
        load(location, server, trend_key)
        sim.advance(hours=12)
        load(location, server, trend_key)
        assert loaded_ids(location) == expected_ids(sim)


def test_a_key_per_account_into_one_pipeline(location, trend_key: str):
    keys = {f"{trend_key}-a": ACCOUNT, f"{trend_key}-b": OTHER_ACCOUNT}
    sim = simulator(trend_key, accounts=(ACCOUNT, OTHER_ACCOUNT), api_keys=keys)
    with SimulatorServer(sim) as server:
        for key, account in keys.items():
            assert load(location, server, key) == requests_of_a_full_read(sim, account)
        assert loaded_ids(location) == expected_ids(sim)
        sim.advance(days=1)
        for key in keys:
            load(location, server, key)
        assert loaded_ids(location) == expected_ids(sim)
        # Each key's read stops early: the high-water mark is kept per tenant.
        assert all(load(location, server, key) <= 3 for key in keys)


def test_configured_from_the_environment(
    trend: SimulatorServer, location, trend_key: str, monkeypatch
):
    monkeypatch.setenv("SOURCES__TREND_AUDIT__BASE_URL", trend.url)
    monkeypatch.setenv("SOURCES__TREND_AUDIT__API_KEY", trend_key)
    registry.load("trend", location)
    assert loaded_ids(location) == expected_ids(trend.simulator)


def test_times_are_read_as_rfc_3339_allows():
    moment = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    for text in ("2026-03-01T09:30:00Z", "2026-03-01t09:30:00z", "2026-03-01T10:30:00+01:00"):
        assert parse_time(text) == moment
    with pytest.raises(MalformedResponseError, match="not RFC 3339"):
        parse_time("yesterday")


def test_region_builds_the_audit_host():
    assert base_url_for(None, "jp-1") == "https://audit.jp-1.cloudone.trendmicro.com"
    assert base_url_for(None, None) == "https://audit.us-1.cloudone.trendmicro.com"
    assert base_url_for("http://127.0.0.1:9", "jp-1") == "http://127.0.0.1:9"


def test_the_order_watch_needs_evidence_of_newest_first():
    t = [datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in range(4)]
    newest = OrderWatch()
    newest.observe([("d", t[3]), ("c", t[2])])
    newest.observe([("c", t[2]), ("b", t[1])])  # a repeat across a shifted page boundary is fine
    assert newest.newest_first
    oldest = OrderWatch()
    oldest.observe([("a", t[0]), ("b", t[1])])
    assert not oldest.newest_first
    one = OrderWatch()
    one.observe([("a", t[0])])
    assert not one.newest_first
    mixed = OrderWatch()
    mixed.observe([("d", t[3]), ("c", t[2])])
    mixed.observe([("a", t[0]), ("b", t[1])])
    assert not mixed.newest_first


def get_logs(sim: TrendAuditSimulator, key: str, **query: str) -> Response:
    """One `GET /api/logs` straight to the simulator (no HTTP), as the contract sends it."""
    headers = {"api-version": "v1", "authorization": f"ApiKey {key}"}
    return sim.handle(Request("GET", "/api/logs", query, headers, b""))


def test_the_simulator_speaks_the_contract(trend_key: str):
    sim = simulator(trend_key, history_days=1)
    first = get_logs(sim, trend_key, limit="100")
    assert first.status == 200 and len(first.payload["logs"]) == 25  # at most 25 a page
    assert set(first.payload["logs"][0]) == {
        "id", "time", "type", "description", "accountID", "principalURN", "details"
    }  # fmt: skip
    assert get_logs(sim, trend_key, cursor="bm90LWEtY3Vyc29y").status == 400
    assert get_logs(sim, "wrong-key").status == 401
    assert "message" in get_logs(sim, "wrong-key").payload
    no_version = Request("GET", "/api/logs", {}, {"authorization": f"ApiKey {trend_key}"}, b"")
    assert sim.handle(no_version).status == 400
    # The read ends with a page without `next`; events logged meanwhile wait for the next read.
    page, served, in_log = first, [], len(sim.retained_events())
    sim.advance(hours=3)
    while True:
        served += page.payload["logs"]
        if "next" not in page.payload:
            break
        page = get_logs(sim, trend_key, cursor=page.payload["next"])
    assert len(served) == len({e["id"] for e in served}) == in_log


def test_the_simulator_forgets_events_after_a_year(trend_key: str):
    sim = simulator(trend_key, events_per_day=24, history_days=30)
    sim.advance(days=400)
    oldest = min(datetime.fromisoformat(e["time"]) for e in sim.retained_events())
    assert sim.now - timedelta(days=365) <= oldest < sim.now - timedelta(days=364)
    assert len(sim.retained_events()) == 365 * 24
